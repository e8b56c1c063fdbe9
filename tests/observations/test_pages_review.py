"""The curators' review pages: the queue, taking the next sighting, deciding, bulk decisions.

Sightings are stored by the real submission service; the AI's answer is either written the way
the classifier writes it (top-1 fields) or, where the top 5 matters, produced by a tiny real
classifier through the inference service.
"""

from __future__ import annotations

import html as html_module
import re
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from classifier.models import Prediction
from classifier.services.inference import classify_pending
from observations.models import Observation, ParkContact, Review
from observations.roles import CURATOR_GROUP
from observations.services.review import review_claim_next, review_decide
from observations.services.submission import observation_submit
from tests.classifier.support import register_tiny_classifier
from tests.conftest import ORDESA
from tests.factories import UserFactory
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

JUNE_FIRST = datetime(2026, 6, 1, 10, 30)
QUEUE = reverse("review-queue")
NEXT = reverse("review-next")
BULK = reverse("review-bulk")
_seeds = iter(range(5000, 100_000))


def submit(*, position=ORDESA, **fields) -> Observation:
    return observation_submit(
        photos=[photo_upload(width=64, height=48, seed=next(_seeds))],
        latitude=position[0],
        longitude=position[1],
        accuracy_m=8,
        observed_at=JUNE_FIRST,
        **fields,
    ).observation


def classified(
    taxon, *, score=0.8, entropy=0.5, invasive_score=None, received_ago=0, **fields
) -> Observation:
    """A sighting as the classifier leaves it: top-1 fields written, status classified."""
    observation = submit(**fields)
    Observation.objects.filter(pk=observation.pk).update(
        status=Observation.Status.CLASSIFIED,
        ai_taxon=taxon,
        ai_label=taxon.scientific_name if taxon else "",
        ai_score=score,
        ai_entropy=entropy,
        ai_invasive_score=invasive_score,
        received_at=timezone.now() - timedelta(minutes=received_ago),
    )
    observation.refresh_from_db()
    return observation


def review_url(observation) -> str:
    return reverse("review-sighting", kwargs={"uuid": observation.uuid})


def decide_url(observation) -> str:
    return reverse("review-decide", kwargs={"uuid": observation.uuid})


def text_of(response) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    content = response.content.decode()
    content = re.sub(r"<(script|style)\b.*?</\1>", " ", content, flags=re.S)
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", "", content)).split())


def element_text(response, element_id: str) -> str:
    """The text of the element with this id (up to its first closing tag of the same name)."""
    content = response.content.decode()
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', content, flags=re.S)
    assert match, f"no element #{element_id}"
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", "", match.group(2))).split())


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture(autouse=True)
def _campaign(campaign):
    """Every test here works in the default campaign (four taxa, the Ordesa park)."""
    return campaign


@pytest.fixture
def curator_client(client, curator):
    client.force_login(curator)
    return client


@pytest.fixture
def other_curator(db):
    return UserFactory(username="other-curator", role=CURATOR_GROUP)


@pytest.fixture
def knotweed(taxa):
    return taxa[1]


