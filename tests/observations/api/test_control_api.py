"""GET /api/v1/control/ and POST /api/v1/observations/<uuid>/control/: follow-up of invasives."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from observations.models import ControlEvent, Observation
from tests.factories import TaxonFactory

pytestmark = pytest.mark.django_db

CONTROL = "/api/v1/control/"
CLASSIFIED = Observation.Status.CLASSIFIED


def control_url(observation) -> str:
    return f"/api/v1/observations/{observation.uuid}/control/"


def confirm(client, observation, taxon):
    response = client.post(
        f"/api/v1/observations/{observation.uuid}/reviews/",
        {"decision": "confirm", "taxon": taxon.pk},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response


def advance(client, observation, to_status, note="Checked on site."):
    return client.post(
        control_url(observation), {"to_status": to_status, "note": note}, format="json"
    )


@pytest.fixture
def native(db):
    return TaxonFactory(scientific_name="Pinus uncinata", is_invasive=False)


def test_a_confirmed_invasive_is_reported_with_an_event_and_listed(
    signed_in, curator, sighting, taxa, park
):
    observation = sighting(status=CLASSIFIED)
    client = signed_in(curator)

    confirm(client, observation, taxa[1])

    observation.refresh_from_db()
    assert observation.control_status == "reported"
    response = client.get(CONTROL)
    assert response.status_code == 200
    (case,) = response.json()["results"]
    assert case["uuid"] == str(observation.uuid)
    assert case["control_status"] == "reported"
    assert case["final_taxon"]["scientific_name"] == "Reynoutria japonica"
    assert case["park"]["slug"] == park.slug
    assert (case["latitude"], case["longitude"]) == (observation.latitude, observation.longitude)
    assert [(e["from_status"], e["to_status"], e["user"]) for e in case["events"]] == [
        ("", "reported", "curator")
    ]


def test_a_confirmed_native_is_not_followed_up(signed_in, curator, sighting, native):
    observation = sighting(status=CLASSIFIED)
    client = signed_in(curator)

    confirm(client, observation, native)

    assert client.get(CONTROL).json()["count"] == 0
    response = advance(client, observation, "assessed")
    assert response.status_code == 400
    assert response.json()["error"] == "not_under_control"


def test_a_curator_advances_the_follow_up_with_a_note(signed_in, curator, sighting, taxa):
    observation = sighting(status=CLASSIFIED)
    client = signed_in(curator)
    confirm(client, observation, taxa[0])

    response = advance(client, observation, "assessed", "About 30 plants along the river.")

    assert response.status_code == 201
    body = response.json()
    assert body["event"] == {
        "from_status": "reported",
        "to_status": "assessed",
        "user": "curator",
        "note": "About 30 plants along the river.",
        "created_at": body["event"]["created_at"],
    }
    assert body["case"]["control_status"] == "assessed"
    assert [e["to_status"] for e in body["case"]["events"]] == ["reported", "assessed"]
    assert Observation.objects.get(pk=observation.pk).control_status == "assessed"


def test_steps_may_be_skipped_forwards_and_regrowth_goes_back_to_treatment(
    signed_in, curator, sighting, taxa
):
    observation = sighting(status=CLASSIFIED)
    client = signed_in(curator)
    confirm(client, observation, taxa[0])

    assert advance(client, observation, "treated").status_code == 201
    assert advance(client, observation, "monitoring").status_code == 201
    assert advance(client, observation, "treatment_scheduled", "Regrowth.").status_code == 201
    assert Observation.objects.get(pk=observation.pk).control_status == "treatment_scheduled"


@pytest.mark.parametrize(
    ("to_status", "note", "field", "error"),
    [
        ("reported", "Back to the start.", "to_status", "invalid_control_transition"),
        ("assessed", "Again.", "to_status", "unchanged"),
        ("burnt", "Fire.", "to_status", "invalid_control_status"),
        ("treated", "  ", "note", "note_missing"),
    ],
)
def test_an_invalid_step_is_a_400_and_records_nothing(
    signed_in, curator, sighting, taxa, to_status, note, field, error
):
    observation = sighting(status=CLASSIFIED)
    client = signed_in(curator)
    confirm(client, observation, taxa[0])
    advance(client, observation, "assessed")
    events = ControlEvent.objects.count()

    response = advance(client, observation, to_status, note)

    assert response.status_code == 400
    assert (response.json()["error"], response.json()["field"]) == (error, field)
    assert ControlEvent.objects.count() == events
    assert Observation.objects.get(pk=observation.pk).control_status == "assessed"


def test_an_unknown_sighting_is_a_404(signed_in, curator, campaign):
    response = signed_in(curator).post(
        "/api/v1/observations/00000000-0000-4000-8000-000000000000/control/",
        {"to_status": "assessed", "note": "x"},
        format="json",
    )

    assert response.status_code == 404


def test_eradicated_cases_are_listed_only_when_asked(signed_in, admin_user, sighting, taxa):
    open_case, closed_case = (sighting(status=CLASSIFIED) for _ in range(2))
    client = signed_in(admin_user)
    for observation in (open_case, closed_case):
        confirm(client, observation, taxa[0])
    assert advance(client, closed_case, "eradicated").status_code == 201

    listed = [case["uuid"] for case in client.get(CONTROL).json()["results"]]
    everything = [c["uuid"] for c in client.get(CONTROL, {"include_closed": "1"}).json()["results"]]

    assert listed == [str(open_case.uuid)]
    assert sorted(everything) == sorted([str(open_case.uuid), str(closed_case.uuid)])


def test_visitors_cannot_see_or_record_control_work(signed_in, curator, visitor, sighting, taxa):
    observation = sighting(status=CLASSIFIED, observer=visitor)
    confirm(signed_in(curator), observation, taxa[0])

    for client, code in ((signed_in(visitor), 403), (APIClient(), 401)):
        assert client.get(CONTROL).status_code == code
        refused = advance(client, observation, "assessed")
        assert refused.status_code == code
        assert set(refused.json()) == {"error", "detail"}
    assert Observation.objects.get(pk=observation.pk).control_status == "reported"


def test_a_longer_list_costs_no_more_queries(signed_in, curator, sighting, taxa):
    client = signed_in(curator)
    first = sighting(status=CLASSIFIED)
    confirm(client, first, taxa[0])
    advance(client, first, "assessed")
    client.get(CONTROL)
    with CaptureQueriesContext(connection) as few:
        assert client.get(CONTROL).json()["count"] == 1
    for taxon in taxa[:3]:
        observation = sighting(status=CLASSIFIED)
        confirm(client, observation, taxon)
        advance(client, observation, "treated")
    with CaptureQueriesContext(connection) as many:
        assert client.get(CONTROL).json()["count"] == 4

    assert len(many) == len(few)
