"""A database that cannot be reached answers 503 with Retry-After, not a 500.

PostgreSQL restarting, failing over or refusing connections is an outage of a dependency, not
a bug in the request: clients (the upload page, the apps' offline queues, load balancers) may
retry. The persistent connections recover by themselves (CONN_HEALTH_CHECKS), so the first
request after the database returns is served normally.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10
API_PREFIX = "/api/"


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning(
            "Database unavailable for %s %s: %s: %s",
            request.method,
            request.path,
            type(exception).__name__,
            str(exception).strip()[:300],
        )
        detail = "The database cannot be reached right now; please try again in a moment."
        if request.path_info.startswith(API_PREFIX):
            response = JsonResponse({"error": "database_unavailable", "detail": detail}, status=503)
        else:  # plain text: the page templates' context processors would query the database
            response = HttpResponse(detail, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
