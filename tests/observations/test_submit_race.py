"""Two retries of one upload racing: the unique constraint decides, never a copy."""

import threading
import uuid
from datetime import datetime

import pytest
from django.db import connection

from observations.models import Observation, Photo
from observations.services.submission import observation_submit
from tests.conftest import ORDESA
from tests.images import make_photo, upload

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_racing_requests_with_one_client_uuid_store_one_sighting(campaign, monkeypatch):
    from observations.services import submission

    client_uuid = uuid.uuid4()
    data = make_photo(gps=ORDESA, taken_at=datetime(2026, 6, 1, 10, 0))
    # Both requests pass the early "already there?" look-up before either inserts.
    both_checked = threading.Barrier(2, timeout=20)
    original_lookup = submission._existing_for_client_uuid
    calls = {"n": 0}

    def lookup_then_wait(client_uuid_, observer):
        found = original_lookup(client_uuid_, observer)
        calls["n"] += 1
        if calls["n"] <= 2:
            both_checked.wait()
        return found

    monkeypatch.setattr(submission, "_existing_for_client_uuid", lookup_then_wait)
    results, errors = [], []

    def send():
        try:
            results.append(observation_submit(photos=[upload(data)], client_uuid=client_uuid))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(result.created for result in results) == [False, True]
    assert results[0].observation.pk == results[1].observation.pk
    assert Observation.objects.filter(client_uuid=client_uuid).count() == 1
    assert Photo.objects.count() == 1
