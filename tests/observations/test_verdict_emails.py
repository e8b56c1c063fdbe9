"""Visitors hear back: the curators' verdict by e-mail, when the visitor gave an address."""

from __future__ import annotations

from datetime import datetime

import pytest
from celery import current_app
from django.conf import settings as django_settings
from kombu.exceptions import OperationalError

from observations import tasks  # registers the default queue's tasks with the app
from observations.models import Observation, ParkContact
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from tests.conftest import ORDESA, OUTSIDE
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

JUNE_FIRST = datetime(2026, 6, 1, 10, 30)
VISITOR_ADDRESS = "walker@example.org"
VERDICT_TASK = tasks.send_verdict_email.name
CeleryApp = type(current_app._get_current_object())


@pytest.fixture
def worker_inline(monkeypatch):
    """Publishing runs the task at once in this process (the real task code, no broker)."""
    published: list[tuple[str, str | None]] = []

    def send_task(self, name, args=None, kwargs=None, **options):
        published.append((name, options.get("queue")))
        current_app.tasks[name].apply(args=args, kwargs=kwargs).get()

    monkeypatch.setattr(CeleryApp, "send_task", send_task)
    return published


def sighting(*, position=ORDESA, **fields) -> Observation:
    photo = photo_upload(gps=position, taken_at=JUNE_FIRST, width=320, height=240)
    return observation_submit(photos=[photo], **fields).observation


def decide(observation, curator, capture, **decision) -> Observation:
    with capture(execute=True):
        return review_decide(observation=observation, curator=curator, **decision).observation


def sent_to(mailoutbox, address: str) -> list:
    return [mail for mail in mailoutbox if address in mail.to]


@pytest.mark.parametrize(
    ("decision", "subject", "says"),
    [
        (
            {"decision": "confirm"},
            "Your sighting was confirmed: Butterfly bush (Buddleja davidii)",
            "An expert confirmed it as Butterfly bush (Buddleja davidii).",
        ),
        (
            {"decision": "reject", "taxon": None, "reject_reason": "bad_photo"},
            "About your sighting: not confirmed",
            "The experts could not confirm it from these photos.",
        ),
        (
            {
                "decision": "needs_info",
                "taxon": None,
                "message_to_observer": "Please add a close-up of the leaves' underside.",
            },
            "About your sighting: the experts need more information",
            "Please add a close-up of the leaves' underside.",
        ),
    ],
    ids=["confirm", "reject", "needs_info"],
)
def test_an_anonymous_visitor_who_gave_an_address_hears_the_verdict(
    decision,
    subject,
    says,
    campaign,
    taxa,
    curator,
    worker_inline,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    observation = sighting(observer_email=VISITOR_ADDRESS)
    decision = {"taxon": taxa[0], **decision}

    decide(observation, curator, django_capture_on_commit_callbacks, **decision)

    [mail] = mailoutbox
    assert mail.to == [VISITOR_ADDRESS]
    assert mail.subject == subject
    assert says in mail.body
    assert f"{django_settings.SITE_URL}/sightings/{observation.uuid}/" in mail.body
    assert "01 June 2026" in mail.body
    # Sent by a default-queue task, after the verdict's commit.
    assert worker_inline == [(VERDICT_TASK, "default")]


def test_an_anonymous_visitor_who_gave_no_address_gets_nothing(
    campaign, taxa, curator, worker_inline, mailoutbox, django_capture_on_commit_callbacks
):
    observation = sighting()

    confirmed = decide(
        observation, curator, django_capture_on_commit_callbacks, decision="confirm", taxon=taxa[0]
    )

    assert confirmed.status == Observation.Status.CONFIRMED
    assert mailoutbox == []
    assert worker_inline == []


def test_a_signed_in_visitor_hears_back_at_their_account_address(
    campaign, taxa, curator, visitor, worker_inline, mailoutbox, django_capture_on_commit_callbacks
):
    observation = sighting(observer=visitor)

    decide(
        observation, curator, django_capture_on_commit_callbacks, decision="confirm", taxon=taxa[0]
    )

    assert [mail.to for mail in mailoutbox] == [[visitor.email]]


def test_no_email_goes_out_while_another_curator_must_still_look(
    campaign, taxa, curator, worker_inline, mailoutbox, django_capture_on_commit_callbacks
):
    campaign.reviews_required = 2
    campaign.save(update_fields=["reviews_required"])
    observation = sighting(observer_email=VISITOR_ADDRESS)

    waiting = decide(
        observation, curator, django_capture_on_commit_callbacks, decision="confirm", taxon=taxa[0]
    )

    assert waiting.status != Observation.Status.CONFIRMED
    assert mailoutbox == []


def test_a_confirmed_invasive_says_the_park_managers_were_alerted_only_when_they_were(
    park, campaign, taxa, curator, worker_inline, mailoutbox, django_capture_on_commit_callbacks
):
    ParkContact.objects.create(park=park, name="Rangers", email="rangers@ordesa.example")
    in_park = sighting(observer_email=VISITOR_ADDRESS)
    outside = sighting(position=OUTSIDE, observer_email="traveller@example.org")

    for observation in (in_park, outside):
        decide(
            observation,
            curator,
            django_capture_on_commit_callbacks,
            decision="confirm",
            taxon=taxa[0],
        )

    [to_visitor] = sent_to(mailoutbox, VISITOR_ADDRESS)
    assert "the park's managers have been alerted" in to_visitor.body
    [to_traveller] = sent_to(mailoutbox, "traveller@example.org")
    assert "It is an invasive species." in to_traveller.body
    assert "alerted" not in to_traveller.body


def test_the_visitor_still_hears_back_when_the_broker_is_down(
    monkeypatch, campaign, taxa, curator, mailoutbox, django_capture_on_commit_callbacks
):
    def broker_down(self, name, *args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(CeleryApp, "send_task", broker_down)
    observation = sighting(observer_email=VISITOR_ADDRESS)

    decide(
        observation,
        curator,
        django_capture_on_commit_callbacks,
        decision="reject",
        taxon=None,
        reject_reason="wrong_place",
    )

    [mail] = mailoutbox
    assert mail.to == [VISITOR_ADDRESS]
    assert mail.subject == "About your sighting: not confirmed"
