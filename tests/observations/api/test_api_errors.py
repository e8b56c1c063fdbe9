"""Every refusal of the API is a 4xx JSON body `{"error", "detail", "field"?}`, never a 500.

DRF reads a multipart body lazily (in the view, or in the CSRF check of a session user), so the
requests Django itself refuses while reading must come out in the same format.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from observations.models import Observation, Photo
from tests.conftest import ORDESA, stored_files
from tests.images import make_photo, photo_upload, upload
from tests.observations.api.conftest import API, JUNE_FIRST, post_sighting

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, error: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error
    assert body["detail"]
    if field is not None:
        assert body["field"] == field
    return body


def assert_nothing_stored(settings) -> None:
    assert Observation.objects.count() == 0
    assert Photo.objects.count() == 0
    assert stored_files(settings) == []


@pytest.fixture
def session_with_csrf_cookie(visitor):
    """A signed-in browser whose CSRF check reads the form body (cookie set, no header)."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(visitor)
    client.cookies["csrftoken"] = "b" * 32
    return client


def test_multipart_without_a_boundary_is_a_400(api, campaign, settings):
    response = api.post(API, data=b"not really multipart", content_type="multipart/form-data")

    body = assert_error(response, 400, "parse_error")
    assert "boundary" in body["detail"].lower()
    assert_nothing_stored(settings)


def test_a_cut_off_multipart_body_is_a_4xx_in_the_error_format(api, campaign, settings):
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="photos"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + make_photo()[:2000]
    )

    response = api.post(API, data=body, content_type="multipart/form-data; boundary=XyZ")

    assert 400 <= response.status_code < 500
    assert set(response.json()) >= {"error", "detail"}
    assert_nothing_stored(settings)


def test_more_files_than_django_reads_is_a_400(api, campaign, settings):
    photos = [
        upload(b"x" * 10, f"{index}.jpg")
        for index in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)
    ]

    response = post_sighting(api, photos)

    assert_error(response, 400, "too_many_files", "photos")
    assert_nothing_stored(settings)


def test_form_fields_larger_than_django_reads_are_a_400(api, campaign, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], notes="n" * 2000)

    assert_error(response, 400, "request_too_large")
    assert_nothing_stored(settings)


def test_a_request_larger_than_any_sighting_is_refused_before_reading(api, campaign, settings):
    settings.PHOTO_MAX_BYTES = 50_000
    big = upload(b"\xff\xd8\xff" + b"\x00" * (3 * 1024 * 1024))

    response = post_sighting(api, [big])

    body = assert_error(response, 400, "request_too_large", "photos")
    assert "MiB" in body["detail"]
    assert_nothing_stored(settings)


@pytest.mark.parametrize("case", ["too_many_files", "too_large", "too_large_fields"])
def test_a_bad_body_read_during_the_csrf_check_is_a_400(
    session_with_csrf_cookie, campaign, settings, case
):
    # The CSRF check of a session user reads the body before the view does.
    if case == "too_many_files":
        photos = [
            upload(b"x" * 10, f"{i}.jpg") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)
        ]
        expected = "too_many_files"
        response = post_sighting(session_with_csrf_cookie, photos)
    elif case == "too_large":
        settings.PHOTO_MAX_BYTES = 50_000
        expected = "request_too_large"
        response = post_sighting(session_with_csrf_cookie, [upload(b"\x00" * (3 * 1024 * 1024))])
    else:
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        expected = "request_too_large"
        response = post_sighting(session_with_csrf_cookie, [photo_upload()], notes="n" * 2000)

    assert_error(response, 400, expected)
    assert_nothing_stored(settings)


def test_json_is_not_accepted_for_a_sighting(api, campaign, settings):
    response = api.post(API, {"latitude": ORDESA[0], "longitude": ORDESA[1]}, format="json")

    assert_error(response, 415, "unsupported_media_type")
    assert_nothing_stored(settings)


def test_an_unsupported_method_is_a_405_in_the_error_format(api, campaign):
    assert_error(api.delete(API), 405, "method_not_allowed")


def test_a_photo_field_that_is_not_a_file_names_the_field(api, campaign, settings):
    response = api.post(API, {"photos": "just text"}, format="multipart")

    assert_error(response, 400, "invalid", "photos")
    assert_nothing_stored(settings)


def test_a_malformed_number_names_the_field(api, campaign, settings):
    response = post_sighting(api, latitude="north", longitude=ORDESA[1])

    body = assert_error(response, 400, "invalid", "latitude")
    assert body["detail"].startswith("latitude:")
    assert_nothing_stored(settings)


def test_only_one_coordinate_is_refused(api, campaign, settings):
    response = post_sighting(api, latitude=ORDESA[0], observed_at=JUNE_FIRST.isoformat())

    assert_error(response, 400, "position_incomplete", "longitude")
    assert_nothing_stored(settings)


def test_a_malformed_date_names_the_field(api, campaign, settings):
    response = post_sighting(api, latitude=ORDESA[0], longitude=ORDESA[1], observed_at="yesterday")

    assert_error(response, 400, "invalid", "observed_at")
    assert_nothing_stored(settings)


def test_an_unknown_status_filter_names_the_field(api, campaign):
    assert_error(api.get(API, {"status": "lost"}), 400, "invalid_choice", "status")


@pytest.mark.parametrize("path", ["00000000-0000-4000-8000-000000000000", "not-a-uuid"])
def test_an_unknown_sighting_is_a_404_in_the_error_format(api, campaign, path):
    assert_error(api.get(f"{API}{path}/"), 404, "not_found")


def test_errors_are_json_even_for_a_browser(api, campaign):
    response = api.get(
        f"{API}not-a-uuid/",
        HTTP_ACCEPT="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    )

    assert_error(response, 404, "not_found")
