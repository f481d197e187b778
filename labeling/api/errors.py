"""One JSON shape for every API error: {"error": code, "detail": message[, "fields": {...}]}."""

from __future__ import annotations

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from labeling.errors import LabelingError


def json_exception_handler(exc, context):
    if isinstance(exc, LabelingError):
        return Response({"error": exc.code, "detail": exc.message}, status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(
            {"error": "not_found", "detail": str(exc) or "not found"},
            status=status.HTTP_404_NOT_FOUND,
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"error": "invalid", "detail": "invalid input", "fields": exc.detail}
    elif isinstance(exc, exceptions.APIException):
        response.data = {"error": exc.default_code, "detail": str(exc.detail)}
    return response
