"""gunicorn settings for the web process, from the environment.

    gunicorn --config webapp/gunicorn_conf.py webapp.wsgi

Threads (gthread) rather than more processes: a request mostly waits on the client's upload,
the database and storage, and each process costs a whole Django (~80 MB). The app is preloaded
in the master and forked: the web never imports TensorFlow (import-linter checks it), so
nothing fork-unsafe is loaded before the fork, workers start fast and share their memory
pages, and a broken import stops the master at once instead of looping on worker boots.
"""

from __future__ import annotations

import os

TRUE = {"1", "true", "yes", "on"}


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _default_workers() -> int:
    return min(2 * (os.cpu_count() or 1) + 1, 8)


bind = _env("GUNICORN_BIND", f"127.0.0.1:{_env('PORT', '8000')}").split(",")
workers = _int("WEB_CONCURRENCY", _int("GUNICORN_WORKERS", _default_workers()))
worker_class = _env("GUNICORN_WORKER_CLASS", "gthread")
threads = _int("GUNICORN_THREADS", 4)
# A worker silent this long is killed (gthread workers stay alive during long uploads).
timeout = _int("GUNICORN_TIMEOUT", 60)
# On SIGTERM, requests in flight get this long to finish; below compose's stop_grace_period.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then (slow leaks), not all at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 100)
# Whose X-Forwarded-* headers are believed (the reverse proxy); gunicorn's own variable.
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
preload_app = _env("GUNICORN_PRELOAD", "true").lower() in TRUE
proc_name = "parkwatch-web"

# The heartbeat file in memory: on a container's overlay filesystem a write can block for
# seconds and get a healthy worker killed.
SHARED_MEMORY = "/dev/shm"  # noqa: S108 (gunicorn makes its own private files in it)
worker_tmp_dir = SHARED_MEMORY if os.access(SHARED_MEMORY, os.W_OK) else None

# gunicorn 24+'s control socket lives in $HOME by default; only when asked for.
control_socket = _env("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

loglevel = _env("GUNICORN_LOGLEVEL", _env("LOG_LEVEL", "info")).lower()
errorlog = "-"
accesslog = _env("GUNICORN_ACCESSLOG", "-")
if accesslog.lower() in {"off", "none", "false", "0"}:
    accesslog = None
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'

if _env("LOG_FORMAT", "plain").lower() == "json":
    # gunicorn's own lines (start, stop, access) as JSON objects too, like the application's.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": []},
        "formatters": {"json": {"()": "webapp.logs.JSONFormatter"}},
        "handlers": {
            "error": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "gunicorn.error": {
                "level": loglevel.upper(),
                "handlers": ["error"],
                "propagate": False,
            },
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }
