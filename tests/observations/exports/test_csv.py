"""The CSV export, read back with the csv module and compared with the database."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from django.conf import settings

from observations.exports.csv import HEADER
from observations.models import Observation
from tests.observations.exports.conftest import body

pytestmark = pytest.mark.django_db

URL = "/api/v1/exports/csv/"
# The columns README.md documents, in order.
DOCUMENTED_COLUMNS = [
    "occurrence_id",
    "uuid",
    "url",
    "observed_at",
    "latitude",
    "longitude",
    "coordinate_uncertainty_m",
    "position_generalised",
    "information_withheld",
    "position_source",
    "park",
    "park_slug",
    "country_code",
    "campaign",
    "scientific_name",
    "authorship",
    "taxon_rank",
    "common_name",
    "kingdom",
    "family",
    "gbif_taxon_key",
    "is_invasive",
    "recorded_by",
    "identified_by",
    "date_identified",
    "verification_status",
    "ai_taxon",
    "ai_probability",
    "ai_model",
    "licence",
    "licence_url",
    "rights_holder",
    "control_status",
    "photo_urls",
    "modified",
]


def read(client, query: str = "") -> tuple[object, list[str], list[dict]]:
    response = client.get(f"{URL}{query}")
    assert response.status_code == 200, response.content
    reader = csv.DictReader(io.StringIO(body(response).decode("utf-8")))
    rows = list(reader)
    return response, reader.fieldnames, rows


def test_it_reads_back_with_the_documented_columns_and_the_database_values(
    admin_api, confirmed, visitor, taxa
):
    first = confirmed(observer=visitor, observer_credit="Jo Park", photos=2)
    second = confirmed(taxon=taxa[2], licence=Observation.Licence.CC0)
    Observation.objects.filter(pk=second.pk).update(ai_label="ailanthus", ai_score=0.87)

    response, columns, rows = read(admin_api)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert columns == DOCUMENTED_COLUMNS == list(HEADER)
    rows = {row["uuid"]: row for row in rows}
    assert set(rows) == {str(first.uuid), str(second.uuid)}
    for observation in (first, second):
        observation = Observation.objects.select_related("park", "final_taxon", "campaign").get(
            pk=observation.pk
        )
        row = rows[str(observation.uuid)]
        assert row["occurrence_id"] == f"urn:uuid:{observation.uuid}"
        assert row["url"] == f"{settings.SITE_URL}/sightings/{observation.uuid}/"
        assert row["observed_at"] == "2026-06-01T10:30:00+02:00"
        assert float(row["latitude"]) == observation.latitude
        assert float(row["longitude"]) == observation.longitude
        assert float(row["coordinate_uncertainty_m"]) == observation.accuracy_m
        assert row["position_generalised"] == "false"
        assert row["park"] == observation.park.name
        assert row["park_slug"] == "ordesa"
        assert row["country_code"] == "ES"
        assert row["campaign"] == observation.campaign.slug
        assert row["scientific_name"] == observation.final_taxon.scientific_name
        assert row["is_invasive"] == "true"
        assert row["identified_by"] == "curator"
        assert row["verification_status"] == "verified by specialist"
        assert datetime.fromisoformat(row["date_identified"]) == observation.decided_at.replace(
            microsecond=0
        )
        assert row["licence"] == observation.licence
        assert row["photo_urls"].split(" | ") == [
            f"{settings.SITE_URL}{photo.image.url}"
            for photo in observation.photos.order_by("position")
        ]
    assert rows[str(first.uuid)]["recorded_by"] == "Jo Park"
    assert rows[str(second.uuid)]["recorded_by"] == ""
    assert rows[str(second.uuid)]["rights_holder"] == settings.DWCA_RIGHTS_HOLDER
    assert rows[str(second.uuid)]["scientific_name"] == "Ailanthus altissima"
    assert rows[str(second.uuid)]["licence_url"] == (
        "https://creativecommons.org/publicdomain/zero/1.0/legalcode"
    )
    assert rows[str(second.uuid)]["ai_taxon"] == "ailanthus"
    assert float(rows[str(second.uuid)]["ai_probability"]) == 0.87


def test_a_sensitive_position_is_generalised_unless_exact_positions_are_asked(
    admin_api, confirmed, taxa
):
    orchid = confirmed(taxon=taxa[3], position=(42.64151, -0.05320))

    _, _, public = read(admin_api)
    _, _, exact = read(admin_api, "?positions=exact")

    assert (public[0]["latitude"], public[0]["longitude"]) == ("42.65", "-0.05")
    assert public[0]["position_generalised"] == "true"
    assert public[0]["information_withheld"] == (
        "Exact coordinates withheld: sensitive taxon; available on request."
    )
    assert (exact[0]["latitude"], exact[0]["longitude"]) == ("42.64151", "-0.0532")
    assert exact[0]["uuid"] == str(orchid.uuid)


def test_a_name_that_a_spreadsheet_would_run_as_a_formula_stays_text(admin_api, confirmed):
    confirmed(observer_credit='=HYPERLINK("http://evil.example","x")')

    _, _, rows = read(admin_api)

    assert rows[0]["recorded_by"] == '\'=HYPERLINK("http://evil.example","x")'
