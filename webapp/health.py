"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import time

from django.core.files.storage import storages
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache


@never_cache
def healthz(request):
    """The process answers: nothing else is checked."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    from webapp.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _check_storage() -> None:
    storage = storages["default"]
    bucket_name = getattr(storage, "bucket_name", None)
    if bucket_name:
        # One HEAD on the bucket: the server answers and these credentials may use it.
        storage.connection.meta.client.head_bucket(Bucket=bucket_name)
    else:
        storage.exists("readyz-probe")


@never_cache
def readyz(request):
    """Database, broker and storage reachable: 200, else 503 naming what is down."""
    checks = {}
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("storage", _check_storage),
    ):
        started = time.monotonic()
        try:
            check()
        except Exception as exc:
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            checks[name] = {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
