"""The upload form on `/`: it stores a sighting through observation_submit, or says why not."""

import re
import uuid
from datetime import datetime

import pytest
from django.urls import reverse

from observations.models import Observation
from observations.requests import SESSION_KEY
from observations.throttling import UploadRateThrottle
from tests.conftest import ORDESA, stored_files
from tests.images import photo_upload, upload

pytestmark = pytest.mark.django_db

JUNE_FIRST = datetime(2025, 6, 1, 10, 30)


def post(client, **data):
    data.setdefault("licence", Observation.Licence.CC_BY)
    return client.post(reverse("home"), data)


def test_it_shows_the_about_text_and_the_upload_form(client, campaign, taxa):
    response = client.get(reverse("home"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Seen an invasive plant or animal?" in html
    assert 'enctype="multipart/form-data"' in html
    assert 'name="photos"' in html and "multiple" in html
    assert 'capture="environment"' in html
    assert "Japanese knotweed (Reynoutria japonica)" in html  # the guess lists the campaign's taxa
    assert 'name="client_uuid"' in html
    assert "CC BY-NC 4.0" in html
    assert 'name="email"' in html  # anonymous visitors may leave an address


def test_it_loads_its_scripts_and_styles_from_this_site_only(client, campaign):
    html = client.get(reverse("home")).content.decode()

    assets = re.findall(r'<script[^>]* src="([^"]+)"', html) + re.findall(
        r'<link[^>]* href="([^"]+)"', html
    )
    assert "/static/vendor/leaflet/leaflet.js" in assets
    assert "/static/vendor/exifr/exifr.full.umd.js" in assets
    assert [asset for asset in assets if not asset.startswith("/")] == []


def test_it_stores_a_sighting_from_exif_and_redirects_to_its_page(client, campaign, park):
    response = post(
        client,
        photos=[photo_upload(gps=ORDESA, accuracy=5, taken_at=JUNE_FIRST)],
        notes=" Near the bridge ",
    )

    observation = Observation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/sightings/{observation.uuid}/"
    assert observation.position_source == Observation.PositionSource.EXIF
    assert (round(observation.latitude, 5), round(observation.longitude, 5)) == ORDESA
    assert observation.park == park
    assert observation.notes == "Near the bridge"
    assert observation.photos.count() == 1
    assert client.session[SESSION_KEY] == [str(observation.uuid)]
    page = client.get(response["Location"])
    assert "Thank you! Your sighting was received." in page.content.decode()


def test_it_takes_several_photos_from_the_camera_and_the_chooser_at_once(client, campaign):
    post(
        client,
        photos=[
            photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=1),
            photo_upload(seed=2),
            photo_upload(seed=3),
        ],
    )

    assert Observation.objects.get().photos.count() == 3


def test_it_uses_the_sent_position_time_guess_licence_and_email(client, campaign, taxa):
    response = post(
        client,
        photos=[photo_upload(seed=4)],
        latitude="42.6",
        longitude="-0.07",
        accuracy_m="12",
        position_source="device",
        observed_at="2025-06-01T10:30",
        guess=str(taxa[1].pk),
        licence=Observation.Licence.CC0,
        email="walker@example.org",
    )

    observation = Observation.objects.get()
    assert response.status_code == 302
    assert (observation.latitude, observation.longitude, observation.accuracy_m) == (
        42.6,
        -0.07,
        12,
    )
    assert observation.position_source == "device"
    # The datetime-local value is read in the park's time zone: Madrid is UTC+2 in June.
    assert observation.observed_at.isoformat() == "2025-06-01T08:30:00+00:00"
    assert observation.guess == taxa[1]
    assert observation.licence == Observation.Licence.CC0
    assert observation.observer_email == "walker@example.org"
    assert observation.observer is None


def test_it_stores_a_signed_in_visitors_sighting_under_their_account(client, campaign, visitor):
    client.force_login(visitor)

    post(client, photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)])

    assert Observation.objects.get().observer == visitor


def test_it_stores_one_sighting_for_a_repeated_client_uuid(client, campaign):
    client_uuid = str(uuid.uuid4())

    first = post(
        client, photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], client_uuid=client_uuid
    )
    second = post(
        client, photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], client_uuid=client_uuid
    )

    assert Observation.objects.count() == 1
    assert first["Location"] == second["Location"]
    page = client.get(second["Location"]).content.decode()
    assert "already been received" in page


