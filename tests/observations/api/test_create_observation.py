"""POST /api/v1/observations/: sending a sighting."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from datetime import timedelta

import pytest
from django.core.files.storage import storages
from django.utils import timezone
from PIL import ExifTags, Image

from observations.models import Observation, Photo
from observations.throttling import UploadRateThrottle
from tests.conftest import ORDESA, OUTSIDE, stored_files
from tests.images import make_photo, photo_upload, upload
from tests.observations.api.conftest import API, JUNE_FIRST, detail_url, post_sighting

pytestmark = pytest.mark.django_db


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims `width` x `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + chunk(b"IEND", b"")
    )


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(buffer, "GIF")
    return buffer.getvalue()


def assert_nothing_stored(settings) -> None:
    assert Observation.objects.count() == 0
    assert Photo.objects.count() == 0
    assert stored_files(settings) == []


def test_it_takes_the_position_and_time_from_the_photos_exif(api, campaign, park):
    photo = photo_upload(
        gps=ORDESA, accuracy=6, altitude=1320, taken_at=JUNE_FIRST, offset="+02:00"
    )

    response = post_sighting(api, [photo])

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["position_source"] == "exif"
    assert (
        round(body["position"]["latitude"], 5),
        round(body["position"]["longitude"], 5),
    ) == ORDESA
    assert body["position"]["accuracy_m"] == 6
    assert body["position"]["generalised"] is False
    assert body["altitude_m"] == 1320
    assert body["observed_at"] == "2026-06-01T08:30:00Z"
    assert body["park"] == {"slug": "ordesa", "name": "Ordesa y Monte Perdido"}
    assert body["campaign"] == {"slug": campaign.slug, "name": campaign.name}
    assert body["status"] == "received"
    assert body["licence"] == "CC-BY-4.0"
    assert body["url"] == f"http://testserver/sightings/{body['uuid']}/"
    assert response["Location"] == f"http://testserver{API}{body['uuid']}/"
    assert Observation.objects.get().uuid == uuid.UUID(body["uuid"])


def test_sent_values_override_the_photos_exif(api, campaign, park):
    photo = photo_upload(gps=OUTSIDE, accuracy=50, taken_at=JUNE_FIRST, offset="+02:00")

    response = post_sighting(
        api,
        [photo],
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        accuracy_m=12,
        position_source="map",
        observed_at="2026-05-03T12:00:00+00:00",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["position"]["latitude"], body["position"]["longitude"]) == ORDESA
    assert body["position"]["accuracy_m"] == 12
    assert body["position_source"] == "map"
    assert body["observed_at"] == "2026-05-03T12:00:00Z"
    assert body["park"]["slug"] == "ordesa"


def test_a_time_without_offset_is_read_in_the_park_time_zone(api, campaign, park):
    response = post_sighting(
        api, latitude=ORDESA[0], longitude=ORDESA[1], observed_at="2026-06-01T10:30:00"
    )

    assert response.status_code == 201, response.json()
    # Madrid is UTC+2 in June.
    assert response.json()["observed_at"] == "2026-06-01T08:30:00Z"
    assert response.json()["position_source"] == "device"


def test_it_refuses_a_sighting_without_any_position(api, campaign, settings):
    response = post_sighting(api, [photo_upload(taken_at=JUNE_FIRST)])

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "position_missing"
    assert body["field"] == "latitude"
    assert "position" in body["detail"]
    assert_nothing_stored(settings)


@pytest.mark.parametrize(
    ("field", "value"),
    [("latitude", 90.5), ("latitude", -91), ("longitude", 180.01), ("longitude", -181)],
)
def test_it_refuses_coordinates_out_of_range_and_names_the_field(
    api, campaign, settings, field, value
):
    position = {"latitude": ORDESA[0], "longitude": ORDESA[1], field: value}

    response = post_sighting(api, observed_at=JUNE_FIRST.isoformat(), **position)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["error"] in {"max_value", "min_value"}
    assert_nothing_stored(settings)


def test_it_refuses_a_sighting_dated_in_the_future(api, campaign, settings):
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()

    response = post_sighting(api, latitude=ORDESA[0], longitude=ORDESA[1], observed_at=tomorrow)

    assert response.status_code == 400
    assert response.json()["error"] == "observed_at_in_future"
    assert response.json()["field"] == "observed_at"
    assert_nothing_stored(settings)


def test_it_refuses_six_photos(api, campaign, settings):
    photos = [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=seed) for seed in range(6)]

    response = post_sighting(api, photos)

    assert response.status_code == 400
    assert response.json()["error"] == "too_many_photos"
    assert response.json()["field"] == "photos"
    assert_nothing_stored(settings)


def test_it_refuses_a_request_without_photos(api, campaign, settings):
    response = post_sighting(api, [], latitude=ORDESA[0], longitude=ORDESA[1])

    assert response.status_code == 400
    assert response.json()["field"] == "photos"
    assert_nothing_stored(settings)


@pytest.mark.parametrize(
    ("name", "data", "code", "reason"),
    [
        (
            "notes.jpg",
            b"These are my notes, not a photo.\n" * 20,
            "unsupported_type",
            "a text file",
        ),
        ("animation.gif", gif_bytes(), "unsupported_type", "a GIF image"),
        (
            "drawing.jpg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
            "unsupported_type",
            "SVG",
        ),
        (
            "scan.jpg",
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
            "unsupported_type",
            "a PDF",
        ),
        (
            "cut.jpg",
            make_photo(gps=ORDESA, taken_at=JUNE_FIRST)[:3000],
            "corrupt_photo",
            "truncated",
        ),
        ("bomb.png", png_claiming(100_000, 100_000), "too_many_pixels", "decompression bomb"),
        ("huge.png", png_claiming(10_000, 6_000), "too_many_pixels", "megapixels"),
        ("empty.jpg", b"", "empty_photo", "empty"),
    ],
)
def test_it_refuses_a_file_that_is_not_an_acceptable_photo_and_stores_nothing(
    api, campaign, settings, name, data, code, reason
):
    good = photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)

    response = post_sighting(api, [good, upload(data, name)])

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == code
    assert body["field"] == "photos"
    assert reason in body["detail"]
    assert body["detail"].startswith("Photo 2:")
    assert_nothing_stored(settings)


def test_it_refuses_a_photo_larger_than_the_byte_limit(api, campaign, settings):
    settings.PHOTO_MAX_BYTES = 10_000
    photo = photo_upload(width=1600, height=1200, gps=ORDESA, taken_at=JUNE_FIRST)
    assert photo.size > 10_000

    response = post_sighting(api, [photo])

    assert response.status_code == 400
    assert response.json()["error"] == "photo_too_large"
    assert_nothing_stored(settings)


def test_it_refuses_a_photo_with_more_pixels_than_the_setting_allows(api, campaign, settings):
    settings.PHOTO_MAX_PIXELS = 100 * 100

    response = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)])

    assert response.status_code == 400
    assert response.json()["error"] == "too_many_pixels"
    assert "640x480" in response.json()["detail"]
    assert_nothing_stored(settings)


@pytest.mark.parametrize("fmt", ["HEIF", "WEBP", "PNG", "JPEG"])
def test_it_accepts_heic_webp_png_and_jpeg(api, campaign, fmt):
    response = post_sighting(api, [photo_upload(fmt, gps=ORDESA, taken_at=JUNE_FIRST)])

    assert response.status_code == 201, response.json()
    photo = Photo.objects.get()
    assert photo.format == {"WEBP": "WEBP", "PNG": "PNG", "HEIF": "HEIF", "JPEG": "JPEG"}[fmt]
    [shown] = response.json()["photos"]
    assert shown["image"].startswith("http://testserver/media/photos/")
    assert shown["image"].endswith(".jpg")
    assert shown["thumbnail"].startswith("http://testserver/media/thumbnails/")
    assert (shown["width"], shown["height"]) == (640, 480)


def test_the_public_copy_has_no_exif_and_is_turned_upright(api, campaign):
    # A landscape sensor image that the camera marks "rotate 90 degrees clockwise".
    photo = photo_upload(width=640, height=480, gps=ORDESA, taken_at=JUNE_FIRST, orientation=6)

    response = post_sighting(api, [photo])

    assert response.status_code == 201, response.json()
    stored = Photo.objects.get()
    for name in (stored.image.name, stored.thumbnail.name):
        with storages["default"].open(name) as handle:
            image = Image.open(handle)
            image.load()
        exif = image.getexif()
        assert len(exif) == 0
        assert exif.get_ifd(ExifTags.IFD.GPSInfo) == {}
        assert image.width < image.height  # portrait now
    [shown] = response.json()["photos"]
    assert (shown["width"], shown["height"]) == (480, 640)
    assert "originals" not in response.content.decode()
    assert stored.original.name not in response.content.decode()


def test_a_signed_in_visitor_may_send_with_a_token(token_client, visitor, campaign):
    response = post_sighting(token_client(visitor), [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)])

    assert response.status_code == 201, response.json()
    assert response.json()["observer"] == "visitor"
    assert Observation.objects.get().observer == visitor


def test_an_invalid_token_is_refused(api, campaign, settings):
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)])

    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"
    assert_nothing_stored(settings)


def test_session_users_must_send_the_csrf_token(visitor, campaign, settings):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(visitor)
    photo = make_photo(gps=ORDESA, taken_at=JUNE_FIRST)

    refused = post_sighting(client, [upload(photo)])

    assert refused.status_code == 403
    assert refused.json()["error"] == "permission_denied"
    assert "CSRF" in refused.json()["detail"]
    assert_nothing_stored(settings)

    secret = "a" * 32
    client.cookies["csrftoken"] = secret
    accepted = client.post(
        API, {"photos": [upload(photo)]}, format="multipart", HTTP_X_CSRFTOKEN=secret
    )

    assert accepted.status_code == 201, accepted.json()
    assert accepted.json()["observer"] == "visitor"


def test_anonymous_visitors_may_send_a_sighting_by_default(api, campaign):
    response = post_sighting(
        api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], email="finder@example.org"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["observer"] is None
    assert "finder@example.org" not in response.content.decode()
    assert Observation.objects.get().observer_email == "finder@example.org"


def test_anonymous_uploads_are_refused_when_switched_off(
    api, signed_in, visitor, campaign, settings
):
    settings.ALLOW_ANONYMOUS_UPLOADS = False

    refused = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)])

    assert refused.status_code == 401
    assert refused.json()["error"] == "not_authenticated"
    assert refused["WWW-Authenticate"] == "Token"
    assert_nothing_stored(settings)

    accepted = post_sighting(signed_in(visitor), [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)])
    assert accepted.status_code == 201


def test_uploads_beyond_the_rate_are_refused_with_429(api, campaign, monkeypatch):
    monkeypatch.setattr(UploadRateThrottle, "THROTTLE_RATES", {"uploads": "2/hour"})
    for seed in range(2):
        photo = photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=seed)
        assert post_sighting(api, [photo]).status_code == 201

    response = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=9)])

    assert response.status_code == 429
    assert response.json()["error"] == "throttled"
    assert int(response["Retry-After"]) > 0
    assert Observation.objects.count() == 2
    # Reading is not throttled.
    assert api.get(API).status_code == 200


def test_it_returns_the_first_observation_for_a_repeated_client_uuid(api, campaign, settings):
    client_uuid = str(uuid.uuid4())
    first = post_sighting(
        api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], client_uuid=client_uuid
    )
    files_after_first = sorted(stored_files(settings))

    again = post_sighting(
        api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=5)], client_uuid=client_uuid
    )

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["uuid"] == first.json()["uuid"]
    assert Observation.objects.count() == 1
    assert Photo.objects.count() == 1
    assert sorted(stored_files(settings)) == files_after_first


def test_another_users_client_uuid_is_a_conflict(signed_in, visitor, other_visitor, campaign):
    client_uuid = str(uuid.uuid4())
    photo = make_photo(gps=ORDESA, taken_at=JUNE_FIRST)
    assert (
        post_sighting(signed_in(visitor), [upload(photo)], client_uuid=client_uuid).status_code
        == 201
    )

    response = post_sighting(signed_in(other_visitor), [upload(photo)], client_uuid=client_uuid)

    assert response.status_code == 409
    assert response.json()["error"] == "client_uuid_taken"
    assert response.json()["field"] == "client_uuid"


@pytest.mark.parametrize("by", ["id", "name"])
def test_the_guess_may_be_a_taxon_id_or_scientific_name(api, campaign, taxa, by):
    knotweed = taxa[1]
    guess = str(knotweed.pk) if by == "id" else "reynoutria JAPONICA"

    response = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], guess=guess)

    assert response.status_code == 201, response.json()
    assert response.json()["guess"] == {
        "id": knotweed.pk,
        "scientific_name": "Reynoutria japonica",
        "common_name": "Japanese knotweed",
        "is_invasive": True,
    }


def test_a_guess_outside_the_campaigns_taxa_is_refused(api, campaign, settings):
    from tests.factories import TaxonFactory

    elsewhere = TaxonFactory(scientific_name="Conus ermineus")

    for guess in (str(elsewhere.pk), "Conus ermineus", "Nonexistent plant"):
        response = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], guess=guess)

        assert response.status_code == 400
        assert response.json()["error"] == "unknown_taxon"
        assert response.json()["field"] == "guess"
    assert_nothing_stored(settings)


def test_the_campaign_is_chosen_by_slug(api, campaign):
    from tests.factories import CampaignFactory

    conus = CampaignFactory(name="Conus of the Western Atlantic", slug="conus")

    chosen = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], campaign="conus")
    unknown = post_sighting(
        api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=2)], campaign="no-such-campaign"
    )

    assert chosen.status_code == 201
    assert chosen.json()["campaign"] == {"slug": "conus", "name": conus.name}
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "campaign"
    assert unknown.json()["error"] == "unknown_campaign"


@pytest.mark.parametrize("licence", ["CC0-1.0", "CC-BY-NC-4.0"])
def test_the_visitor_chooses_the_licence(api, campaign, licence):
    response = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], licence=licence)

    assert response.status_code == 201
    assert response.json()["licence"] == licence


def test_an_unknown_licence_is_refused(api, campaign, settings):
    response = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], licence="GPL")

    assert response.status_code == 400
    assert response.json()["field"] == "licence"
    assert_nothing_stored(settings)


def test_position_source_exif_cannot_be_claimed_for_a_sent_position(api, campaign, settings):
    response = post_sighting(
        api,
        [photo_upload(taken_at=JUNE_FIRST)],
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        position_source="exif",
    )

    assert response.status_code == 400
    assert response.json()["field"] == "position_source"
    assert_nothing_stored(settings)


def test_the_sender_sees_the_new_sighting_at_its_detail_url(api, campaign):
    created = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)]).json()

    shown = api.get(detail_url(Observation.objects.get()))

    assert shown.status_code == 200
    assert shown.json() == created
