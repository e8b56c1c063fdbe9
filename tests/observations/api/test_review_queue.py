"""GET /api/v1/review/queue/: what waits for a curator, most urgent first, with its filters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from observations.models import Observation, Review
from observations.roles import CURATOR_GROUP
from tests.conftest import OUTSIDE
from tests.factories import CampaignFactory, ParkFactory, UserFactory, square

pytestmark = pytest.mark.django_db

QUEUE = "/api/v1/review/queue/"
CLASSIFIED = Observation.Status.CLASSIFIED


@pytest.fixture
def waiting(sighting):
    """A classified sighting with the AI fields the queue sorts on, received `age` ago."""

    def make(*, age=timedelta(hours=1), **fields) -> Observation:
        observation = sighting(status=fields.pop("status", CLASSIFIED), **fields.pop("submit", {}))
        Observation.objects.filter(pk=observation.pk).update(
            received_at=timezone.now() - age, **fields
        )
        observation.refresh_from_db()
        return observation

    return make


def queue_uuids(client, **params) -> list[str]:
    response = client.get(QUEUE, params)
    assert response.status_code == 200, response.content
    return [row["uuid"] for row in response.json()["results"]]


def test_it_lists_likely_invasives_first_then_the_most_uncertain_then_the_oldest(
    signed_in, curator, waiting
):
    hours = timedelta(hours=1)
    sure_invasive = waiting(ai_invasive_score=0.9, ai_entropy=0.1, age=1 * hours)
    unsure_invasive = waiting(ai_invasive_score=0.5, ai_entropy=0.8, age=2 * hours)
    most_uncertain = waiting(ai_invasive_score=0.1, ai_entropy=1.5, age=3 * hours)
    older_of_two = waiting(ai_invasive_score=0.1, ai_entropy=0.2, age=5 * hours)
    newer_of_two = waiting(ai_invasive_score=0.1, ai_entropy=0.2, age=4 * hours)
    not_classified = waiting(status=Observation.Status.RECEIVED, age=9 * hours)

    assert queue_uuids(signed_in(curator)) == [
        str(o.uuid)
        for o in (
            unsure_invasive,
            sure_invasive,
            most_uncertain,
            older_of_two,
            newer_of_two,
            not_classified,
        )
    ]


def test_each_row_says_what_a_curator_needs_to_pick(signed_in, curator, waiting, taxa):
    knotweed, heaven = taxa[1], taxa[2]
    original = waiting(age=timedelta(hours=2))
    other_curator = UserFactory(username="other-curator", role=CURATOR_GROUP)
    observation = waiting(
        ai_taxon=heaven,
        ai_label="ailanthus_altissima",
        ai_score=0.73,
        ai_invasive_score=0.73,
        ai_entropy=0.61,
        possible_duplicate_of=original,
        status=Observation.Status.IN_REVIEW,
        claimed_by=other_curator,
        claim_expires_at=timezone.now() - timedelta(minutes=1),
        submit={"guess": knotweed, "photos": 2},
    )

    rows = signed_in(curator).get(QUEUE).json()["results"]

    row = next(row for row in rows if row["uuid"] == str(observation.uuid))
    assert row["status"] == "in_review"
    assert row["campaign"]["slug"] == "ordesa-invasives"
    assert row["park"]["slug"] == "ordesa"
    assert len(row["thumbnails"]) == 2
    assert all(url.startswith("http://testserver/") for url in row["thumbnails"])
    assert row["ai"]["taxon"]["scientific_name"] == "Ailanthus altissima"
    assert row["ai"]["score"] == 0.73
    assert row["ai_invasive_score"] == 0.73
    assert row["ai_entropy"] == 0.61
    assert row["guess"]["scientific_name"] == "Reynoutria japonica"
    assert row["possible_duplicate_of"] == str(original.uuid)
    assert row["claimed_by"] == "other-curator"  # expired: free to take over
    assert row["received_at"] and row["observed_at"]
    assert "position" not in row and "latitude" not in row


def test_it_leaves_out_live_claims_verdicts_and_what_this_curator_already_reviewed(
    signed_in, curator, waiting, taxa
):
    other_curator = UserFactory(username="other-curator", role=CURATOR_GROUP)
    free = waiting()
    waiting(
        status=Observation.Status.IN_REVIEW,
        claimed_by=other_curator,
        claim_expires_at=timezone.now() + timedelta(minutes=10),
    )
    waiting(status=Observation.Status.CONFIRMED, final_taxon=taxa[0])
    waiting(status=Observation.Status.REJECTED)
    reviewed = waiting()
    Review.objects.create(observation=reviewed, curator=curator, decision="confirm", taxon=taxa[0])

    assert queue_uuids(signed_in(curator)) == [str(free.uuid)]
    assert str(reviewed.uuid) in queue_uuids(signed_in(other_curator))


def test_conflicts_are_listed_for_lead_curators_and_admins_only(
    signed_in, curator, admin_user, campaign, waiting
):
    lead = UserFactory(username="lead", role=CURATOR_GROUP)
    campaign.lead_curators.add(lead)
    conflict = waiting(status=Observation.Status.CONFLICT)

    assert queue_uuids(signed_in(curator)) == []
    assert queue_uuids(signed_in(lead)) == [str(conflict.uuid)]
    assert queue_uuids(signed_in(admin_user)) == [str(conflict.uuid)]


def test_it_filters_by_campaign(signed_in, curator, waiting, park):
    conus = CampaignFactory(name="Conus", slug="conus")
    conus.parks.add(park)
    ordesa_one = waiting()
    conus_one = waiting(submit={"campaign": conus})

    assert queue_uuids(signed_in(curator), campaign="conus") == [str(conus_one.uuid)]
    assert queue_uuids(signed_in(curator), campaign="ordesa-invasives") == [str(ordesa_one.uuid)]


def test_it_filters_by_park(signed_in, curator, waiting, campaign):
    teide = ParkFactory(name="Teide", slug="teide", boundary=square(*OUTSIDE))
    campaign.parks.add(teide)
    in_ordesa = waiting()
    in_teide = waiting(submit={"position": OUTSIDE})
    assert in_teide.park == teide

    assert queue_uuids(signed_in(curator), park="teide") == [str(in_teide.uuid)]
    assert queue_uuids(signed_in(curator), park="ordesa") == [str(in_ordesa.uuid)]


def test_it_filters_by_the_ai_top_1(signed_in, curator, waiting, taxa):
    buddleja, knotweed = taxa[0], taxa[1]
    waiting(ai_taxon=buddleja)
    knotweed_one = waiting(ai_taxon=knotweed)
    waiting()

    assert queue_uuids(signed_in(curator), ai_taxon=knotweed.pk) == [str(knotweed_one.uuid)]


def test_it_filters_likely_invasives(signed_in, curator, waiting, settings):
    settings.REVIEW_INVASIVE_THRESHOLD = 0.3
    likely = waiting(ai_invasive_score=0.31)
    waiting(ai_invasive_score=0.29)
    waiting()

    assert queue_uuids(signed_in(curator), invasive_only="true") == [str(likely.uuid)]
    assert len(queue_uuids(signed_in(curator), invasive_only="false")) == 3


def test_it_filters_possible_duplicates(signed_in, curator, waiting):
    original = waiting()
    duplicate = waiting(possible_duplicate_of=original)

    assert queue_uuids(signed_in(curator), duplicates_only="1") == [str(duplicate.uuid)]


def test_it_pages_the_queue(signed_in, curator, waiting):
    for age in range(3):
        waiting(age=timedelta(hours=age + 1))

    body = signed_in(curator).get(QUEUE, {"limit": 2}).json()

    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"]


def test_a_malformed_filter_is_a_400_naming_the_field(signed_in, curator):
    response = signed_in(curator).get(QUEUE, {"ai_taxon": "knotweed"})

    assert response.status_code == 400
    assert response.json()["field"] == "ai_taxon"


def test_visitors_are_refused_and_anonymous_clients_must_sign_in(signed_in, visitor, waiting):
    waiting()

    refused = signed_in(visitor).get(QUEUE)
    anonymous = APIClient().get(QUEUE)

    assert refused.status_code == 403
    assert refused.json()["error"] == "permission_denied"
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "not_authenticated"


def test_a_longer_queue_costs_no_more_queries(signed_in, curator, waiting, taxa):
    client = signed_in(curator)
    other_curator = UserFactory(username="other-curator", role=CURATOR_GROUP)

    def add_row() -> None:
        original = waiting()
        waiting(
            ai_taxon=taxa[0],
            guess=taxa[1],
            possible_duplicate_of=original,
            status=Observation.Status.IN_REVIEW,
            claimed_by=other_curator,
            claim_expires_at=timezone.now() - timedelta(minutes=1),
        )

    add_row()
    client.get(QUEUE)  # sessions, groups and content types warmed up
    with CaptureQueriesContext(connection) as few:
        assert len(client.get(QUEUE).json()["results"]) == 2
    for _ in range(3):
        add_row()
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(QUEUE).json()["results"]) == 8

    assert len(many) == len(few)
