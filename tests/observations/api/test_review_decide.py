"""POST/GET /api/v1/observations/<uuid>/reviews/, .../release/ and /api/v1/review/bulk/."""

from __future__ import annotations

import uuid as uuid_module
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from classifier.services.inference import classify_pending
from observations.models import Observation, Review
from observations.roles import CURATOR_GROUP
from observations.selectors import ai_predictions, confirmed_by, observation_get, training_pool
from tests.classifier.support import register_tiny_classifier
from tests.factories import UserFactory
from tests.observations.api.conftest import detail_url

pytestmark = pytest.mark.django_db

CLASSIFIED = Observation.Status.CLASSIFIED
BULK = "/api/v1/review/bulk/"
NEXT = "/api/v1/review/next/"


def reviews_url(observation) -> str:
    return f"/api/v1/observations/{observation.uuid}/reviews/"


def release_url(observation) -> str:
    return f"/api/v1/observations/{observation.uuid}/release/"


def decide(client, observation, **body):
    return client.post(reviews_url(observation), body, format="json")


def status_of(observation) -> str:
    return Observation.objects.get(pk=observation.pk).status


@pytest.fixture
def second_curator(db):
    return UserFactory(username="second-curator", role=CURATOR_GROUP)


@pytest.fixture
def lead(campaign):
    user = UserFactory(username="lead", role=CURATOR_GROUP)
    campaign.lead_curators.add(user)
    return user


@pytest.fixture
def classified(campaign, sighting, tmp_path):
    """Sightings classified for real by a tiny Keras model, with their Prediction rows."""
    register_tiny_classifier(campaign, tmp_path)

    def make(**fields) -> Observation:
        observation = sighting(**fields)
        classify_pending(hint_ids=[observation.pk])
        observation = observation_get(uuid=observation.uuid)
        assert observation.status == CLASSIFIED and len(ai_predictions(observation)) > 1
        return observation

    return make


# -- one decision ------------------------------------------------------------------------------


def test_a_curator_confirms_with_a_taxon_id(signed_in, curator, sighting, taxa):
    observation = sighting(status=CLASSIFIED)

    response = decide(signed_in(curator), observation, decision="confirm", taxon=str(taxa[1].pk))

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "confirmed"
    assert body["final"] is True
    assert body["review"]["curator"] == "curator"
    assert body["review"]["decision"] == "confirm"
    assert body["review"]["taxon"]["scientific_name"] == "Reynoutria japonica"
    assert body["observation"]["review"]["final_taxon"]["id"] == taxa[1].pk
    assert body["observation"]["curation"]["reviews"][0]["id"] == body["review"]["id"]
    observation.refresh_from_db()
    assert (observation.status, observation.final_taxon, observation.claimed_by) == (
        "confirmed",
        taxa[1],
        None,
    )
    assert observation.decided_at is not None


def test_a_curator_confirms_with_a_scientific_name(signed_in, curator, sighting, taxa):
    observation = sighting(status=CLASSIFIED)

    response = decide(
        signed_in(curator), observation, decision="confirm", taxon="ailanthus ALTISSIMA"
    )

    assert response.status_code == 201
    assert Observation.objects.get(pk=observation.pk).final_taxon == taxa[2]


def test_a_curator_confirms_the_ais_rank_and_the_review_keeps_what_the_ai_said(
    signed_in, curator, classified
):
    observation = classified()
    rows = ai_predictions(observation)

    response = decide(signed_in(curator), observation, decision="confirm", rank=2)

    assert response.status_code == 201
    assert response.json()["review"]["taxon"]["id"] == rows[1].taxon_id
    review = Review.objects.get(observation=observation)
    assert review.taxon_id == rows[1].taxon_id
    assert review.ai_snapshot["version"] == rows[0].version.label
    assert [(r["rank"], r["taxon"]) for r in review.ai_snapshot["top5"]] == [
        (row.rank, row.taxon.scientific_name) for row in rows
    ]
    assert review.ai_snapshot["ai_taxon"] == rows[0].taxon.scientific_name
    assert response.json()["review"]["ai_snapshot"] == review.ai_snapshot


def test_the_snapshot_is_of_the_newest_classifier_version(
    signed_in, curator, campaign, classified, tmp_path
):
    observation = classified()
    newer = register_tiny_classifier(campaign, tmp_path, seed=7)
    Observation.objects.filter(pk=observation.pk).update(
        status=Observation.Status.RECEIVED, classification_claimed_until=None
    )
    classify_pending(hint_ids=[observation.pk])
    newest_rows = ai_predictions(observation_get(uuid=observation.uuid))
    assert newest_rows[0].version == newer

    decide(signed_in(curator), observation, decision="confirm", rank=1)

    snapshot = Review.objects.get(observation=observation).ai_snapshot
    assert snapshot["version"] == newer.label
    assert [r["probability"] for r in snapshot["top5"]] == [
        round(row.probability, 4) for row in newest_rows
    ]


