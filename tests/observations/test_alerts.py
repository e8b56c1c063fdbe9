"""Alerting park managers when a curator confirms an invasive species.

Delivered to a real SMTP server (aiosmtpd) and a real HTTP receiver on 127.0.0.1, in this
process and once end to end through a real Celery worker on the `default` queue.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from celery import current_app
from django.conf import settings as django_settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from observations import tasks
from observations.models import Alert, Observation, ParkContact
from observations.services.alerts import (
    DELIVER_TASK,
    alert_deliver,
    alert_seconds_until_due,
    alerts_due,
    digests_send,
)
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from tests.conftest import ORDESA, OUTSIDE
from tests.images import photo_upload
from tests.servers import SMTPServer, WebhookReceiver, free_port
from tests.workers import celery_worker, wait_for

pytestmark = pytest.mark.django_db

JUNE_FIRST = datetime(2026, 6, 1, 10, 30)  # EXIF time, read in the park's zone: 08:30 UTC
SECRET = "ordesa-webhook-secret"
RANGERS = "rangers@ordesa.example"
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
CeleryApp = type(current_app._get_current_object())


@dataclass(frozen=True)
class Published:
    name: str
    args: list
    queue: str | None


@pytest.fixture
def broker(monkeypatch):
    """Stands in for the broker: records each task published (no worker runs it)."""
    published: list[Published] = []

    def send_task(self, name, args=None, kwargs=None, **options):
        published.append(Published(name, list(args or []), options.get("queue")))

    monkeypatch.setattr(CeleryApp, "send_task", send_task)
    return published


@pytest.fixture
def smtp(settings):
    """A real SMTP server, and Django's SMTP backend pointed at it."""
    with SMTPServer() as server:
        settings.EMAIL_BACKEND = SMTP_BACKEND
        settings.EMAIL_HOST = server.host
        settings.EMAIL_PORT = server.port
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = False
        yield server


def add_contact(park, **fields) -> ParkContact:
    values = {
        "name": "Ordesa rangers",
        "email": RANGERS,
        "webhook_url": "",
        "webhook_secret": SECRET,
    }
    values.update(fields)
    return ParkContact.objects.create(park=park, **values)


def sighting(*, position=ORDESA, seed: int = 0, **fields) -> Observation:
    photo = photo_upload(
        gps=position, accuracy=8, taken_at=JUNE_FIRST, seed=seed, width=320, height=240
    )
    return observation_submit(photos=[photo], **fields).observation


def confirm(observation: Observation, curator, taxon, capture=None) -> Observation:
    """A curator confirms; with `capture`, what runs after commit runs too (enqueueing)."""
    if capture is None:
        return review_decide(
            observation=observation, curator=curator, decision="confirm", taxon=taxon
        ).observation
    with capture(execute=True):
        return confirm(observation, curator, taxon)


def deliver_when_due(alert: Alert, timeout: float = 5) -> bool | None:
    def alert_is_due():
        return alert.pk in alerts_due()

    wait_for(alert_is_due, timeout=timeout, interval=0.02)
    return alert_deliver(alert_id=alert.pk)


