"""The API's JSON parser: DRF's, with a bound on nesting so hostile bodies get a 400, not a 500.

Python's json module recurses once per nested array or object; a body of a few thousand `[`
exhausts the interpreter's stack (RecursionError, a 500 in DRF's parser). No request of this
API nests more than a few levels, so anything deeper than MAX_JSON_DEPTH is refused.
"""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Deepest nesting of arrays and objects a request body may have: the deepest legitimate body
# (a label-set export request with `mix_injections` as a list) nests two levels.
MAX_JSON_DEPTH = 32


def json_depth(value) -> int:
    """How deeply `value` nests lists and dicts (a scalar is 0, `[]` and `{}` are 1). Iterative,
    so no input can exhaust the stack."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


class BoundedJSONParser(JSONParser):
    """JSON bodies nested at most MAX_JSON_DEPTH deep; deeper ones are a 400 ParseError."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(
                f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels"
            ) from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels")
        return data
