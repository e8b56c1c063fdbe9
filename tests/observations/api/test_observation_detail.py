"""GET /api/v1/observations/<uuid>/: one sighting, as this viewer may see it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from observations.models import Observation
from tests.observations.api.conftest import detail_url

pytestmark = pytest.mark.django_db

CONFIRMED = Observation.Status.CONFIRMED
SECRET_SPOT = (42.63917, -0.04781)


def test_an_unknown_sighting_is_a_404_in_the_error_format(api, campaign):
    response = api.get(f"/api/v1/observations/{uuid.uuid4()}/")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "No such sighting."}


def test_a_sighting_is_readable_by_anyone_holding_its_uuid_but_listed_only_for_its_owner(
    signed_in, sighting, visitor, other_visitor, curator
):
    observation = sighting(observer=other_visitor)

    for client in (signed_in(visitor), APIClient(), signed_in(other_visitor), signed_in(curator)):
        assert client.get(detail_url(observation)).status_code == 200
    listed = signed_in(visitor).get("/api/v1/observations/").json()["results"]
    assert str(observation.uuid) not in {row["uuid"] for row in listed}
    body = APIClient().get(detail_url(observation)).json()
    assert body["observer"] is None  # no credit chosen: strangers see no name
    assert signed_in(curator).get(detail_url(observation)).json()["observer"] == other_visitor.username
    assert "@" not in str(body)


def test_it_shows_status_ai_suggestion_review_outcome_and_control(
    signed_in, sighting, visitor, taxa, park
):
    knotweed, heaven = taxa[1], taxa[2]
    observation = sighting(observer=visitor, guess=knotweed, notes="Along the river.")
    Observation.objects.filter(pk=observation.pk).update(
        status=CONFIRMED,
        ai_taxon=heaven,
        ai_label="ailanthus_altissima",
        ai_score=0.82,
        ai_entropy=0.41,
        classified_at=datetime(2026, 6, 1, 9, 0, tzinfo=UTC),
        final_taxon=knotweed,
        control_status=Observation.ControlStatus.ASSESSED,
    )

    body = signed_in(visitor).get(detail_url(observation)).json()

    assert body["uuid"] == str(observation.uuid)
    assert body["url"] == f"http://testserver/sightings/{observation.uuid}/"
    assert body["status"] == "confirmed"
    assert body["status_display"] == "Confirmed"
    assert body["park"] == {"slug": park.slug, "name": park.name}
    assert body["notes"] == "Along the river."
    assert body["guess"]["scientific_name"] == "Reynoutria japonica"
    assert body["ai"] == {
        "taxon": {
            "id": heaven.pk,
            "scientific_name": "Ailanthus altissima",
            "common_name": "Tree of heaven",
            "is_invasive": True,
        },
        "label": "ailanthus_altissima",
        "score": 0.82,
        "entropy": 0.41,
        "classified_at": "2026-06-01T09:00:00Z",
    }
    assert body["predictions"] == []
    assert body["review"]["final_taxon"]["id"] == knotweed.pk
    assert body["control_status"] == "assessed"
    assert body["observer"] == "visitor"
    assert body["position"]["generalised"] is False


def test_a_fresh_sighting_has_no_ai_suggestion_or_outcome_yet(signed_in, sighting, visitor):
    body = signed_in(visitor).get(detail_url(sighting(observer=visitor))).json()

    assert body["ai"] == {
        "taxon": None,
        "label": "",
        "score": None,
        "entropy": None,
        "classified_at": None,
    }
    assert body["review"] == {"final_taxon": None}
    assert body["control_status"] is None
    assert body["guess"] is None
    assert body["status"] == "received"


@pytest.mark.parametrize("sensitive_by", ["guess", "ai_taxon", "final_taxon"])
def test_a_sensitive_taxon_hides_the_exact_position_from_other_visitors(
    signed_in, sighting, visitor, other_visitor, curator, admin_user, taxa, sensitive_by
):
    orchid = taxa[3]
    observation = sighting(observer=visitor, position=SECRET_SPOT, status=CONFIRMED)
    Observation.objects.filter(pk=observation.pk).update(**{sensitive_by: orchid}, altitude_m=987.6)

    other = signed_in(other_visitor).get(detail_url(observation))
    anonymous = APIClient().get(detail_url(observation))

    for response in (other, anonymous):
        body = response.json()
        assert body["position"]["generalised"] is True
        assert (body["position"]["latitude"], body["position"]["longitude"]) == (42.65, -0.05)
        assert body["altitude_m"] is None
        text = response.content.decode()
        for secret in ("42.63917", "0.04781", "987.6"):
            assert secret not in text

    for viewer in (visitor, curator, admin_user):
        body = signed_in(viewer).get(detail_url(observation)).json()
        assert body["position"]["generalised"] is False
        assert (body["position"]["latitude"], body["position"]["longitude"]) == SECRET_SPOT
        assert body["altitude_m"] == 987.6


def test_a_sighting_of_a_common_taxon_shows_the_exact_position_to_everyone(sighting, visitor, taxa):
    observation = sighting(observer=visitor, position=SECRET_SPOT, guess=taxa[0], status=CONFIRMED)

    body = APIClient().get(detail_url(observation)).json()

    assert body["position"] == {
        "latitude": SECRET_SPOT[0],
        "longitude": SECRET_SPOT[1],
        "accuracy_m": 5.0,
        "generalised": False,
        "note": "",
    }


def test_a_token_user_sees_their_own_sighting(token_client, sighting, visitor):
    observation = sighting(observer=visitor)

    response = token_client(visitor).get(detail_url(observation))

    assert response.status_code == 200
    assert response.json()["observer"] == "visitor"
