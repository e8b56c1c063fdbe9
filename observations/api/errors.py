"""Every API error is a 4xx with `{"error": code, "detail": text, "field": name?}`."""

from __future__ import annotations

from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, UnreadablePostError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

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


def _request_refused(exc: Exception) -> ParkWatchError | None:
    """Django refuses some requests while reading the body (DRF parses it lazily, inside the
    view or during the CSRF check): a 400 in the error format, never Django's HTML 400 page."""
    if isinstance(exc, TooManyFilesSent):
        return ParkWatchError(
            "Too many files in one request; a sighting has at most a few photos.",
            code="too_many_files",
            field="photos",
        )
    if isinstance(exc, RequestDataTooBig):
        return ParkWatchError(
            "The form fields of the request are too large.", code="request_too_large"
        )
    if isinstance(exc, TooManyFieldsSent):
        return ParkWatchError("Too many form fields in one request.", code="too_many_fields")
    if isinstance(exc, UnreadablePostError):
        return ParkWatchError("The request body could not be read.", code="unreadable_request")
    if isinstance(exc, SuspiciousOperation):
        return ParkWatchError("The request was refused as malformed.", code="bad_request")
    return None


def exception_handler(exc, context):
    refused = _request_refused(exc)
    if refused is not None:
        exc = refused
    if isinstance(exc, ParkWatchError):
        set_rollback()
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
        body = {"error": code, "detail": message}
        if field:
            body["field"] = field
            body["detail"] = f"{field}: {message}"
        body["errors"] = exc.detail
        response.data = body
    else:
        detail = (
            response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
        )
        code = getattr(exc, "default_code", "error")
        if isinstance(getattr(exc, "detail", None), exceptions.ErrorDetail):
            code = exc.detail.code or code
        response.data = {"error": code, "detail": str(detail)}
    return response
