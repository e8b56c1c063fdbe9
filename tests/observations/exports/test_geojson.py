"""The GeoJSON export, checked against the rules of RFC 7946 and against the database."""

from __future__ import annotations

import json
import math

import pytest
from django.conf import settings

from observations.geoprivacy import CELL_UNCERTAINTY_M
from observations.models import Observation
from tests.observations.exports.conftest import body

pytestmark = pytest.mark.django_db

URL = "/api/v1/exports/geojson/"
POSITION = (42.64151, -0.05320)  # latitude and longitude differ in sign: order is visible


def check_rfc7946(document: dict) -> list[dict]:
    """The rules of RFC 7946 that a FeatureCollection of points must keep; its features."""
    assert document["type"] == "FeatureCollection"
    assert "crs" not in document  # removed by RFC 7946 (section 4): WGS 84 only
    assert isinstance(document["features"], list)
    if "bbox" in document:
        assert len(document["bbox"]) == 4
    for feature in document["features"]:
        assert feature["type"] == "Feature"
        assert "crs" not in feature
        assert isinstance(feature["properties"], dict) or feature["properties"] is None
        assert "id" not in feature or isinstance(feature["id"], str | int | float)
        geometry = feature["geometry"]
        assert geometry["type"] == "Point"
        assert set(geometry) == {"type", "coordinates"}
        position = geometry["coordinates"]
        # A position is [longitude, latitude] (optionally altitude), finite numbers in range.
        assert 2 <= len(position) <= 3
        assert all(isinstance(n, int | float) and math.isfinite(n) for n in position)
        longitude, latitude = position[:2]
        assert -180 <= longitude <= 180
        assert -90 <= latitude <= 90
    return document["features"]


def export(client, query: str = "") -> tuple[object, dict]:
    response = client.get(f"{URL}{query}")
    assert response.status_code == 200, response.content
    return response, json.loads(body(response))


def by_id(features: list[dict]) -> dict[str, dict]:
    return {feature["id"]: feature for feature in features}


def test_it_is_a_valid_rfc7946_feature_collection_matching_the_database(
    admin_api, confirmed, visitor
):
    first = confirmed(position=POSITION, observer=visitor, observer_credit="Jo Park", photos=2)
    second = confirmed(position=(42.6, -0.1))

    response, document = export(admin_api)

    assert response["Content-Type"] == "application/geo+json"
    features = by_id(check_rfc7946(document))
    assert set(features) == {str(first.uuid), str(second.uuid)}
    for observation in (first, second):
        observation.refresh_from_db()
        feature = features[str(observation.uuid)]
        assert feature["geometry"]["coordinates"] == [observation.longitude, observation.latitude]
        properties = feature["properties"]
        assert properties["occurrence_id"] == f"urn:uuid:{observation.uuid}"
        assert properties["scientific_name"] == observation.final_taxon.scientific_name
        assert properties["observed_at"] == "2026-06-01T10:30:00+02:00"
        assert properties["coordinate_uncertainty_m"] == observation.accuracy_m
        assert properties["position_generalised"] is False
        assert properties["park"] == observation.park.name
        assert properties["url"] == f"{settings.SITE_URL}{observation.get_absolute_url()}"
        assert properties["photo_urls"] == [
            f"{settings.SITE_URL}{photo.image.url}"
            for photo in observation.photos.order_by("position")
        ]
    assert features[str(first.uuid)]["geometry"]["coordinates"] == [-0.05320, 42.64151]
    assert features[str(first.uuid)]["properties"]["recorded_by"] == "Jo Park"
    assert features[str(second.uuid)]["properties"]["recorded_by"] == ""


def test_an_empty_export_is_still_a_valid_feature_collection(admin_api, confirmed):
    confirmed()
    Observation.objects.update(status=Observation.Status.REJECTED)

    _, document = export(admin_api)

    assert check_rfc7946(document) == []


def test_public_positions_of_a_sensitive_taxon_are_the_cell_centre(admin_api, confirmed, taxa):
    orchid = confirmed(taxon=taxa[3], position=POSITION)
    plain = confirmed(position=POSITION)

    _, public = export(admin_api)
    _, exact = export(admin_api, "?positions=exact")

    generalised = by_id(check_rfc7946(public))[str(orchid.uuid)]
    assert generalised["geometry"]["coordinates"] == [-0.05, 42.65]
    assert generalised["properties"]["position_generalised"] is True
    assert generalised["properties"]["coordinate_uncertainty_m"] == CELL_UNCERTAINTY_M
    assert generalised["properties"]["information_withheld"] == (
        "Exact coordinates withheld: sensitive taxon; available on request."
    )
    assert "42.64151" not in json.dumps(generalised)
    # A taxon that is not sensitive keeps its position in a public file.
    assert by_id(public["features"])[str(plain.uuid)]["geometry"]["coordinates"] == [
        -0.05320,
        42.64151,
    ]
    precise = by_id(check_rfc7946(exact))[str(orchid.uuid)]
    assert precise["geometry"]["coordinates"] == [-0.05320, 42.64151]
    assert precise["properties"]["position_generalised"] is False
    assert precise["properties"]["information_withheld"] == ""
