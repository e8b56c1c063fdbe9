"""Real Celery worker processes for integration tests, on the test database and broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """A DATABASE_URL for the database the running test uses (pytest-django's test database)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_env(**overrides) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PRIVATE_MEDIA_ROOT": str(settings.PRIVATE_MEDIA_ROOT),
            "MODELS_ROOT": str(settings.STORAGES["models"]["OPTIONS"]["location"]),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({key: str(value) for key, value in overrides.items()})
    return env


@contextmanager
def celery_worker(*, queues: str = "inference,default", beat: bool = False, log_path: Path, **env):
    """Start `celery -A webapp worker` as a real process; stop it (SIGTERM, then SIGKILL)."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "webapp",
        "worker",
        "-Q",
        queues,
        "--concurrency",
        "1",
        "--pool",
        "prefork",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--purge",
        "--hostname",
        f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
    ]
    if beat:
        command += ["--beat", "--schedule", str(log_path.with_suffix(".beat"))]
    log = log_path.open("ab")
    start = log.tell()  # a log shared by several workers: look only at this one's lines
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=worker_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # `--purge` empties the queues at start-up: publish nothing before the worker is ready.
        wait_for(
            lambda: b" ready." in log_path.read_bytes()[start:] or process.poll() is not None,
            timeout=60,
            log_path=log_path,
        )
        if process.poll() is not None:
            raise AssertionError(
                f"the worker exited:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


def kill_worker_tree(process: subprocess.Popen) -> None:
    """SIGKILL the worker and its pool children at once (a crash, not a shutdown)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def wait_for(predicate, *, timeout: float, interval: float = 0.25, log_path: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tail = log_path.read_text(errors="replace")[-4000:] if log_path and log_path.exists() else ""
    raise AssertionError(
        f"timed out after {timeout}s waiting for {predicate.__name__}\n--- worker log ---\n{tail}"
    )
