"""Faults survived, with real processes on loopback: gunicorn, a Celery worker with beat, and
private Redis and PostgreSQL servers that the tests stop and restart (never the machine's own).

The worker SIGKILLed mid-batch and the training worker killed mid-run are in
tests/classifier/test_worker_integration.py and tests/classifier/test_retraining_loop.py.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from classifier.models import Prediction
from observations.models import Observation
from tests.classifier.support import register_tiny_classifier
from tests.conftest import ORDESA
from tests.images import make_photo
from tests.services import (
    PostgresCluster,
    RedisServer,
    WebServer,
    http_request,
    manage,
)
from tests.workers import celery_worker, wait_for, worker_env

JUNE_FIRST = datetime(2026, 6, 1, 10, 0)
# A refused broker or cache must cost an upload almost nothing; this bounds "no long hang".
UPLOAD_SECONDS_WHILE_DOWN = 5.0
# A hung one costs the cache's and the broker's socket timeouts (2 s + 5 s, webapp/settings.py).
UPLOAD_SECONDS_WHILE_HUNG = 12.0


def post_sighting(web: WebServer, seed: int):
    photo = make_photo(gps=ORDESA, taken_at=JUNE_FIRST, seed=seed)
    return http_request(
        "POST",
        web.url("/api/v1/observations/"),
        files=[("photos", f"sighting-{seed}.jpg", photo, "image/jpeg")],
        timeout=30,
    )


def no_server_errors(log: str) -> None:
    assert "Traceback" not in log, log[-4000:]
    assert not re.search(r'" 5\d\d ', log), log[-4000:]  # gunicorn's access log lines


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(150)
@pytest.mark.skipif(not RedisServer.available(), reason="redis-server is not installed")
def test_uploads_are_stored_while_redis_is_down_and_classified_once_after_it_returns(
    campaign, tmp_path
):
    version = register_tiny_classifier(campaign, tmp_path)
    top = min(5, campaign.taxa.count())
    worker_log = tmp_path / "worker.log"

    with RedisServer() as redis:
        # Broker, cache (throttles) and results all on the private Redis, whatever the suite uses.
        env = {
            "REDIS_URL": redis.url(0),
            "CELERY_BROKER_URL": redis.url(0),
            "CLASSIFICATION_SWEEP_SECONDS": 1,
            "CLASSIFICATION_SWEEP_GRACE_SECONDS": 1,
        }
        with (
            celery_worker(log_path=worker_log, beat=True, **env),
            WebServer(env=worker_env(**env), log_path=tmp_path / "web.log") as web,
        ):
            # The pipeline works before the outage, and the worker has its model loaded.
            before = post_sighting(web, seed=0)
            assert before.status == 201, before.body
            first = before.json()["uuid"]
            wait_for(
                lambda: Observation.objects.filter(uuid=first, status="classified").exists(),
                timeout=60,
                log_path=worker_log,
            )

            # A hung Redis (connections open, no answer) costs an upload a few seconds at most.
            redis.freeze()
            try:
                hung = post_sighting(web, seed=1)
            finally:
                redis.thaw()
            assert hung.status == 201, hung.body
            assert hung.seconds < UPLOAD_SECONDS_WHILE_HUNG, hung.seconds

            redis.stop()  # SIGKILL: whatever it held is gone, as in a crash
            during = [hung] + [post_sighting(web, seed=seed) for seed in range(2, 5)]

            for response in during[1:]:
                assert response.status == 201, response.body
                assert response.seconds < UPLOAD_SECONDS_WHILE_DOWN, response.seconds
            uuids = [response.json()["uuid"] for response in during]
            stored = Observation.objects.filter(uuid__in=uuids)
            assert stored.count() == len(uuids)
            assert all(observation.photos.count() == 1 for observation in stored)
            # (The hung one may have been swept in the moment between thaw and kill.)
            killed = stored.exclude(uuid=uuids[0])
            assert set(killed.values_list("status", flat=True)) == {"received"}
            assert web.log().count("Could not enqueue classification") >= len(uuids)

            redis.start()  # a fresh, empty Redis on the same port
            # The sweeper (beat, inside the worker) finds them; the worker reconnected by itself.
            wait_for(
                lambda: stored.filter(status="classified").count() == len(uuids),
                timeout=75,
                log_path=worker_log,
            )
            # And the web publishes again: a new upload is classified without a warning.
            enqueue_warnings = web.log().count("Could not enqueue classification")
            after = post_sighting(web, seed=9)
            assert after.status == 201, after.body
            last = after.json()["uuid"]
            wait_for(
                lambda: Observation.objects.filter(uuid=last, status="classified").exists(),
                timeout=30,
                log_path=worker_log,
            )
            time.sleep(2)  # give a duplicate delivery the time to show in the counts below
            assert web.log().count("Could not enqueue classification") == enqueue_warnings
            web_log = web.log()

    no_server_errors(web_log)
    everything = Observation.objects.filter(uuid__in=[first, *uuids, last])
    assert everything.count() == 6
    for observation in everything:
        assert observation.status == Observation.Status.CLASSIFIED
        # Claimed once, classified once: one set of predictions for the active version.
        assert observation.classification_attempts == 1, observation.status_detail
        merged = Prediction.objects.filter(observation=observation, photo__isnull=True)
        assert sorted(merged.values_list("rank", flat=True)) == list(range(1, top + 1))
        assert set(merged.values_list("version", flat=True)) == {version.pk}
        assert (
            Prediction.objects.filter(observation=observation, photo__isnull=False).count() == top
        )


@pytest.mark.django_db
def test_the_upload_throttle_counts_in_process_memory_while_its_cache_is_down(
    client, campaign, monkeypatch
):
    from observations import throttling

    class Unreachable:
        def get(self, *args):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        set = get

    monkeypatch.setattr(throttling._cache, "shared", Unreachable())
    monkeypatch.setattr(throttling._cache, "_down_until", 0.0)
    throttling._cache.local.clear()
    monkeypatch.setattr(throttling.UploadRateThrottle, "THROTTLE_RATES", {"uploads": "2/hour"})

    def upload(seed: int):
        photo = SimpleUploadedFile(
            "p.jpg", make_photo(gps=ORDESA, taken_at=JUNE_FIRST, seed=seed), "image/jpeg"
        )
        return client.post("/api/v1/observations/", {"photos": [photo]})

    assert [upload(seed).status_code for seed in range(3)] == [201, 201, 429]
    assert Observation.objects.count() == 2


def web_env_on(database_url: str, tmp_path) -> dict[str, str]:
    """A web process on this database, with the embedded broker and media in tmp_path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "CELERY_BROKER_URL"}
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "PARKWATCH_VAR_DIR": str(tmp_path / "var"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.mark.worker
@pytest.mark.timeout(90)
@pytest.mark.skipif(
    not PostgresCluster.available(), reason="no PostgreSQL server binaries (initdb, pg_ctl)"
)
def test_the_web_recovers_from_a_postgresql_restart_without_restarting_itself(tmp_path):
    with PostgresCluster() as postgres:
        env = web_env_on(postgres.create_database("parkwatch"), tmp_path)
        manage("migrate", "--noinput", env=env)

        with WebServer(env=env, log_path=tmp_path / "web.log", workers=2) as web:
            sightings = web.url("/api/v1/observations/")
            # Every gunicorn worker holds a persistent connection before the restart.
            for _ in range(6):
                response = http_request("GET", sightings)
                assert response.status == 200, response.body
            assert http_request("GET", web.url("/readyz")).status == 200

            postgres.restart()  # pg_ctl restart -m fast: every open connection is cut

            for _ in range(6):
                response = http_request("GET", sightings)
                assert response.status == 200, response.body

            postgres.stop()
            ready = http_request("GET", web.url("/readyz"))
            assert ready.status == 503
            assert ready.json()["checks"]["database"]["ok"] is False
            down = http_request("GET", sightings)
            assert down.status == 503, down.body
            assert down.json()["error"] == "database_unavailable"
            assert "retry-after" in down.headers

            postgres.start()
            ready = http_request("GET", web.url("/readyz"))
            assert ready.status == 200, ready.body
            for _ in range(4):
                response = http_request("GET", sightings)
                assert response.status == 200, response.body
            web_log = web.log()

    assert "Traceback" not in web_log, web_log[-4000:]
