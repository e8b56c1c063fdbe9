"""`/sightings/`: the visitor's own sightings, signed in or sent from this browser."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from observations.models import Observation
from observations.services.submission import observation_submit
from tests.conftest import ORDESA
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

JUNE_FIRST = datetime(2025, 6, 1, 10, 30)


def submit(seed=0, **kwargs):
    return observation_submit(
        photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=seed)], **kwargs
    ).observation


def test_an_anonymous_session_sees_the_sighting_it_sent(client, campaign):
    sent = client.post(
        reverse("home"),
        {"photos": [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], "licence": "CC-BY-4.0"},
    )
    observation = Observation.objects.get()
    someone_elses = submit(seed=5)

    html = client.get(reverse("my-sightings")).content.decode()

    assert sent["Location"] == observation.get_absolute_url()
    assert observation.get_absolute_url() in html
    assert observation.photos.get().thumbnail.url in html
    assert someone_elses.get_absolute_url() not in html
    assert "Ordesa y Monte Perdido" in html
    assert "badge--received" in html


def test_another_browser_does_not_see_an_anonymous_sighting(client, campaign):
    observation = submit()

    html = client.get(reverse("my-sightings")).content.decode()

    assert observation.get_absolute_url() not in html
    assert "No sightings yet" in html


def test_a_signed_in_visitor_sees_their_own_sightings_newest_first(
    client, campaign, visitor, other_visitor
):
    older = submit(seed=1, observer=visitor)
    newer = submit(seed=2, observer=visitor)
    Observation.objects.filter(pk=older.pk).update(
        received_at=newer.received_at - timedelta(days=1)
    )
    not_mine = submit(seed=3, observer=other_visitor)
    client.force_login(visitor)

    html = client.get(reverse("my-sightings")).content.decode()

    assert html.index(newer.get_absolute_url()) < html.index(older.get_absolute_url())
    assert not_mine.get_absolute_url() not in html


def test_it_shows_the_status_of_each_sighting(client, campaign, visitor, taxa):
    observation = submit(observer=visitor)
    Observation.objects.filter(pk=observation.pk).update(
        status=Observation.Status.CONFIRMED, final_taxon=taxa[0]
    )
    client.force_login(visitor)

    html = client.get(reverse("my-sightings")).content.decode()

    assert 'class="badge badge--confirmed"' in html
    assert "Butterfly bush (Buddleja davidii)" in html


def test_it_pages_through_many_sightings(client, campaign, visitor):
    for seed in range(21):
        submit(seed=seed, observer=visitor)
    client.force_login(visitor)

    first = client.get(reverse("my-sightings")).content.decode()
    second = client.get(reverse("my-sightings"), {"page": 2}).content.decode()

    assert first.count('class="sighting-row"') == 20
    assert "Page 1 of 2" in first
    assert second.count('class="sighting-row"') == 1


def test_it_lists_sightings_without_a_query_per_sighting(client, campaign, visitor):
    client.force_login(visitor)
    submit(seed=1, observer=visitor)
    client.get(reverse("my-sightings"))  # warm the session

    with CaptureQueriesContext(connection) as one:
        client.get(reverse("my-sightings"))
    for seed in range(2, 7):
        submit(seed=seed, observer=visitor)
    with CaptureQueriesContext(connection) as six:
        html = client.get(reverse("my-sightings")).content.decode()

    assert html.count('class="sighting-row"') == 6
    assert len(six.captured_queries) == len(one.captured_queries)
