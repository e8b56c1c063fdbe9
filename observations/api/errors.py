"""Every API error is a 4xx with `{"error": code, "detail": text, "field": name?}`."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from observations.errors import ParkWatchError


def _first_error(detail, prefix: str = "") -> tuple[str | None, str, str]:
    """(field, message, code) of the first error in a DRF ValidationError detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = key if key != "non_field_errors" else None
            inner_field, message, code = _first_error(value)
            return (field or inner_field), message, code
    if isinstance(detail, list) and detail:
        return _first_error(detail[0])
    code = getattr(detail, "code", "invalid") or "invalid"
    return None, str(detail), code


def exception_handler(exc, context):
    if isinstance(exc, ParkWatchError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = _first_error(exc.detail)
        body = {"error": code if code != "invalid" else "invalid", "detail": message}
        if field:
            body["field"] = field
            body["detail"] = f"{field}: {message}"
        body["errors"] = exc.detail
        response.data = body
    else:
        detail = response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
        code = getattr(exc, "default_code", "error")
        if isinstance(getattr(exc, "detail", None), exceptions.ErrorDetail):
            code = exc.detail.code or code
        response.data = {"error": code, "detail": str(detail)}
    return response