def test_a_rank_the_ai_did_not_give_is_a_400(signed_in, curator, sighting):
    observation = sighting(status=CLASSIFIED)

    response = decide(signed_in(curator), observation, decision="confirm", rank=1)

    assert response.status_code == 400
    assert response.json()["field"] == "rank"
    assert response.json()["error"] == "no_such_rank"
    assert status_of(observation) == CLASSIFIED


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        ({"decision": "confirm"}, "taxon", "taxon_missing"),
        ({"decision": "confirm", "taxon": "Homo sapiens"}, "taxon", "unknown_taxon"),
        ({"decision": "confirm", "taxon": "Buddleja davidii", "rank": 1}, "rank", None),
        ({"decision": "confirm", "rank": 6}, "rank", "max_value"),
        ({"decision": "reject"}, "reject_reason", "reject_reason_missing"),
        ({"decision": "reject", "reject_reason": "ugly"}, "reject_reason", "invalid_choice"),
        ({"decision": "needs_info"}, "message_to_observer", "message_missing"),
        ({"decision": "needs_info", "message_to_observer": "  "}, "message_to_observer", None),
        (
            {"decision": "reject", "reject_reason": "bad_photo", "taxon": "Buddleja davidii"},
            "taxon",
            "taxon_not_expected",
        ),  # fmt: skip
        ({"decision": "approve"}, "decision", "invalid_choice"),
        ({}, "decision", "required"),
    ],
)
def test_an_incomplete_decision_is_a_400_and_changes_nothing(
    signed_in, curator, sighting, body, field, error
):
    observation = sighting(status=CLASSIFIED)

    response = decide(signed_in(curator), observation, **body)

    assert response.status_code == 400
    assert response.json()["field"] == field
    if error:
        assert response.json()["error"] == error
    assert status_of(observation) == CLASSIFIED
    assert not Review.objects.exists()


def test_a_rejection_with_a_reason(signed_in, curator, sighting):
    observation = sighting(status=CLASSIFIED)

    response = decide(
        signed_in(curator), observation, decision="reject", reject_reason="not_the_organism"
    )

    assert response.status_code == 201
    assert response.json()["review"]["reject_reason"] == "not_the_organism"
    assert status_of(observation) == "rejected"


def test_needs_info_shows_the_message_to_the_observer(signed_in, curator, visitor, sighting):
    observation = sighting(status=CLASSIFIED, observer=visitor)
    message = "Please add a photo of the leaves."

    response = decide(
        signed_in(curator), observation, decision="needs_info", message_to_observer=message
    )

    assert response.status_code == 201
    assert response.json()["status"] == "needs_info"
    assert signed_in(visitor).get(detail_url(observation)).json()["message_to_observer"] == message


def test_unidentifiable(signed_in, curator, sighting):
    observation = sighting(status=CLASSIFIED)

    assert decide(signed_in(curator), observation, decision="unidentifiable").status_code == 201
    assert status_of(observation) == "unidentifiable"


def test_an_unknown_sighting_is_a_404(signed_in, curator, campaign):
    response = signed_in(curator).post(
        f"/api/v1/observations/{uuid_module.uuid4()}/reviews/", {"decision": "unidentifiable"}
    )

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_visitors_cannot_decide_or_read_the_history(signed_in, visitor, sighting):
    observation = sighting(status=CLASSIFIED, observer=visitor)

    for client, code in ((signed_in(visitor), 403), (APIClient(), 401)):
        assert decide(client, observation, decision="unidentifiable").status_code == code
        assert client.get(reviews_url(observation)).status_code == code
        assert client.post(release_url(observation)).status_code == code
    assert status_of(observation) == CLASSIFIED


# -- claims ------------------------------------------------------------------------------------


