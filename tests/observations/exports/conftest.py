"""Confirmed sightings, made as users make them: submitted with a photo, confirmed by a curator."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from rest_framework.test import APIClient

from observations.models import Observation
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from tests.conftest import ORDESA
from tests.images import photo_upload

MADRID = ZoneInfo("Europe/Madrid")
JUNE_FIRST = datetime(2026, 6, 1, 10, 30, tzinfo=MADRID)
_seeds = iter(range(5000, 100_000))


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Every test here makes users; their passwords need no slow hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def submit(campaign):
    """A sighting sent by a visitor (status received), with its own photos."""

    def make(*, position=ORDESA, observed_at=JUNE_FIRST, photos: int = 1, **fields) -> Observation:
        fields.setdefault("campaign", campaign)
        uploads = [photo_upload(width=64, height=48, seed=next(_seeds)) for _ in range(photos)]
        return observation_submit(
            photos=uploads,
            latitude=position[0],
            longitude=position[1],
            accuracy_m=12,
            observed_at=observed_at,
            **fields,
        ).observation

    return make


@pytest.fixture
def confirm(curator):
    """Confirm a sighting as `taxon` (by the curator fixture unless another is given)."""

    def decide(observation: Observation, taxon, *, by=None) -> Observation:
        review_decide(
            observation=observation, curator=by or curator, decision="confirm", taxon=taxon
        )
        return Observation.objects.get(pk=observation.pk)

    return decide


@pytest.fixture
def confirmed(submit, confirm, taxa):
    """A confirmed sighting: submitted, then confirmed as `taxon` (Buddleja by default)."""

    def make(*, taxon=None, by=None, **fields) -> Observation:
        return confirm(submit(**fields), taxon or taxa[0], by=by)

    return make


@pytest.fixture
def admin_api(admin_user):
    client = APIClient()
    client.force_login(admin_user)
    return client


def body(response) -> bytes:
    """The whole body of a streamed response."""
    assert response.streaming, "exports must stream"
    return b"".join(response.streaming_content)


def as_file(response) -> io.BytesIO:
    return io.BytesIO(body(response))