def signature_of(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# Which verdicts alert whom


def test_confirming_an_invasive_taxon_alerts_each_channel_of_the_contact_on_the_default_queue(
    park, campaign, taxa, curator, broker, django_capture_on_commit_callbacks
):
    rangers = add_contact(park, webhook_url="https://hooks.ordesa.example/parkwatch")
    add_contact(park, name="Former warden", email="former@ordesa.example", is_active=False)
    observation = sighting()

    confirm(observation, curator, taxa[0], django_capture_on_commit_callbacks)

    alerts = {alert.channel: alert for alert in Alert.objects.filter(observation=observation)}
    assert set(alerts) == {Alert.Channel.EMAIL, Alert.Channel.WEBHOOK}
    assert alerts["email"].recipients == RANGERS
    assert alerts["webhook"].recipients == "https://hooks.ordesa.example/parkwatch"
    for alert in alerts.values():
        assert alert.contact == rangers
        assert alert.park == park
        assert alert.state == Alert.State.PENDING
        assert not alert.is_digest
        assert alert.is_first_record
        assert alert.payload["first_record_in_park"] is True
    # Handed to the default queue's workers after commit, one task per alert.
    assert sorted(p.args[0] for p in broker if p.name == DELIVER_TASK) == sorted(
        alert.pk for alert in alerts.values()
    )
    assert {p.queue for p in broker if p.name == DELIVER_TASK} == {"default"}


def test_only_the_first_confirmed_record_of_a_taxon_in_the_park_is_flagged_first(
    park, campaign, taxa, curator
):
    add_contact(park)
    first, second, other_taxon = sighting(seed=1), sighting(seed=2), sighting(seed=3)

    confirm(first, curator, taxa[0])
    confirm(second, curator, taxa[0])
    confirm(other_taxon, curator, taxa[1])

    assert Alert.objects.get(observation=first).is_first_record is True
    later = Alert.objects.get(observation=second)
    assert later.is_first_record is False
    assert later.payload["first_record_in_park"] is False
    assert Alert.objects.get(observation=other_taxon).is_first_record is True


def test_confirming_a_native_taxon_alerts_nobody(
    park, campaign, taxa, curator, broker, django_capture_on_commit_callbacks
):
    add_contact(park, webhook_url="https://hooks.ordesa.example/parkwatch")
    observation = sighting()

    confirmed = confirm(observation, curator, taxa[3], django_capture_on_commit_callbacks)

    assert confirmed.status == Observation.Status.CONFIRMED
    assert not Alert.objects.exists()
    assert not [p for p in broker if p.name == DELIVER_TASK]


def test_an_invasive_sighting_outside_every_park_alerts_nobody(
    park, campaign, taxa, curator, broker, django_capture_on_commit_callbacks
):
    add_contact(park, webhook_url="https://hooks.ordesa.example/parkwatch")
    observation = sighting(position=OUTSIDE)
    assert observation.park is None

    confirmed = confirm(observation, curator, taxa[0], django_capture_on_commit_callbacks)

    assert confirmed.status == Observation.Status.CONFIRMED
    assert not Alert.objects.exists()
    assert not [p for p in broker if p.name == DELIVER_TASK]


def test_rejecting_a_sighting_alerts_nobody(
    park, campaign, curator, broker, django_capture_on_commit_callbacks
):
    add_contact(park, webhook_url="https://hooks.ordesa.example/parkwatch")
    observation = sighting()

    with django_capture_on_commit_callbacks(execute=True):
        result = review_decide(
            observation=observation,
            curator=curator,
            decision="reject",
            taxon=None,
            reject_reason="not_the_organism",
        )

    assert result.observation.status == Observation.Status.REJECTED
    assert not Alert.objects.exists()
    assert not [p for p in broker if p.name == DELIVER_TASK]


# E-mail to a real SMTP server


def test_an_email_alert_reaches_a_real_smtp_server_with_what_a_manager_needs_to_act(
    park, campaign, taxa, curator, smtp
):
    add_contact(park)
    observation = sighting()
    confirm(observation, curator, taxa[0])
    alert = Alert.objects.get(observation=observation)

    assert alert_deliver(alert_id=alert.pk) is True

    [mail] = smtp.messages
    assert mail.rcpt_tos == [RANGERS]
    assert mail.subject.startswith("FIRST RECORD")
    assert "Buddleja davidii" in mail.subject
    photo = observation.photos.get()
    body = mail.body
    for expected in (
        "FIRST CONFIRMED RECORD OF THIS SPECIES IN THE PARK",
        "Buddleja davidii (Butterfly bush)",
        "42.641500, -0.053200 ± 8 m",
        "https://www.openstreetmap.org/?mlat=42.641500&mlon=-0.053200",
        f"{django_settings.SITE_URL}{photo.image.url}",
        "Observed:  2026-06-01T08:30:00+00:00",  # 10:30 in Madrid
        "Observer:  anonymous",
        f"{django_settings.SITE_URL}/sightings/{observation.uuid}/",
    ):
        assert expected in body
    alert.refresh_from_db()
    assert alert.state == Alert.State.SENT
    assert alert.sent_at is not None
    assert alert.attempts == 1
    assert [(a.ok, a.error) for a in alert.attempt_log.all()] == [(True, "")]


def test_a_later_record_is_not_flagged_first_and_credits_the_observer_as_they_asked(
    park, campaign, taxa, curator, smtp
):
    add_contact(park)
    confirm(sighting(seed=1), curator, taxa[0])
    later = sighting(seed=2, observer_credit="Ana García")
    confirm(later, curator, taxa[0])

    assert alert_deliver(alert_id=Alert.objects.get(observation=later).pk) is True

    [mail] = smtp.messages
    assert "FIRST RECORD" not in mail.subject
    assert "FIRST" not in mail.body
    assert "Observer:  Ana García" in mail.body


def test_an_email_alert_survives_a_mail_server_that_is_down(
    settings, park, campaign, taxa, curator, smtp
):
    settings.ALERT_RETRY_BACKOFF_SECONDS = 0.05
    settings.EMAIL_PORT = free_port()  # nothing listens there
    add_contact(park)
    observation = sighting()
    confirm(observation, curator, taxa[0])
    alert = Alert.objects.get(observation=observation)

    assert alert_deliver(alert_id=alert.pk) is False
    alert.refresh_from_db()
    assert alert.state == Alert.State.FAILED
    assert "Connection refused" in alert.error or "ConnectionRefusedError" in alert.error

    settings.EMAIL_PORT = smtp.port  # the mail server is back
    assert deliver_when_due(alert) is True

    assert [mail.rcpt_tos for mail in smtp.messages] == [[RANGERS]]
    alert.refresh_from_db()
    assert alert.state == Alert.State.SENT
    assert [a.ok for a in alert.attempt_log.all()] == [False, True]


# Webhooks to a real HTTP receiver


def test_a_webhook_alert_is_json_signed_with_the_contacts_secret(park, campaign, taxa, curator):
    with WebhookReceiver() as hook:
        add_contact(park, email="", webhook_url=hook.url)
        observation = sighting(observer_credit="Ana García")
        confirm(observation, curator, taxa[0])
        alert = Alert.objects.get(observation=observation)

        assert alert_deliver(alert_id=alert.pk) is True

    [request] = hook.requests
    assert request.method == "POST"
    assert request.path == "/hooks/parkwatch"
    assert request.headers["content-type"] == "application/json"
    # Verified the way a receiver would: HMAC-SHA256 of the raw body with the shared secret.
    assert hmac.compare_digest(request.headers["x-parkwatch-signature"], signature_of(request.body))
    assert not hmac.compare_digest(
        request.headers["x-parkwatch-signature"], signature_of(request.body, "another secret")
    )
    assert request.headers["x-parkwatch-delivery"] == str(alert.pk)

    data = json.loads(request.body)
    photo = observation.photos.get()
    assert data["event"] == "invasive_species_confirmed"
    assert data["alert_id"] == alert.pk
    assert data["first_record_in_park"] is True
    assert data["taxon"]["scientific_name"] == "Buddleja davidii"
    assert data["taxon"]["common_name"] == "Butterfly bush"
    assert data["park"] == {"slug": "ordesa", "name": "Ordesa y Monte Perdido"}
    assert data["position"]["latitude"] == pytest.approx(ORDESA[0], abs=1e-6)
    assert data["position"]["longitude"] == pytest.approx(ORDESA[1], abs=1e-6)
    assert data["position"]["accuracy_m"] == 8
    assert data["position"]["map_url"].startswith(
        "https://www.openstreetmap.org/?mlat=42.641500&mlon=-0.053200"
    )
    assert data["photo_url"] == f"{django_settings.SITE_URL}{photo.image.url}"
    assert datetime.fromisoformat(data["sighting"]["observed_at"]) == observation.observed_at
    assert data["sighting"]["uuid"] == str(observation.uuid)
    assert data["sighting"]["observer"] == "Ana García"
    assert [(a.ok, a.status_code) for a in alert.attempt_log.all()] == [(True, 200)]


def test_a_webhook_receiver_that_fails_twice_gets_the_alert_on_the_third_attempt(
    settings, park, campaign, taxa, curator
):
    settings.ALERT_RETRY_BACKOFF_SECONDS = 0.05
    with WebhookReceiver(fail_first=2) as hook:
        add_contact(park, email="", webhook_url=hook.url)
        observation = sighting()
        confirm(observation, curator, taxa[0])
        alert = Alert.objects.get(observation=observation)

        outcomes = []
        for _ in range(3):
            outcomes.append(deliver_when_due(alert))
            alert.refresh_from_db()
            if outcomes[-1] is False:  # kept, with the reason and a time to try again
                assert alert.state == Alert.State.FAILED
                assert "500" in alert.error
                assert alert.next_attempt_at > alert.attempt_log.last().attempted_at

        # Sent: a late or duplicate task posts nothing more.
        assert alert.pk not in alerts_due()
        assert alert_deliver(alert_id=alert.pk) is None

    assert outcomes == [False, False, True]
    assert [(a.ok, a.status_code) for a in alert.attempt_log.all()] == [
        (False, 500),
        (False, 500),
        (True, 200),
    ]
    assert alert.state == Alert.State.SENT
    assert alert.attempts == 3
    assert alert.error == ""
    assert [r.status for r in hook.requests] == [500, 500, 200]
    assert len({r.body for r in hook.requests}) == 1  # the same alert each time
    assert all(
        hmac.compare_digest(r.headers["x-parkwatch-signature"], signature_of(r.body))
        for r in hook.requests
    )


def test_a_webhook_answered_with_a_redirect_is_not_counted_as_delivered(
    settings, park, campaign, taxa, curator
):
    settings.ALERT_RETRY_BACKOFF_SECONDS = 0.05
    with WebhookReceiver(fail_first=1, fail_status=302) as hook:
        add_contact(park, email="", webhook_url=hook.url)
        observation = sighting()
        confirm(observation, curator, taxa[0])
        alert = Alert.objects.get(observation=observation)

        # Following it would turn the POST into a GET without the alert in it.
        assert alert_deliver(alert_id=alert.pk) is False
        assert deliver_when_due(alert) is True

    assert [(r.method, r.status) for r in hook.requests] == [("POST", 302), ("POST", 200)]
    assert [(a.ok, a.status_code) for a in alert.attempt_log.all()] == [(False, 302), (True, 200)]


def test_an_unreachable_receiver_is_retried_with_backoff_then_kept_when_attempts_run_out(
    settings, park, campaign, taxa, curator
):
    settings.ALERT_MAX_ATTEMPTS = 3
    settings.ALERT_RETRY_BACKOFF_SECONDS = 30
    add_contact(park, email="", webhook_url=f"http://127.0.0.1:{free_port()}/hook")
    observation = sighting()
    confirm(observation, curator, taxa[0])
    alert = Alert.objects.get(observation=observation)

    waits = []
    for attempt in range(1, 4):
        assert alert.pk in alerts_due()
        before = timezone.now()
        assert alert_deliver(alert_id=alert.pk) is False
        alert.refresh_from_db()
        assert alert.state == Alert.State.FAILED
        assert alert.attempts == attempt
        assert "Connection refused" in alert.error
        assert alert.next_attempt_at > timezone.now()
        waits.append((alert.next_attempt_at - before).total_seconds())
        # Not due yet: the sweep leaves it and a stray task sends nothing.
        assert alert.pk not in alerts_due()
        assert alert_deliver(alert_id=alert.pk) is None
        # Time passes.
        Alert.objects.filter(pk=alert.pk).update(
            next_attempt_at=timezone.now() - timedelta(seconds=1)
        )

    assert waits == pytest.approx([30, 60, 120], abs=2)
    # Out of attempts: no longer retried, by the sweep, a stray task or the task itself...
    assert alert.pk not in alerts_due()
    assert alert_seconds_until_due(alert_id=alert.pk) is None
    assert alert_deliver(alert_id=alert.pk) is None
    assert tasks.deliver_alert.apply(args=[alert.pk]).get() is None
    # ...but kept, with its history, for a person to see.
    alert.refresh_from_db()
    assert alert.state == Alert.State.FAILED
    assert alert.attempts == 3
    assert "Connection refused" in alert.error
    assert [(a.ok, a.status_code) for a in alert.attempt_log.all()] == [(False, None)] * 3


# Daily digest


def test_a_daily_digest_contact_gets_one_email_listing_every_pending_sighting(
    park, campaign, taxa, curator, smtp, broker, django_capture_on_commit_callbacks
):
    director = add_contact(
        park,
        name="Park director",
        email="director@ordesa.example",
        delivery=ParkContact.Delivery.DAILY_DIGEST,
    )
    first, second = sighting(seed=1), sighting(seed=2, observer_credit="Ana García")
    confirm(first, curator, taxa[0], django_capture_on_commit_callbacks)
    confirm(second, curator, taxa[1], django_capture_on_commit_callbacks)

    alerts = list(Alert.objects.filter(contact=director))
    assert len(alerts) == 2
    assert all(alert.is_digest and alert.state == Alert.State.PENDING for alert in alerts)
    # Nothing at once: no task, no sweep, no immediate delivery.
    assert not [p for p in broker if p.name == DELIVER_TASK]
    assert not set(alerts_due()) & {alert.pk for alert in alerts}
    assert all(alert_deliver(alert_id=alert.pk) is None for alert in alerts)
    assert smtp.messages == []

    assert digests_send() == 1

    [mail] = smtp.messages
    assert mail.rcpt_tos == ["director@ordesa.example"]
    assert "2 invasive sighting(s)" in mail.subject
    assert "2 FIRST RECORD(S)" in mail.subject
    for expected in (
        "Buddleja davidii (Butterfly bush)",
        "Reynoutria japonica (Japanese knotweed)",
        f"/sightings/{first.uuid}/",
        f"/sightings/{second.uuid}/",
        "Observer:  Ana García",
        "42.641500, -0.053200",
    ):
        assert expected in mail.body
    for alert in alerts:
        alert.refresh_from_db()
        assert alert.state == Alert.State.SENT
        assert [a.ok for a in alert.attempt_log.all()] == [True]

    assert digests_send() == 0
    assert len(smtp.messages) == 1


def test_a_digest_still_goes_out_when_its_contact_was_removed_meanwhile(
    park, campaign, taxa, curator, smtp
):
    director = add_contact(
        park, email="director@ordesa.example", delivery=ParkContact.Delivery.DAILY_DIGEST
    )
    observation = sighting()
    confirm(observation, curator, taxa[0])
    director.delete()

    assert digests_send() == 1

    [mail] = smtp.messages
    assert mail.rcpt_tos == ["director@ordesa.example"]
    assert Alert.objects.get(observation=observation).state == Alert.State.SENT


# A broker outage


def test_a_broker_outage_when_the_verdict_commits_loses_no_alert(
    monkeypatch, park, campaign, taxa, curator, django_capture_on_commit_callbacks
):
    tried = []

    def broker_down(self, name, *args, **kwargs):
        tried.append(name)
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(CeleryApp, "send_task", broker_down)
    add_contact(park, webhook_url="https://hooks.ordesa.example/parkwatch")
    observation = sighting()

    confirmed = confirm(observation, curator, taxa[0], django_capture_on_commit_callbacks)

    assert confirmed.status == Observation.Status.CONFIRMED
    alerts = list(Alert.objects.filter(observation=observation))
    assert len(alerts) == 2
    assert all(alert.state == Alert.State.PENDING and alert.attempts == 0 for alert in alerts)
    assert {alert.pk for alert in alerts} <= set(alerts_due())
    # One try, not one per alert: the curator waits for one broker timeout at most.
    assert tried == [DELIVER_TASK]

    published = []
    monkeypatch.setattr(
        CeleryApp,
        "send_task",
        lambda self, name, args=None, **options: published.append((name, args, options["queue"])),
    )
    # The broker is back: the sweep (beat) hands them to the default queue.
    assert tasks.retry_alerts() >= 2
    assert {(DELIVER_TASK, (alert.pk,), "default") for alert in alerts} <= {
        (name, tuple(args), queue) for name, args, queue in published
    }


# End to end: a real worker on the default queue


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_retries_a_failing_webhook_while_the_curator_moves_on(
    monkeypatch, tmp_path, park, campaign, taxa, curator
):
    # The upload's classification request is not this test's business: keep the broker clean.
    monkeypatch.setattr(
        "observations.services.submission.classification_request", lambda **kwargs: True
    )
    log = tmp_path / "worker.log"
    with SMTPServer() as smtp, WebhookReceiver(fail_first=2, delay=2.0) as hook:
        add_contact(park, webhook_url=hook.url)
        observation = sighting(observer_email="visitor@example.org")
        worker = celery_worker(
            queues="default",
            log_path=log,
            ALERT_RETRY_BACKOFF_SECONDS=0.5,
            EMAIL_HOST=smtp.host,
            EMAIL_PORT=smtp.port,
        )
        with worker:
            started = time.monotonic()
            confirmed = confirm(observation, curator, taxa[0])
            decided_in = time.monotonic() - started

            def webhook_alert_sent():
                return Alert.objects.filter(
                    observation=observation, channel=Alert.Channel.WEBHOOK, state=Alert.State.SENT
                ).exists()

            wait_for(webhook_alert_sent, timeout=40, log_path=log)
            smtp.wait_for_messages(2, timeout=10)

    # The curator did not wait for the receiver (2 s per request, three requests).
    assert confirmed.status == Observation.Status.CONFIRMED
    assert decided_in < 1.0

    webhook = Alert.objects.get(observation=observation, channel=Alert.Channel.WEBHOOK)
    assert [(a.ok, a.status_code) for a in webhook.attempt_log.all()] == [
        (False, 500),
        (False, 500),
        (True, 200),
    ]
    assert webhook.attempts == 3
    assert [r.status for r in hook.requests] == [500, 500, 200]
    # Retried with backoff: each request came after the previous answer and the wait.
    gaps = [b.received_at - a.received_at for a, b in pairwise(hook.requests)]
    assert all(gap >= 2.0 + 0.5 for gap in gaps)
    assert hmac.compare_digest(
        hook.requests[-1].headers["x-parkwatch-signature"], signature_of(hook.requests[-1].body)
    )
    assert json.loads(hook.requests[-1].body)["first_record_in_park"] is True

    email = Alert.objects.get(observation=observation, channel=Alert.Channel.EMAIL)
    assert email.state == Alert.State.SENT
    [to_rangers] = smtp.to(RANGERS)
    assert to_rangers.subject.startswith("FIRST RECORD")
    [to_visitor] = smtp.to("visitor@example.org")
    assert to_visitor.subject == "Your sighting was confirmed: Butterfly bush (Buddleja davidii)"