def test_a_curator_cannot_decide_on_another_curators_live_claim(
    signed_in, curator, second_curator, sighting, taxa
):
    observation = sighting(status=CLASSIFIED)
    signed_in(second_curator).post(NEXT, format="json")

    response = decide(signed_in(curator), observation, decision="confirm", taxon=taxa[0].pk)

    assert response.status_code == 409
    assert response.json()["error"] == "claimed_by_another"
    assert status_of(observation) == "in_review"
    Observation.objects.filter(pk=observation.pk).update(
        claim_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert decide(signed_in(curator), observation, decision="unidentifiable").status_code == 201


def test_the_claim_holder_decides_and_the_claim_ends(signed_in, curator, sighting, taxa):
    observation = sighting(status=CLASSIFIED)
    client = signed_in(curator)
    client.post(NEXT, format="json")

    assert decide(client, observation, decision="confirm", taxon=taxa[0].pk).status_code == 201
    observation.refresh_from_db()
    assert (observation.status, observation.claimed_by) == ("confirmed", None)
    assert client.post(NEXT, format="json").status_code == 204


def test_release_gives_the_sighting_back_as_it_was(signed_in, curator, second_curator, sighting):
    observation = sighting(status=CLASSIFIED)
    client = signed_in(curator)
    client.post(NEXT, format="json")

    response = client.post(release_url(observation))

    assert response.status_code == 200
    assert response.json()["status"] == "classified"
    assert response.json()["curation"]["claimed_by"] is None
    assert signed_in(second_curator).post(NEXT, format="json").json()["uuid"] == str(
        observation.uuid
    )


def test_releasing_a_claim_one_does_not_hold_is_a_409(signed_in, curator, second_curator, sighting):
    observation = sighting(status=CLASSIFIED)
    signed_in(second_curator).post(NEXT, format="json")

    response = signed_in(curator).post(release_url(observation))

    assert response.status_code == 409
    assert response.json()["error"] == "not_claimed"
    assert Observation.objects.get(pk=observation.pk).claimed_by == second_curator


def test_an_admin_may_free_anyones_claim(signed_in, admin_user, curator, sighting):
    observation = sighting(status=Observation.Status.RECEIVED)
    signed_in(curator).post(NEXT, format="json")

    response = signed_in(admin_user).post(release_url(observation))

    assert response.status_code == 200
    assert response.json()["status"] == "received"


# -- agreement between curators ----------------------------------------------------------------


def test_with_two_reviews_required_the_first_leaves_it_waiting_for_another_curator(
    signed_in, curator, second_curator, campaign, sighting, taxa
):
    campaign.reviews_required = 2
    campaign.save()
    observation = sighting(status=CLASSIFIED)
    first = signed_in(curator)
    first.post(NEXT, format="json")

    response = decide(first, observation, decision="confirm", taxon=taxa[1].pk)

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["final"]) == ("classified", False)
    observation.refresh_from_db()
    assert (observation.status, observation.final_taxon, observation.claimed_by) == (
        "classified",
        None,
        None,
    )
    # Not for the same curator again; for the others, yes.
    assert first.post(NEXT, format="json").status_code == 204
    assert first.get("/api/v1/review/queue/").json()["count"] == 0
    again = decide(first, observation, decision="confirm", taxon=taxa[1].pk)
    assert (again.status_code, again.json()["error"]) == (409, "already_reviewed")
    second = signed_in(second_curator)
    assert second.post(NEXT, format="json").json()["uuid"] == str(observation.uuid)

    agreed = decide(second, observation, decision="confirm", taxon=taxa[1].pk)

    assert (agreed.json()["status"], agreed.json()["final"]) == ("confirmed", True)
    observation.refresh_from_db()
    assert observation.final_taxon == taxa[1]
    assert confirmed_by(observation) == second_curator


def test_a_first_review_of_a_sighting_not_yet_classified_leaves_it_for_the_classifier(
    signed_in, curator, campaign, sighting, taxa
):
    campaign.reviews_required = 2
    campaign.save()
    observation = sighting(status=Observation.Status.RECEIVED)

    decide(signed_in(curator), observation, decision="confirm", taxon=taxa[1].pk)

    # Still waiting for the classifier: "classified" would hide it from the inference worker.
    assert status_of(observation) == "received"


def test_disagreeing_curators_make_a_conflict_that_only_a_lead_settles(
    signed_in, curator, second_curator, lead, campaign, sighting, taxa
):
    campaign.reviews_required = 2
    campaign.save()
    observation = sighting(status=CLASSIFIED)
    decide(signed_in(curator), observation, decision="confirm", taxon=taxa[1].pk)

    response = decide(signed_in(second_curator), observation, decision="confirm", taxon=taxa[2].pk)

    assert (response.json()["status"], response.json()["final"]) == ("conflict", True)
    assert Observation.objects.get(pk=observation.pk).final_taxon is None
    third = UserFactory(username="third-curator", role=CURATOR_GROUP)
    refused = decide(signed_in(third), observation, decision="confirm", taxon=taxa[1].pk)
    assert (refused.status_code, refused.json()["error"]) == (409, "conflict_needs_lead")
    assert signed_in(third).post(NEXT, format="json").status_code == 204
    lead_client = signed_in(lead)
    assert lead_client.post(NEXT, format="json").json()["uuid"] == str(observation.uuid)

    settled = decide(lead_client, observation, decision="confirm", taxon=taxa[2].pk)

    assert settled.status_code == 201
    assert settled.json()["review"]["by_lead"] is True
    observation.refresh_from_db()
    assert (observation.status, observation.final_taxon) == ("confirmed", taxa[2])


