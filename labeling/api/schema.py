"""The OpenAPI schema's error responses, documented once for every operation.

Every error the API gives has one JSON shape (labeling.api.errors); this postprocessing hook
(SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) adds it to each operation for the statuses DRF
and the services can answer there, unless the view documents that status itself:
- 400 where the operation takes a body or query parameters, or writes (invalid input);
- 401 and 403 where a caller authenticates (a wrong token, a role the operation needs);
- 404 where the path or the body names an object, and for a page past the end of a list;
- 405 and 409 where it writes (a method not allowed, a conflict with the stored state);
- 415 where it takes a body (a content type it cannot parse).
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.defaults import page_not_found

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error the API answers with (labeling.api.errors).",
    "properties": {
        "error": {"type": "string", "description": "a code: invalid, not_found, ..."},
        "detail": {"type": "string", "description": "what went wrong, for a person"},
        "fields": {"type": "object", "additionalProperties": True,
                   "description": "per field, what is wrong with it (invalid input only)"},
    },
    "required": ["error", "detail"],
}
ERROR_DESCRIPTIONS = {
    "400": "invalid input: `fields` says what is wrong with each field",
    "401": "the credentials given are wrong",
    "403": "not allowed for this caller",
    "404": "no such object",
    "405": "method not allowed here",
    "409": "conflicts with what is stored",
    "415": "a request body of a type the API does not read",
}
_WRITES = {"post", "put", "patch", "delete"}


def _statuses(path: str, method: str, operation: dict) -> list[str]:
    statuses = []
    takes_body = "requestBody" in operation
    queries = any(p.get("in") == "query" for p in operation.get("parameters", []))
    if takes_body or queries or method in _WRITES:
        statuses.append("400")
    if any(requirement for requirement in operation.get("security", [{}])):
        statuses += ["401", "403"]
    paged = any(p.get("name") == "page" for p in operation.get("parameters", []))
    if "{" in path or method in _WRITES or paged:
        statuses.append("404")
    if method in _WRITES:
        statuses += ["405", "409"]
    if takes_body:
        statuses.append("415")
    return statuses


def document_errors(result: dict, generator, request, public) -> dict:
    """The postprocessing hook: the Error component and the error responses it documents."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_COMPONENT] = ERROR_SCHEMA
    reference = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation):
                responses.setdefault(status, {
                    "description": ERROR_DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": reference}},
                })
    return result


def not_found(request, exception=None):
    """Django's 404 handler (config.urls): the API's JSON error under /api/, where a path that
    matches no route (e.g. `/api/subjects/abc/`) is a missing object too; the HTML page
    elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not_found", "detail": f"no such resource: {request.path}"},
                            status=404)
    return page_not_found(request, exception)
