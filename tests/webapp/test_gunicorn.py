"""The production web process: real gunicorn with webapp/gunicorn_conf.py on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime

import pytest
import urllib3

from observations.models import Observation
from tests.conftest import ORDESA
from tests.images import make_photo
from tests.workers import ROOT, wait_for, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

GRACEFUL_TIMEOUT = 5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gunicorn(tmp_path):
    """gunicorn on the test database, JSON logs to a file; yields (process, base URL, log)."""
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    env = worker_env(
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY=2,
        GUNICORN_THREADS=2,
        GUNICORN_GRACEFUL_TIMEOUT=GRACEFUL_TIMEOUT,
        ALLOW_ANONYMOUS_UPLOADS="true",
        LOG_FORMAT="json",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "webapp/gunicorn_conf.py", "webapp.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1, read=30))
    base = f"http://127.0.0.1:{port}"

    def answers():
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
        try:
            return http.request("GET", f"{base}/healthz").status == 200
        except urllib3.exceptions.HTTPError:
            return False

    try:
        wait_for(answers, timeout=30, log_path=log_path)
        yield process, base, http, log_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_gunicorn_serves_health_and_uploads_and_stops_cleanly_on_sigterm(gunicorn, campaign):
    process, base, http, log_path = gunicorn

    assert http.request("GET", f"{base}/healthz").json() == {"status": "ok"}
    ready = http.request("GET", f"{base}/readyz")
    assert ready.status == 200, ready.data
    assert all(check["ok"] for check in ready.json()["checks"].values())

    photo = make_photo(gps=ORDESA, taken_at=datetime(2026, 6, 1, 10, 0), seed=3)
    response = http.request(
        "POST",
        f"{base}/api/v1/observations/",
        fields={"photos": ("ordesa.jpg", photo, "image/jpeg"), "notes": "seen from the path"},
    )
    assert response.status == 201, response.data
    uuid = response.json()["uuid"]
    observation = Observation.objects.get(uuid=uuid)
    assert observation.photos.count() == 1
    assert observation.park is not None

    started = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    returncode = process.wait(timeout=GRACEFUL_TIMEOUT + 10)
    stopped_in = time.monotonic() - started

    log = log_path.read_text()
    assert returncode == 0, log[-3000:]
    assert stopped_in < GRACEFUL_TIMEOUT, f"took {stopped_in:.1f}s to stop"
    lines = json_lines(log)
    messages = [line["message"] for line in lines]
    assert any("Shutting down: Master" in message for message in messages), log[-3000:]
    assert not any("WORKER TIMEOUT" in message for message in messages)
    # Access lines are JSON with their own fields; the upload's line names the sighting.
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert {"method": "POST", "path": "/api/v1/observations/", "status": 201}.items() <= next(
        line for line in access if line.get("method") == "POST"
    ).items()
    received = [line for line in lines if "received" in line["message"]]
    assert [line["observation"] for line in received] == [uuid]