def test_it_rerenders_the_form_with_the_reason_for_a_bad_photo_and_stores_nothing(
    client, campaign, settings
):
    response = post(
        client,
        photos=[upload(b"%PDF-1.7 not a photo", "plant.jpg")],
        latitude="42.6",
        longitude="-0.07",
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert (
        "Photo 1: this is a PDF document; only JPEG, PNG, WebP and HEIC/HEIF photos are accepted."
        in html
    )
    assert 'id="id_photos-errors"' in html  # shown at the photos field
    assert "Nothing was stored." in html
    assert Observation.objects.count() == 0
    assert stored_files(settings) == []


def test_it_asks_for_a_position_when_neither_the_photo_nor_the_form_has_one(client, campaign):
    response = post(client, photos=[photo_upload(taken_at=JUNE_FIRST)])

    html = response.content.decode()
    assert response.status_code == 400
    assert "No position: the photos carry no GPS position." in html
    assert "pick the point on the map" in html
    assert 'id="id_latitude-errors"' in html
    assert Observation.objects.count() == 0


def test_it_asks_for_a_photo_when_none_is_sent(client, campaign):
    response = post(client, latitude="42.6", longitude="-0.07", observed_at="2025-06-01T10:30")

    assert response.status_code == 400
    assert "Choose at least one photo of the organism." in response.content.decode()
    assert Observation.objects.count() == 0


def test_it_asks_for_the_missing_half_of_a_position(client, campaign):
    response = post(client, photos=[photo_upload(taken_at=JUNE_FIRST)], latitude="42.6")

    html = response.content.decode()
    assert response.status_code == 400
    assert "Give both latitude and longitude, or neither." in html
    assert 'id="id_longitude-errors"' in html


def test_it_refuses_a_time_in_the_future_at_the_time_field(client, campaign):
    response = post(client, photos=[photo_upload(gps=ORDESA)], observed_at="2999-01-01T10:00")

    html = response.content.decode()
    assert response.status_code == 400
    assert "The observation time is in the future." in html
    assert 'id="id_observed_at-errors"' in html


def test_it_refuses_too_many_photos_with_a_clear_message(client, campaign, settings):
    settings.PHOTO_MAX_COUNT = 2

    response = post(
        client, photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=i) for i in range(3)]
    )

    assert response.status_code == 400
    assert (
        "3 photos sent; at most 2 photos of one organism make one sighting."
        in response.content.decode()
    )
    assert Observation.objects.count() == 0


def test_it_says_when_uploads_come_too_fast(client, campaign, monkeypatch):
    monkeypatch.setattr(UploadRateThrottle, "THROTTLE_RATES", {"uploads": "1/hour"})
    post(client, photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=1)])

    response = post(client, photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=2)])

    assert response.status_code == 429
    assert (
        "You have sent many sightings in a short time. Please try again in"
        in response.content.decode()
    )
    assert Observation.objects.count() == 1


def test_it_asks_anonymous_visitors_to_sign_in_when_anonymous_uploads_are_off(
    client, campaign, settings
):
    settings.ALLOW_ANONYMOUS_UPLOADS = False

    page = client.get(reverse("home"))
    sent = post(client, photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)])

    assert "Sign in to report a sighting" in page.content.decode()
    assert 'name="photos"' not in page.content.decode()
    assert sent.status_code == 302
    assert sent["Location"].startswith(reverse("login"))
    assert Observation.objects.count() == 0


def test_a_signed_in_visitor_may_upload_when_anonymous_uploads_are_off(
    client, campaign, settings, visitor
):
    settings.ALLOW_ANONYMOUS_UPLOADS = False
    client.force_login(visitor)

    page = client.get(reverse("home"))
    post(client, photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)])

    assert 'name="photos"' in page.content.decode()
    assert 'name="email"' not in page.content.decode()
    assert Observation.objects.get().observer == visitor


def test_it_says_so_when_no_campaign_is_open(client, db):
    html = client.get(reverse("home")).content.decode()

    assert "No campaign is open for sightings yet." in html
    assert 'name="photos"' not in html


def test_the_visitor_chooses_the_name_to_be_credited_with(client, campaign, visitor):
    client.force_login(visitor)

    post(client, photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], credit_name=" Ana Pérez ")

    observation = Observation.objects.get()
    assert observation.observer_credit == "Ana Pérez"
    assert observation.observer == visitor
