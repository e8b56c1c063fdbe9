"""Clients and sightings for the API tests."""

from __future__ import annotations

from datetime import datetime

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from observations.models import Observation
from observations.services.submission import observation_submit
from tests.conftest import ORDESA
from tests.images import photo_upload

API = "/api/v1/observations/"
JUNE_FIRST = datetime(2026, 6, 1, 10, 30)
_seeds = iter(range(1000, 100_000))


def detail_url(observation) -> str:
    return f"{API}{observation.uuid}/"


@pytest.fixture
def api():
    """An anonymous client (a browser with its own session)."""
    return APIClient()


@pytest.fixture
def signed_in():
    """A client signed in through the session, as the pages do."""

    def make(user) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def token_client():
    """A client that sends `Authorization: Token ...`, and no session."""

    def make(user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return client

    return make


@pytest.fixture
def sighting(campaign):
    """A stored sighting, made by the service with a photo of its own (no duplicates)."""

    def make(
        *,
        observer=None,
        status=Observation.Status.RECEIVED,
        position=ORDESA,
        guess=None,
        photos=1,
        **fields,
    ) -> Observation:
        uploads = [photo_upload(width=64, height=48, seed=next(_seeds)) for _ in range(photos)]
        observation = observation_submit(
            photos=uploads,
            observer=observer,
            latitude=position[0],
            longitude=position[1],
            accuracy_m=5,
            observed_at=JUNE_FIRST,
            guess=guess,
            **fields,
        ).observation
        if status != Observation.Status.RECEIVED:
            Observation.objects.filter(pk=observation.pk).update(status=status)
            observation.refresh_from_db()
        return observation

    return make


def post_sighting(client: APIClient, photos=None, **fields):
    """POST a sighting as multipart; `photos` defaults to one photo without EXIF."""
    if photos is None:
        photos = [photo_upload()]
    data = {"photos": photos, **{k: v for k, v in fields.items() if v is not None}}
    return client.post(API, data, format="multipart")