def test_a_disagreement_on_the_decision_itself_is_a_conflict(
    signed_in, curator, second_curator, campaign, sighting, taxa
):
    campaign.reviews_required = 2
    campaign.save()
    observation = sighting(status=CLASSIFIED)
    decide(signed_in(curator), observation, decision="confirm", taxon=taxa[1].pk)

    decide(signed_in(second_curator), observation, decision="reject", reject_reason="bad_photo")

    assert status_of(observation) == "conflict"


def test_a_lead_curator_decides_alone(signed_in, lead, campaign, sighting, taxa):
    campaign.reviews_required = 3
    campaign.save()
    observation = sighting(status=CLASSIFIED)

    response = decide(signed_in(lead), observation, decision="confirm", taxon=taxa[0].pk)

    assert (response.json()["status"], response.json()["final"]) == ("confirmed", True)
    assert response.json()["review"]["by_lead"] is True


def test_only_a_lead_corrects_a_verdict_and_the_final_taxon_follows(
    signed_in, curator, second_curator, lead, sighting, taxa
):
    observation = sighting(status=CLASSIFIED)
    decide(signed_in(curator), observation, decision="confirm", taxon=taxa[0].pk)

    refused = decide(signed_in(second_curator), observation, decision="confirm", taxon=taxa[1].pk)
    assert (refused.status_code, refused.json()["error"]) == (409, "already_decided")

    corrected = decide(signed_in(lead), observation, decision="confirm", taxon=taxa[1].pk)

    assert corrected.status_code == 201
    assert corrected.json()["review"]["round"] == 2
    observation.refresh_from_db()
    assert (observation.status, observation.final_taxon) == ("confirmed", taxa[1])
    assert confirmed_by(observation) == lead


def test_reviews_are_kept_unchanged_as_the_history(signed_in, curator, lead, classified, taxa):
    observation = classified()
    decide(signed_in(curator), observation, decision="confirm", rank=1, comment="Leaves match.")
    first = Review.objects.get()
    snapshot = first.ai_snapshot
    decide(signed_in(lead), observation, decision="reject", reject_reason="wrong_place")

    history = signed_in(curator).get(reviews_url(observation))

    assert history.status_code == 200
    rows = history.json()
    assert [(r["curator"], r["decision"], r["round"]) for r in rows] == [
        ("curator", "confirm", 1),
        ("lead", "reject", 2),
    ]
    assert rows[0]["taxon"]["id"] == ai_predictions(observation)[0].taxon_id
    assert rows[0]["comment"] == "Leaves match."
    assert rows[0]["ai_snapshot"] == snapshot
    assert rows[1]["reject_reason"] == "wrong_place"
    assert all(r["created_at"] for r in rows)
    first_again = Review.objects.get(pk=first.pk)
    assert (first_again.decision, first_again.taxon_id, first_again.ai_snapshot) == (
        "confirm",
        first.taxon_id,
        snapshot,
    )


# -- the training pool follows the verdicts ----------------------------------------------------


def pool(observation) -> list[tuple[int, int]]:
    return [
        (photo.pk, photo.observation.final_taxon_id)
        for photo in training_pool()
        if photo.observation_id == observation.pk
    ]


def test_a_confirmed_sightings_photos_join_the_training_pool(signed_in, curator, sighting, taxa):
    observation = sighting(status=CLASSIFIED, photos=2)

    decide(signed_in(curator), observation, decision="confirm", taxon=taxa[1].pk)

    photo_ids = sorted(observation.photos.values_list("pk", flat=True))
    assert pool(observation) == [(pk, taxa[1].pk) for pk in photo_ids]
    assert confirmed_by(Observation.objects.get(pk=observation.pk)) == curator


def test_a_rejected_sightings_photos_stay_out(signed_in, curator, sighting):
    observation = sighting(status=CLASSIFIED)

    decide(signed_in(curator), observation, decision="reject", reject_reason="bad_photo")

    assert pool(observation) == []


