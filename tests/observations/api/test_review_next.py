"""POST /api/v1/review/next/: claim the next sighting; never the same one for two curators."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from observations.models import Observation
from observations.roles import CURATOR_GROUP
from tests.factories import UserFactory

NEXT = "/api/v1/review/next/"
CLASSIFIED = Observation.Status.CLASSIFIED
NEARBY = (42.6415, -0.0532)
# About 450 m north and about 2.2 km north of NEARBY.
FOUR_HUNDRED_FIFTY_M = (42.6455, -0.0532)
TWO_KM = (42.6615, -0.0532)


def curators(count: int) -> list:
    return [UserFactory(username=f"curator-{n}", role=CURATOR_GROUP) for n in range(count)]


def take_next(client, **filters):
    return client.post(NEXT, filters, format="json")


@pytest.mark.django_db
def test_it_claims_the_top_of_the_queue_and_shows_it_in_full(signed_in, curator, sighting, taxa):
    urgent = sighting(status=CLASSIFIED, position=NEARBY)
    Observation.objects.filter(pk=urgent.pk).update(ai_invasive_score=0.9, ai_taxon=taxa[2])
    sighting(status=CLASSIFIED)
    close = sighting(status=Observation.Status.CONFIRMED, position=FOUR_HUNDRED_FIFTY_M)
    far = sighting(status=Observation.Status.CONFIRMED, position=TWO_KM)
    Observation.objects.filter(pk__in=[close.pk, far.pk]).update(final_taxon=taxa[0])
    before = timezone.now()

    response = take_next(signed_in(curator))

    assert response.status_code == 200
    body = response.json()
    assert body["uuid"] == str(urgent.uuid)
    assert body["status"] == "in_review"
    assert body["position"]["generalised"] is False
    assert body["position"]["latitude"] == NEARBY[0]
    assert body["ai"]["taxon"]["scientific_name"] == "Ailanthus altissima"
    assert body["predictions"] == []
    curation = body["curation"]
    assert curation["claimed_by"] == "curator"
    expires = datetime.fromisoformat(curation["claim_expires_at"])
    assert before + timedelta(minutes=29) < expires < before + timedelta(minutes=31)
    assert curation["reviews"] == []
    assert [(n["uuid"], n["final_taxon"]["id"]) for n in curation["nearby_confirmed"]] == [
        (str(close.uuid), taxa[0].pk)
    ]
    assert 400 < curation["nearby_confirmed"][0]["distance_m"] < 500
    urgent.refresh_from_db()
    assert (urgent.status, urgent.claimed_by, urgent.claimed_from_status) == (
        "in_review",
        curator,
        "classified",
    )


@pytest.mark.django_db
def test_it_answers_204_when_nothing_is_waiting(signed_in, curator, sighting):
    sighting(status=Observation.Status.CONFIRMED)

    response = take_next(signed_in(curator))

    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.django_db
def test_a_live_claim_is_not_given_to_another_curator(signed_in, curator, sighting):
    sighting(status=CLASSIFIED)
    (other,) = curators(1)

    assert take_next(signed_in(curator)).status_code == 200
    assert take_next(signed_in(other)).status_code == 204


@pytest.mark.django_db
def test_the_curators_own_unfinished_claim_comes_back_first(signed_in, curator, sighting):
    mine = sighting(status=CLASSIFIED)
    client = signed_in(curator)
    assert take_next(client).json()["uuid"] == str(mine.uuid)
    more_urgent = sighting(status=CLASSIFIED)
    Observation.objects.filter(pk=more_urgent.pk).update(ai_invasive_score=0.99)

    again = take_next(client, invasive_only=True)

    assert again.json()["uuid"] == str(mine.uuid)
    assert Observation.objects.get(pk=more_urgent.pk).claimed_by is None


@pytest.mark.django_db
def test_a_claim_left_to_expire_goes_to_the_next_curator(signed_in, curator, sighting, settings):
    settings.REVIEW_CLAIM_MINUTES = 0.001  # 60 ms
    observation = sighting(status=CLASSIFIED)
    (other,) = curators(1)
    assert take_next(signed_in(curator)).json()["uuid"] == str(observation.uuid)
    time.sleep(0.1)

    response = take_next(signed_in(other))

    assert response.json()["uuid"] == str(observation.uuid)
    observation.refresh_from_db()
    assert observation.claimed_by == other
    # The status before the first claim is kept, so a release puts it back where it was.
    assert observation.claimed_from_status == "classified"


@pytest.mark.django_db
def test_a_claim_whose_time_has_passed_is_free_to_take(signed_in, curator, sighting):
    observation = sighting(status=CLASSIFIED)
    (other,) = curators(1)
    take_next(signed_in(curator))
    Observation.objects.filter(pk=observation.pk).update(
        claim_expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert take_next(signed_in(other)).json()["uuid"] == str(observation.uuid)
    # The first curator's claim is gone: "next" gives them nothing rather than the lost one.
    assert take_next(signed_in(curator)).status_code == 204


@pytest.mark.django_db
def test_it_takes_the_filters_in_the_body(signed_in, curator, sighting, taxa):
    sighting(status=CLASSIFIED)
    duplicate = sighting(status=CLASSIFIED)
    Observation.objects.filter(pk=duplicate.pk).update(
        possible_duplicate_of=Observation.objects.exclude(pk=duplicate.pk).first()
    )

    response = take_next(signed_in(curator), duplicates_only=True)

    assert response.json()["uuid"] == str(duplicate.uuid)
    assert take_next(signed_in(curators(1)[0]), ai_taxon=taxa[0].pk).status_code == 204


@pytest.mark.django_db
def test_visitors_cannot_claim(signed_in, visitor, sighting):
    observation = sighting(status=CLASSIFIED)

    assert take_next(signed_in(visitor)).status_code == 403
    assert take_next(APIClient()).status_code == 401
    observation.refresh_from_db()
    assert observation.claimed_by is None and observation.status == CLASSIFIED


def ask_at_the_same_moment(clients: list) -> list:
    """Every client POSTs "next" at once, each thread on its own database connection."""
    barrier = threading.Barrier(len(clients))
    answers: list = [None] * len(clients)

    def ask(index: int, client) -> None:
        try:
            barrier.wait(timeout=30)
            answers[index] = take_next(client)
        except Exception as exc:  # reported below, never swallowed
            answers[index] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=ask, args=(index, client)) for index, client in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    errors = [answer for answer in answers if isinstance(answer, Exception)]
    assert not errors, errors
    return answers


@pytest.mark.django_db(transaction=True)
def test_eight_curators_asking_at_once_never_get_the_same_sighting(signed_in, sighting):
    waiting = {str(sighting(status=CLASSIFIED).uuid) for _ in range(10)}
    team = curators(8)

    answers = ask_at_the_same_moment([signed_in(user) for user in team])

    assert [answer.status_code for answer in answers] == [200] * 8
    claimed = [answer.json()["uuid"] for answer in answers]
    assert len(set(claimed)) == 8
    assert set(claimed) <= waiting
    holders = dict(
        Observation.objects.filter(claimed_by__isnull=False).values_list(
            "uuid", "claimed_by__username"
        )
    )
    assert {str(uuid): name for uuid, name in holders.items()} == {
        answer.json()["uuid"]: user.username for answer, user in zip(answers, team, strict=True)
    }


@pytest.mark.django_db(transaction=True)
def test_with_fewer_sightings_than_curators_the_others_get_204(signed_in, sighting):
    waiting = {str(sighting(status=CLASSIFIED).uuid) for _ in range(3)}
    team = curators(8)

    answers = ask_at_the_same_moment([signed_in(user) for user in team])

    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] * 3 + [204] * 5
    claimed = [answer.json()["uuid"] for answer in answers if answer.status_code == 200]
    assert sorted(claimed) == sorted(waiting)
