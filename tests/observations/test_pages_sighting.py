"""One sighting's page and its status.json: visible to anyone with the link, positions as allowed."""

import uuid
from datetime import datetime

import pytest
from django.urls import reverse

from observations.models import Observation
from observations.services.submission import observation_submit
from tests.conftest import OUTSIDE
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

JUNE_FIRST = datetime(2025, 6, 1, 10, 30)
# Inside the test park, off the 0.1 degree grid so exact and generalised texts differ.
EXACT = (42.64151, -0.05320)


def submit(**kwargs):
    kwargs.setdefault("photos", [photo_upload(gps=EXACT, accuracy=5, taken_at=JUNE_FIRST)])
    return observation_submit(**kwargs).observation


def page(client, observation):
    return client.get(reverse("sighting-detail", kwargs={"uuid": observation.uuid}))


def ai_card(html: str) -> str:
    start = html.index('<div id="ai-body">')
    return html[start : html.index("</section>", start)]


def status_json(client, observation):
    return client.get(reverse("sighting-status", kwargs={"uuid": observation.uuid}))


def test_it_shows_photos_position_park_time_and_details(client, campaign, park, taxa):
    observation = submit(notes="Three plants by the path", guess=taxa[0])
    photo = observation.photos.get()

    response = page(client, observation)

    html = response.content.decode()
    assert response.status_code == 200
    assert photo.image.url in html
    assert photo.original.name not in html  # never the private original
    assert "42.64151, -0.05320" in html
    assert "± 5 m" in html
    assert "Photo EXIF" in html
    assert "Ordesa y Monte Perdido" in html
    assert "1 June 2025, 10:30 (UTC+02:00)" in html  # the park's local time, with its offset
    assert "Three plants by the path" in html
    assert "Butterfly bush (Buddleja davidii)" in html
    assert "CC BY 4.0" in html


def test_it_says_outside_every_park(client, campaign):
    observation = submit(photos=[photo_upload(gps=OUTSIDE, taken_at=JUNE_FIRST)])

    assert "Outside every park" in page(client, observation).content.decode()


def test_it_waits_for_the_classifier_while_the_sighting_is_received(client, campaign):
    observation = submit()

    html = page(client, observation).content.decode()

    assert "Waiting for the classifier…" in html
    assert 'class="badge badge--received"' in html
    assert "Not reviewed yet." in html


def test_it_shows_the_ai_suggestion_and_the_expert_verdict_when_they_exist(client, campaign, taxa):
    observation = submit()
    Observation.objects.filter(pk=observation.pk).update(
        status=Observation.Status.CONFIRMED, ai_taxon=taxa[1], ai_score=0.87, final_taxon=taxa[2]
    )

    html = page(client, observation).content.decode()
    ai = ai_card(html)

    assert "Waiting for the classifier" not in html
    assert "Japanese knotweed (<i>Reynoutria japonica</i>)" in ai  # AI fields without rows
    assert '<span class="score">87%</span>' in ai
    assert "Tree of heaven (Ailanthus altissima)" in html
    assert "An expert confirmed the identification." in html


def test_it_generalises_a_sensitive_sighting_for_a_stranger(client, campaign, taxa):
    orchid = taxa[3]
    observation = submit(
        guess=orchid,
        photos=[photo_upload(gps=EXACT, accuracy=5, altitude=1320, taken_at=JUNE_FIRST)],
    )

    html = page(client, observation).content.decode()

    assert "42.65, -0.05" in html
    assert "Position generalised." in html
    for exact_text in ("42.64151", "42.6415", "-0.0532", "0.05320", "1320"):
        assert exact_text not in html


def test_it_shows_the_exact_position_of_a_sensitive_sighting_to_its_observer(
    client, campaign, taxa, visitor
):
    observation = submit(guess=taxa[3], observer=visitor)
    client.force_login(visitor)

    html = page(client, observation).content.decode()

    assert "42.64151, -0.05320" in html
    assert "Position generalised." not in html
    assert "This taxon is sensitive" in html


def test_it_shows_the_exact_position_of_a_sensitive_sighting_to_the_anonymous_browser_that_sent_it(
    client, campaign, taxa
):
    response = client.post(
        reverse("home"),
        {
            "photos": [photo_upload(gps=EXACT, taken_at=JUNE_FIRST)],
            "guess": taxa[3].pk,
            "licence": "CC-BY-4.0",
        },
    )

    html = client.get(response["Location"]).content.decode()

    assert "42.64151, -0.05320" in html


def test_it_shows_the_exact_position_of_a_sensitive_sighting_to_a_curator(
    client, campaign, taxa, curator
):
    observation = submit(guess=taxa[3])
    client.force_login(curator)

    assert "42.64151, -0.05320" in page(client, observation).content.decode()


def test_it_answers_404_for_an_unknown_sighting(client, db):
    response = client.get(reverse("sighting-detail", kwargs={"uuid": uuid.uuid4()}))

    assert response.status_code == 404
    assert "Not found" in response.content.decode()


def test_status_json_reports_status_ai_and_verdict(client, campaign, taxa):
    observation = submit()

    waiting = status_json(client, observation).json()
    Observation.objects.filter(pk=observation.pk).update(
        status=Observation.Status.CLASSIFIED, ai_taxon=taxa[0], ai_score=0.31
    )
    classified = status_json(client, observation).json()

    assert waiting["status"] == "received"
    assert waiting["status_display"] == "Received"
    assert waiting["ai"]["state"] == "waiting"
    assert waiting["verdict"]["decided"] is False
    assert classified["status"] == "classified"
    assert classified["ai"]["taxon"]["scientific_name"] == "Buddleja davidii"
    assert classified["ai"]["score"] == 0.31
    assert classified["ai"]["confident"] is False  # below the campaign's threshold of 0.5
    assert classified["verdict"]["taxon"] is None


def test_status_json_shows_the_verdict_of_a_confirmed_sighting(client, campaign, taxa):
    observation = submit()
    Observation.objects.filter(pk=observation.pk).update(
        status=Observation.Status.CONFIRMED, final_taxon=taxa[2]
    )

    verdict = status_json(client, observation).json()["verdict"]

    assert verdict["decided"] is True
    assert verdict["taxon"]["scientific_name"] == "Ailanthus altissima"
    assert verdict["status_display"] == "Confirmed"


def test_status_json_generalises_a_sensitive_position_for_a_stranger(client, campaign, taxa):
    observation = submit(guess=taxa[3])

    response = status_json(client, observation)

    assert response.json()["position"]["generalised"] is True
    assert response.json()["position"]["latitude"] == 42.65
    assert "42.6415" not in response.content.decode()
    assert "no-cache" in response["Cache-Control"]


def test_status_json_answers_404_for_an_unknown_sighting(client, db):
    response = client.get(reverse("sighting-status", kwargs={"uuid": uuid.uuid4()}))

    assert response.status_code == 404
