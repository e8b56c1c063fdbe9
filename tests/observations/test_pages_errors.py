"""Unknown addresses: JSON errors under /api/, the HTML pages elsewhere; media from MEDIA_ROOT."""

from datetime import datetime

import pytest
from django.test import Client
from django.urls import reverse

from observations.api import views as api_views
from observations.services.submission import observation_submit
from tests.conftest import ORDESA
from tests.images import photo_upload

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing/", "/api/nothing", "/api/v1/"])
def test_an_unknown_api_address_answers_a_json_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "not_found", "detail": f"No API endpoint at {path}."}


def test_an_unknown_page_keeps_the_html_404_page(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "<h1>Not found</h1>" in response.content.decode()


def test_a_crash_under_the_api_answers_a_json_500(monkeypatch, campaign):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(api_views.ObservationCollectionApi, "get", crash)
    client = Client(raise_request_exception=False)

    response = client.get(reverse("api-observations"))

    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert "boom" not in response.content.decode()


def test_a_crash_on_a_page_keeps_the_html_500_page(monkeypatch, campaign):
    def crash(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("observations.views.observation_list", crash)
    client = Client(raise_request_exception=False)

    response = client.get(reverse("my-sightings"))

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_media_are_served_from_the_media_root_of_the_moment(client, settings, campaign):
    # The autouse fixture moved MEDIA_ROOT to this test's own folder after urls.py was imported.
    photo = observation_submit(
        photos=[photo_upload(gps=ORDESA, taken_at=datetime(2025, 6, 1, 10, 30))]
    ).observation.photos.get()
    with photo.image.open("rb") as handle:
        stored = handle.read()

    response = client.get(photo.image.url)

    assert photo.image.path.startswith(str(settings.MEDIA_ROOT))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == stored


def test_a_missing_media_file_is_a_404(client, db):
    assert client.get("/media/photos/nothing-here.jpg").status_code == 404