# --- who may see the pages ---------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_sign_in(client, campaign):
    observation = submit()
    for url in (QUEUE, review_url(observation)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
        assert f"next={url}" in response["Location"]
    response = client.post(NEXT)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={QUEUE}"
    assert Observation.objects.get().claimed_by is None


def test_it_refuses_visitors_with_a_403_page(client, visitor, campaign):
    observation = submit()
    client.force_login(visitor)
    for response in (
        client.get(QUEUE),
        client.get(review_url(observation)),
        client.post(NEXT),
        client.post(decide_url(observation), {"decision": "unidentifiable"}),
    ):
        assert response.status_code == 403
        assert "Curators only" in text_of(response)
    observation.refresh_from_db()
    assert observation.claimed_by is None
    assert not Review.objects.exists()


# --- the queue ---------------------------------------------------------------------------------


def test_the_queue_lists_sightings_most_urgent_first(curator_client, taxa):
    buddleja, knotweed, ailanthus, orchid = taxa
    old_sure = classified(orchid, score=0.95, entropy=0.2, received_ago=300)
    new_unsure = classified(buddleja, score=0.4, entropy=1.3, received_ago=5)
    invasive = classified(knotweed, score=0.7, entropy=0.8, invasive_score=0.7, received_ago=10)
    older_unsure = classified(ailanthus, score=0.4, entropy=1.3, received_ago=60)

    response = curator_client.get(QUEUE)

    assert response.status_code == 200
    page = response.content.decode()
    rows = re.findall(r'<tr class="review-row[^"]*" data-uuid="([0-9a-f-]{36})"', page)
    assert rows == [str(o.uuid) for o in (invasive, older_unsure, new_unsure, old_sure)]
    text = text_of(response)
    assert "4 waiting" in text
    assert "Japanese knotweed (Reynoutria japonica) 70%" in text
    assert text.count("invasive likely") == 1
    assert "high uncertainty" in text and "low uncertainty" in text
    assert "Ordesa y Monte Perdido" in text
    assert "1 Jun 2026, 10:30 (UTC+02:00)" in text  # observed, in the park's zone
    assert invasive.photos.get().thumbnail.url in page


def test_the_queue_shows_failed_classifications_and_duplicates(curator_client, taxa):
    original = classified(taxa[0])
    failed = submit()
    Observation.objects.filter(pk=failed.pk).update(
        status=Observation.Status.CLASSIFICATION_FAILED,
        status_detail="No active classifier.",
        possible_duplicate_of=original,
    )

    text = text_of(curator_client.get(QUEUE))

    assert "Classification failed" in text
    assert f"Possible duplicate of {str(original.uuid)[:8]}" in text


def test_the_queue_filters_likely_invasive_and_remembers_it_for_take_next(curator_client, taxa):
    plain = classified(taxa[3], entropy=1.5)
    invasive = classified(taxa[1], entropy=0.1, invasive_score=0.9)

    response = curator_client.get(QUEUE, {"invasive_only": "on"})

    page = response.content.decode()
    assert str(invasive.uuid) in page and str(plain.uuid) not in page
    assert "1 sighting match your filters" in text_of(response)
    taken = curator_client.post(NEXT)
    assert taken["Location"] == review_url(invasive)


def test_the_queue_counts_conflicts_for_lead_curators(client, curator, campaign, taxa):
    campaign.lead_curators.add(curator)
    conflict = classified(taxa[0])
    Observation.objects.filter(pk=conflict.pk).update(status=Observation.Status.CONFLICT)
    classified(taxa[1])
    client.force_login(curator)

    text = text_of(client.get(QUEUE))

    assert "1 waiting" in text
    assert "1 in conflict" in text


def test_the_queue_is_paginated(curator_client, taxa, settings):
    for minutes in range(27):
        classified(taxa[0], received_ago=minutes)

    first = curator_client.get(QUEUE)
    second = curator_client.get(QUEUE, {"page": 2})

    assert len(first.context["rows"]) == 25
    assert "Page 1 of 2" in text_of(first)
    assert len(second.context["rows"]) == 2


def test_the_queue_does_not_query_per_row(curator_client, taxa):
    def queries_for_queue() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert curator_client.get(QUEUE).status_code == 200
        return len(queries)

    for _ in range(2):
        classified(taxa[0])
    few = queries_for_queue()
    for _ in range(6):
        classified(taxa[1], invasive_score=0.5)

    assert queries_for_queue() == few


# --- take next ---------------------------------------------------------------------------------


def test_take_next_claims_the_most_urgent_sighting_and_opens_it(curator_client, curator, taxa):
    classified(taxa[0], entropy=0.2)
    urgent = classified(taxa[1], invasive_score=0.8)

    response = curator_client.post(NEXT)

    assert response.status_code == 302
    assert response["Location"] == review_url(urgent)
    urgent.refresh_from_db()
    assert urgent.status == Observation.Status.IN_REVIEW
    assert urgent.claimed_by == curator
    page = curator_client.get(review_url(urgent))
    assert "Claimed by you until" in text_of(page)


def test_take_next_says_nothing_is_waiting(curator_client, campaign):
    response = curator_client.post(NEXT, follow=True)

    assert response.redirect_chain[-1][0] == QUEUE
    assert "Nothing waiting." in messages_of(response)
    assert "Nothing waiting" in text_of(response)


# --- the review screen -------------------------------------------------------------------------


@pytest.fixture
def tiny_version(campaign, tmp_path):
    return register_tiny_classifier(campaign, tmp_path)


def ai_classified(**fields) -> Observation:
    observation = submit(**fields)
    classify_pending(hint_ids=[observation.pk])
    observation.refresh_from_db()
    assert observation.status == Observation.Status.CLASSIFIED
    return observation


def top_five(observation) -> list[Prediction]:
    return list(
        Prediction.objects.filter(observation=observation, photo=None)
        .select_related("taxon", "version")
        .order_by("rank")
    )


def test_the_review_screen_shows_what_a_curator_needs(
    curator_client, curator, campaign, taxa, knotweed, tiny_version
):
    observation = ai_classified(guess=knotweed, notes="Dense stand by the river.")
    neighbour = submit(position=(ORDESA[0] + 0.002, ORDESA[1]))
    review_decide(observation=neighbour, curator=curator, decision="confirm", taxon=taxa[2])
    far = submit(position=(ORDESA[0] + 0.05, ORDESA[1]))
    review_decide(observation=far, curator=curator, decision="confirm", taxon=taxa[0])
    claimed = review_claim_next(curator=curator)
    assert claimed == observation

    response = curator_client.get(review_url(observation))

    assert response.status_code == 200
    page = response.content.decode()
    text = text_of(response)
    photo = observation.photos.get()
    assert f'href="{photo.image.url}"' in page and f'src="{photo.image.url}"' in page
    assert photo.original.name not in page  # the private original never reaches a page
    rows = top_five(observation)
    assert len(rows) == 4  # the campaign has four taxa
    for row in rows:
        assert f"{row.rank} {row.taxon.common_name} ({row.taxon.scientific_name})" in text
        assert f"{round(row.probability * 100)}%" in text or row.probability < 0.005
    assert f"model {tiny_version.label}" in text
    assert (
        element_text(response, "visitor-guess")
        == "Japanese knotweed (Reynoutria japonica) invasive"
    )
    assert element_text(response, "visitor-notes") == "Dense stand by the river."
    assert "1 Jun 2026, 10:30 (UTC+02:00) Europe/Madrid" in text
    assert "Tree of heaven (Ailanthus altissima)" in text and "222 m away" in text
    assert str(far.uuid) not in page  # 5.5 km away
    assert "Claimed by you until" in text
    config = response.context["review_config"]
    assert config["position"]["accuracy_m"] == 8
    assert [item["distance"] for item in config["nearby"]] == ["222 m"]
    for key in ("1–5", "r", "u", "i", "s", "n"):
        assert f"<dt><kbd>{key}</kbd></dt>" in page
    assert '<option value="Reynoutria japonica">Japanese knotweed · invasive</option>' in page


def test_the_review_screen_shows_the_review_history(client, curator, other_curator, campaign, taxa):
    campaign.reviews_required = 2
    campaign.save()
    observation = classified(taxa[1], score=0.66)
    review_decide(
        observation=observation,
        curator=other_curator,
        decision="confirm",
        taxon=taxa[1],
        comment="Leaves match.",
    )
    client.force_login(curator)

    text = text_of(client.get(review_url(observation)))

    assert "other-curator · Confirm Japanese knotweed (Reynoutria japonica)" in text
    assert "the AI said Reynoutria japonica 66%" in text
    assert "Leaves match." in text


def test_deciding_with_rank_1_confirms_the_ai_top1_and_opens_the_next(
    curator_client, curator, campaign, park, tiny_version
):
    ParkContact.objects.create(park=park, name="Rangers", email="rangers@example.org")
    first = ai_classified()
    second = ai_classified()
    taken = curator_client.post(NEXT)
    current = Observation.objects.get(uuid=taken["Location"].split("/")[-2])
    following = second if current == first else first
    expected = top_five(current)[0].taxon

    response = curator_client.post(decide_url(current), {"rank": "1"})

    assert response.status_code == 302
    assert response["Location"] == review_url(following)
    current.refresh_from_db()
    assert current.status == Observation.Status.CONFIRMED
    assert current.final_taxon == expected
    review = Review.objects.get(observation=current)
    assert (review.curator, review.decision, review.taxon) == (curator, "confirm", expected)
    following.refresh_from_db()
    assert following.claimed_by == curator and following.status == Observation.Status.IN_REVIEW
    page = curator_client.get(response["Location"])
    assert messages_of(page)[0].startswith(
        f"{str(current.uuid)[:8]} confirmed as {expected.display_name}."
    )


def test_after_the_last_decision_it_says_the_queue_is_empty(curator_client, taxa):
    observation = classified(taxa[0])
    curator_client.post(NEXT)

    response = curator_client.post(decide_url(observation), {"rank": "1"}, follow=True)

    assert response.redirect_chain[-1][0] == QUEUE
    assert "Queue empty." in messages_of(response)
    observation.refresh_from_db()
    assert observation.status == Observation.Status.CONFIRMED
    assert observation.final_taxon == taxa[0]


def test_a_taxon_can_be_confirmed_by_its_common_name(curator_client, taxa):
    observation = classified(taxa[0])
    curator_client.post(NEXT)

    response = curator_client.post(
        decide_url(observation),
        {"decision": "confirm", "taxon": "tree of heaven", "comment": "Not a buddleja."},
    )

    assert response.status_code == 302
    observation.refresh_from_db()
    assert observation.final_taxon == taxa[2]
    assert Review.objects.get().comment == "Not a buddleja."


def test_an_unknown_taxon_is_refused_with_the_name(curator_client, taxa):
    observation = classified(taxa[0])
    curator_client.post(NEXT)

    response = curator_client.post(
        decide_url(observation), {"decision": "confirm", "taxon": "Kudzu"}
    )

    assert response.status_code == 400
    assert "No taxon called “Kudzu” in the list." in text_of(response)
    assert not Review.objects.exists()


def test_rejecting_needs_a_reason(curator_client, curator, taxa):
    observation = classified(taxa[0])
    curator_client.post(NEXT)

    response = curator_client.post(
        decide_url(observation), {"decision": "reject", "comment": "Blurry"}
    )

    assert response.status_code == 400
    text = text_of(response)
    assert "Nothing was recorded." in text
    assert "Choose why you reject the sighting." in text
    assert 'value="Blurry"' not in response.content.decode()  # a textarea keeps it as text
    assert "Blurry" in text
    assert not Review.objects.exists()
    observation.refresh_from_db()
    assert observation.status == Observation.Status.IN_REVIEW
    assert observation.claimed_by == curator


def test_rejecting_with_a_reason_records_it(curator_client, taxa):
    observation = classified(taxa[0])
    curator_client.post(NEXT)

    curator_client.post(
        decide_url(observation), {"decision": "reject", "reject_reason": "bad_photo"}
    )

    observation.refresh_from_db()
    assert observation.status == Observation.Status.REJECTED
    assert Review.objects.get().reject_reason == "bad_photo"


def test_needs_more_information_needs_a_message(curator_client, taxa):
    observation = classified(taxa[0])
    curator_client.post(NEXT)

    refused = curator_client.post(decide_url(observation), {"decision": "needs_info"})
    accepted = curator_client.post(
        decide_url(observation),
        {"decision": "needs_info", "message_to_observer": "Please add a photo of the leaves."},
    )

    assert refused.status_code == 400
    assert "Say what the visitor should add" in text_of(refused)
    assert accepted.status_code == 302
    observation.refresh_from_db()
    assert observation.status == Observation.Status.NEEDS_INFO
    assert observation.message_to_observer == "Please add a photo of the leaves."


def test_another_curators_claim_is_shown_as_a_409_message(curator_client, other_curator, taxa):
    observation = classified(taxa[0])
    assert review_claim_next(curator=other_curator) == observation

    response = curator_client.post(decide_url(observation), {"rank": "1"})

    assert response.status_code == 409
    assert "Another curator is reviewing this sighting." in messages_of(response)
    text = text_of(response)
    assert "Another curator is reviewing this sighting." in text
    assert "other-curator is reviewing this sighting." in text
    assert not Review.objects.exists()
    observation.refresh_from_db()
    assert observation.claimed_by == other_curator


def test_a_decided_sighting_refuses_a_second_verdict_with_a_message(curator_client, curator, taxa):
    observation = classified(taxa[0])
    other = UserFactory(username="first-curator", role=CURATOR_GROUP)
    review_decide(observation=observation, curator=other, decision="unidentifiable", taxon=None)

    response = curator_client.post(decide_url(observation), {"rank": "1"})

    assert response.status_code == 409
    assert "only a lead curator can correct it" in text_of(response)
    assert Review.objects.count() == 1


def test_release_gives_the_sighting_back(curator_client, taxa):
    observation = classified(taxa[0])
    curator_client.post(NEXT)

    response = curator_client.post(
        reverse("review-release", kwargs={"uuid": observation.uuid}), follow=True
    )

    assert response.redirect_chain[-1][0] == QUEUE  # nothing else waiting
    assert (
        f"{str(observation.uuid)[:8]} skipped: it is back in the queue for others."
        in messages_of(response)
    )
    observation.refresh_from_db()
    assert observation.status == Observation.Status.CLASSIFIED
    assert observation.claimed_by is None


def test_skipping_moves_on_to_the_next_sighting_not_the_same_one(curator_client, taxa):
    first = classified(taxa[0])
    second = classified(taxa[1])
    curator_client.post(NEXT)
    taken = Observation.objects.get(claimed_by__isnull=False)

    response = curator_client.post(
        reverse("review-release", kwargs={"uuid": taken.uuid}), follow=True
    )

    other = second if taken == first else first
    assert response.redirect_chain[-1][0] == review_url(other)
    taken.refresh_from_db()
    assert taken.claimed_by is None
    # Taking next from the queue page starts afresh: the skipped one can come back.
    curator_client.post(reverse("review-release", kwargs={"uuid": other.uuid}))
    curator_client.post(NEXT)
    assert Observation.objects.filter(claimed_by__isnull=False).count() == 1


def test_releasing_someone_elses_claim_is_refused_with_a_message(
    curator_client, other_curator, taxa
):
    observation = classified(taxa[0])
    review_claim_next(curator=other_curator)

    response = curator_client.post(
        reverse("review-release", kwargs={"uuid": observation.uuid}), follow=True
    )

    assert "You do not hold a claim on this sighting." in messages_of(response)
    observation.refresh_from_db()
    assert observation.claimed_by == other_curator


# --- bulk decisions ----------------------------------------------------------------------------


def test_bulk_confirm_confirms_the_ai_top1_and_says_which_failed(
    curator_client, other_curator, taxa
):
    knotweed_one = classified(taxa[1])
    buddleja = classified(taxa[0])
    no_suggestion = submit()
    Observation.objects.filter(pk=no_suggestion.pk).update(
        status=Observation.Status.CLASSIFICATION_FAILED
    )
    claimed_elsewhere = classified(taxa[2])
    review_claim_next(curator=other_curator, filters={"ai_taxon": taxa[2].pk})
    selected = [knotweed_one, buddleja, no_suggestion, claimed_elsewhere]

    response = curator_client.post(
        BULK,
        {"action": "confirm", "selected": [str(o.uuid) for o in selected], "return_to": QUEUE},
        follow=True,
    )

    notes = messages_of(response)
    assert (
        f"Confirmed 2 sightings: {str(knotweed_one.uuid)[:8]} (Japanese knotweed (Reynoutria "
        f"japonica)), {str(buddleja.uuid)[:8]} (Butterfly bush (Buddleja davidii))." in notes
    )
    assert (
        f"Not confirmed 1 sighting: {str(no_suggestion.uuid)[:8]} (the AI made no suggestion "
        "to confirm)." in notes
    )
    assert any(
        note.startswith("1 selected sighting is no longer waiting in your queue")
        and str(claimed_elsewhere.uuid)[:8] in note
        for note in notes
    )
    for observation, status, taxon in (
        (knotweed_one, "confirmed", taxa[1]),
        (buddleja, "confirmed", taxa[0]),
        (no_suggestion, "classification_failed", None),
        (claimed_elsewhere, "in_review", None),
    ):
        observation.refresh_from_db()
        assert (observation.status, observation.final_taxon) == (status, taxon)


def test_bulk_reject_needs_a_reason_and_records_it(curator_client, taxa):
    first, second = classified(taxa[0]), classified(taxa[1])
    selected = [str(first.uuid), str(second.uuid)]

    refused = curator_client.post(BULK, {"action": "reject", "selected": selected}, follow=True)
    assert "Choose why the selected sightings are rejected." in messages_of(refused)
    assert not Review.objects.exists()

    done = curator_client.post(
        BULK,
        {"action": "reject", "selected": selected, "reject_reason": "wrong_place"},
        follow=True,
    )
    assert any(note.startswith("Rejected 2 sightings:") for note in messages_of(done))
    assert set(Review.objects.values_list("reject_reason", flat=True)) == {"wrong_place"}


def test_bulk_needs_a_selection(curator_client, taxa):
    classified(taxa[0])

    response = curator_client.post(BULK, {"action": "confirm"}, follow=True)

    assert "Select at least one sighting." in messages_of(response)
    assert not Review.objects.exists()
