"""`GET /api/v1/exports/<csv|geojson|dwca>/`: admins only, filters, headers, streaming."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from observations.models import Observation
from tests.conftest import OUTSIDE
from tests.factories import CampaignFactory, ParkFactory, square
from tests.observations.exports.conftest import MADRID, body

pytestmark = pytest.mark.django_db

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "geojson": ("application/geo+json", "geojson"),
    "dwca": ("application/zip", "zip"),
}


def url(fmt: str, query: str = "") -> str:
    return f"/api/v1/exports/{fmt}/{query}"


def uuids(client, query: str = "") -> set[str]:
    """The sightings in a CSV export."""
    response = client.get(url("csv", query))
    assert response.status_code == 200, response.content
    return {row["uuid"] for row in csv.DictReader(io.StringIO(body(response).decode()))}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_visitors_and_curators_are_refused(fmt, visitor, curator, confirmed):
    confirmed()
    for user in (visitor, curator):
        client = APIClient()
        client.force_login(user)
        response = client.get(url(fmt))
        assert response.status_code == 403
        assert response.json() == {
            "error": "permission_denied",
            "detail": "Only admins may do this.",
        }


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_anonymous_callers_must_sign_in(fmt):
    response = APIClient().get(url(fmt))

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_the_file_streams_as_a_dated_attachment(fmt, admin_api, confirmed):
    confirmed()

    response = admin_api.get(url(fmt), HTTP_ACCEPT="*/*")

    content_type, extension = FORMATS[fmt]
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == content_type
    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == (
        f'attachment; filename="parkwatch-{fmt}-{today}.{extension}"'
    )
    assert body(response)


def test_a_client_asking_for_csv_gets_csv_and_its_errors_as_json(admin_api, confirmed):
    confirmed()

    ok = admin_api.get(url("csv"), HTTP_ACCEPT="text/csv")
    bad = admin_api.get(url("csv", "?since=yesterday"), HTTP_ACCEPT="text/csv")

    assert ok.status_code == 200
    assert body(ok).startswith(b"occurrence_id,uuid,")
    assert bad.status_code == 400
    assert bad["Content-Type"] == "application/json"
    assert bad.json()["field"] == "since"


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("?campaign=nope", "campaign", "unknown_campaign"),
        ("?park=nowhere", "park", "unknown_park"),
        ("?taxon=Homo%20sapiens", "taxon", "unknown_taxon"),
        ("?taxon=99999", "taxon", "unknown_taxon"),
        ("?since=2026-13-01", "since", "invalid_date"),
        ("?until=last%20week", "until", "invalid_date"),
        ("?since=2026-07-01&until=2026-06-01", "since", "invalid_date_range"),
        ("?invasive_only=maybe", "invasive_only", "invalid_boolean"),
        ("?gbif_only=2", "gbif_only", "invalid_boolean"),
        ("?positions=precise", "positions", "invalid_positions"),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_field(query, field, code, admin_api, campaign):
    response = admin_api.get(url("dwca", query))

    assert response.status_code == 400
    assert not response.streaming
    assert response.json()["error"] == code
    assert response.json()["field"] == field
    assert response.json()["detail"]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_checks_its_filters_before_sending_a_byte(fmt, admin_api, campaign):
    response = admin_api.get(url(fmt, "?park=nowhere"))

    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown_park",
        "detail": "No park is called 'nowhere'.",
        "field": "park",
    }


def test_it_filters_by_campaign_park_taxon_dates_and_invasiveness(
    admin_api, confirmed, campaign, taxa, park
):
    madrid = ParkFactory(name="Casa de Campo", slug="casa-de-campo", boundary=square(*OUTSIDE))
    other = CampaignFactory(name="Madrid parks", slug="madrid-parks")
    other.taxa.add(*taxa)
    # 01:30 in Madrid on 1 June is 23:30 UTC on 31 May: a day of the site's zone (UTC).
    may = confirmed(observed_at=datetime(2026, 6, 1, 1, 30, tzinfo=MADRID))
    june = confirmed(taxon=taxa[1])
    in_madrid = confirmed(position=OUTSIDE, campaign=other)
    orchid = confirmed(taxon=taxa[3], observed_at=datetime(2026, 7, 2, 9, 0, tzinfo=MADRID))
    assert Observation.objects.get(pk=in_madrid.pk).park == madrid

    everything = {str(o.uuid) for o in (may, june, in_madrid, orchid)}
    assert uuids(admin_api) == everything
    assert uuids(admin_api, f"?campaign={campaign.slug}") == everything - {str(in_madrid.uuid)}
    assert uuids(admin_api, "?campaign=madrid-parks") == {str(in_madrid.uuid)}
    assert uuids(admin_api, "?park=casa-de-campo") == {str(in_madrid.uuid)}
    assert uuids(admin_api, f"?park={park.slug}") == everything - {str(in_madrid.uuid)}
    assert uuids(admin_api, f"?taxon={taxa[1].pk}") == {str(june.uuid)}
    assert uuids(admin_api, "?taxon=reynoutria%20JAPONICA") == {str(june.uuid)}
    assert uuids(admin_api, "?until=2026-05-31") == {str(may.uuid)}
    assert uuids(admin_api, "?since=2026-06-01&until=2026-06-30") == {
        str(june.uuid),
        str(in_madrid.uuid),
    }
    assert uuids(admin_api, "?since=2026-07-02") == {str(orchid.uuid)}
    # The orchid is the only taxon of the four that is not invasive.
    assert uuids(admin_api, "?invasive_only=1") == everything - {str(orchid.uuid)}
    assert uuids(admin_api, "?invasive_only=true&park=ordesa&taxon=Buddleja%20davidii") == {
        str(may.uuid)
    }


def test_only_confirmed_sightings_with_a_final_taxon_are_exported(admin_api, confirmed, submit):
    kept = confirmed()
    for status in (
        Observation.Status.RECEIVED,
        Observation.Status.CLASSIFIED,
        Observation.Status.IN_REVIEW,
        Observation.Status.REJECTED,
        Observation.Status.NEEDS_INFO,
        Observation.Status.CONFLICT,
    ):
        Observation.objects.filter(pk=submit().pk).update(status=status)
    # Confirmed by its status but without a taxon (should never happen): left out.
    Observation.objects.filter(pk=submit().pk).update(status=Observation.Status.CONFIRMED)

    assert uuids(admin_api) == {str(kept.uuid)}


def test_the_number_of_queries_does_not_grow_with_the_records(admin_api, confirmed, settings):
    settings.EXPORT_CHUNK_SIZE = 100

    def queries_for_export() -> int:
        with CaptureQueriesContext(connection) as captured:
            body(admin_api.get(url("dwca")))
        return len(captured)

    confirmed()
    one = queries_for_export()
    for _ in range(5):
        confirmed(photos=2)
    six = queries_for_export()

    assert six == one
