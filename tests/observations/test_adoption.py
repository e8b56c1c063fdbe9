"""observations_adopt: anonymous sightings join the account of whoever sent them."""

import uuid
from datetime import datetime

import pytest
from django.contrib.auth.models import AnonymousUser

from observations.models import Observation
from observations.services.adoption import observations_adopt
from observations.services.submission import observation_submit
from tests.conftest import ORDESA
from tests.images import photo_upload

pytestmark = pytest.mark.django_db


def submit(**kwargs) -> Observation:
    photo = photo_upload(gps=ORDESA, taken_at=datetime(2025, 6, 1, 10, 30))
    return observation_submit(photos=[photo], **kwargs).observation


def observer_of(observation):
    return Observation.objects.get(pk=observation.pk).observer


def test_it_gives_the_user_the_anonymous_sightings_and_counts_them(campaign, visitor):
    first, second = submit(), submit()

    count = observations_adopt(user=visitor, uuids=[str(first.uuid), second.uuid])

    assert count == 2
    assert observer_of(first) == visitor
    assert observer_of(second) == visitor


def test_it_never_takes_another_users_sighting(campaign, visitor, other_visitor):
    theirs = submit(observer=other_visitor)
    anonymous = submit()

    count = observations_adopt(user=visitor, uuids=[str(theirs.uuid), str(anonymous.uuid)])

    assert count == 1
    assert observer_of(theirs) == other_visitor
    assert observer_of(anonymous) == visitor


def test_it_counts_nothing_for_sightings_already_the_users(campaign, visitor):
    mine = submit(observer=visitor)

    assert observations_adopt(user=visitor, uuids=[str(mine.uuid)]) == 0
    assert observer_of(mine) == visitor


def test_it_ignores_malformed_and_unknown_uuids(campaign, visitor):
    anonymous = submit()

    count = observations_adopt(
        user=visitor, uuids=["not-a-uuid", None, str(uuid.uuid4()), str(anonymous.uuid)]
    )

    assert count == 1
    assert observer_of(anonymous) == visitor


def test_it_gives_nothing_to_an_anonymous_user(campaign):
    anonymous = submit()

    assert observations_adopt(user=AnonymousUser(), uuids=[str(anonymous.uuid)]) == 0
    assert observer_of(anonymous) is None
