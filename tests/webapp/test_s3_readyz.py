"""/readyz with the files in S3: ready while the server answers, 503 naming storage when not."""

from __future__ import annotations

import time

import pytest

from tests import s3 as moto
from tests.s3 import MotoServer, new_bucket

s3_server = moto.s3_server  # fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_server():
    """A server of this test's own, since the test stops it."""
    server = MotoServer().start()
    yield server
    server.stop()


def test_readyz_reports_storage_ok_while_the_bucket_answers_and_503_once_it_is_gone(
    client, settings, own_server
):
    bucket = new_bucket(own_server)
    settings.STORAGES = {**settings.STORAGES, **own_server.storages(bucket)}

    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["storage"]["ok"] is True

    own_server.stop()
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["storage"]["ok"] is False
    assert "Could not connect" in body["checks"]["storage"]["error"]
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    assert elapsed < 10, "a load balancer must hear about a storage outage in seconds"


def test_readyz_refuses_a_bucket_that_does_not_exist(client, settings, s3_server):
    settings.STORAGES = {**settings.STORAGES, **s3_server.storages("parkwatch-no-such-bucket")}

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["ok"] is False
    assert "404" in response.json()["checks"]["storage"]["error"]