def test_a_correction_moves_the_photos_to_the_new_taxon(signed_in, curator, lead, sighting, taxa):
    observation = sighting(status=CLASSIFIED)
    decide(signed_in(curator), observation, decision="confirm", taxon=taxa[1].pk)

    decide(signed_in(lead), observation, decision="confirm", taxon=taxa[2].pk)

    assert [taxon for _photo, taxon in pool(observation)] == [taxa[2].pk]
    assert confirmed_by(Observation.objects.get(pk=observation.pk)) == lead


def test_a_correction_to_reject_takes_the_photos_out(signed_in, curator, lead, sighting, taxa):
    observation = sighting(status=CLASSIFIED)
    decide(signed_in(curator), observation, decision="confirm", taxon=taxa[1].pk)
    assert pool(observation)

    decide(signed_in(lead), observation, decision="reject", reject_reason="not_the_organism")

    assert pool(observation) == []


# -- bulk --------------------------------------------------------------------------------------


def bulk(client, **body):
    return client.post(BULK, body, format="json")


def test_bulk_confirms_each_with_its_ai_top_1_and_reports_each(
    signed_in, curator, second_curator, sighting, taxa
):
    clear = [sighting(status=CLASSIFIED) for _ in range(2)]
    for observation, taxon in zip(clear, taxa[:2], strict=True):
        Observation.objects.filter(pk=observation.pk).update(ai_taxon=taxon, ai_score=0.97)
    no_ai = sighting(status=CLASSIFIED)
    held = sighting(status=CLASSIFIED)
    Observation.objects.filter(pk=held.pk).update(
        ai_taxon=taxa[0],
        status=Observation.Status.IN_REVIEW,
        claimed_by=second_curator,
        claim_expires_at=timezone.now() + timedelta(minutes=5),
    )
    unknown = uuid_module.uuid4()
    asked = [*clear, no_ai, held]

    response = bulk(
        signed_in(curator),
        uuids=[str(o.uuid) for o in asked] + [str(unknown), str(clear[0].uuid)],
        decision="confirm",
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["uuid"], r["ok"], r["status"], r["error"]) for r in results] == [
        (str(clear[0].uuid), True, "confirmed", None),
        (str(clear[1].uuid), True, "confirmed", None),
        (str(no_ai.uuid), False, "classified", "taxon_missing"),
        (str(held.uuid), False, "in_review", "claimed_by_another"),
        (str(unknown), False, None, "not_found"),
    ]
    assert results[2]["detail"]
    assert [Observation.objects.get(pk=o.pk).final_taxon for o in clear] == taxa[:2]


def test_bulk_rejects_with_a_reason(signed_in, curator, sighting):
    observations = [sighting(status=CLASSIFIED) for _ in range(2)]

    response = bulk(
        signed_in(curator),
        uuids=[str(o.uuid) for o in observations],
        decision="reject",
        reject_reason="bad_photo",
    )

    assert [r["status"] for r in response.json()["results"]] == ["rejected", "rejected"]
    assert set(Review.objects.values_list("reject_reason", flat=True)) == {"bad_photo"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "reject"}, "reject_reason"),
        ({"decision": "needs_info"}, "decision"),
        ({"decision": "confirm", "uuids": []}, "uuids"),
        ({"decision": "confirm", "uuids": ["not-a-uuid"]}, "uuids"),
    ],
)
def test_a_bulk_request_it_cannot_do_is_a_400(signed_in, curator, sighting, body, field):
    observation = sighting(status=CLASSIFIED)
    body = {"uuids": [str(observation.uuid)], **body}

    response = bulk(signed_in(curator), **body)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert status_of(observation) == CLASSIFIED


def test_visitors_cannot_decide_in_bulk(signed_in, visitor, sighting, taxa):
    observation = sighting(status=CLASSIFIED)
    Observation.objects.filter(pk=observation.pk).update(ai_taxon=taxa[0])

    response = bulk(signed_in(visitor), uuids=[str(observation.uuid)], decision="confirm")

    assert response.status_code == 403
    assert status_of(observation) == CLASSIFIED


def test_the_review_history_shows_on_a_sighting_for_curators_only(
    signed_in, curator, visitor, sighting, taxa
):
    observation = sighting(status=CLASSIFIED, observer=visitor)
    decide(signed_in(curator), observation, decision="confirm", taxon=taxa[0].pk, comment="Sure.")

    as_curator = signed_in(curator).get(detail_url(observation)).json()
    as_observer = signed_in(visitor).get(detail_url(observation)).json()
    listed = signed_in(curator).get("/api/v1/observations/").json()["results"]

    assert [r["comment"] for r in as_curator["curation"]["reviews"]] == ["Sure."]
    assert as_observer["curation"] is None
    assert "Sure." not in str(as_observer)
    assert listed[0]["curation"] is None  # one sighting at a time: no history in lists
