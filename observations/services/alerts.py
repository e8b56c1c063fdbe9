"""Alerting park managers when an invasive species is confirmed.

Alert rows are written in the verdict's transaction and delivered after commit by the default
queue's workers, so a curator never waits on a mail server or a webhook. A delivery that fails
is recorded (every attempt) and retried with backoff; the alert is never dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from observations.logcontext import sighting_context
from observations.models import Alert, AlertAttempt, Observation, Park, ParkContact, Review

logger = logging.getLogger(__name__)

DELIVER_TASK = "observations.tasks.deliver_alert"
SIGNATURE_HEADER = "X-ParkWatch-Signature"


def is_first_record(observation: Observation) -> bool:
    """No other confirmed sighting of this taxon in this park (early detection's key fact)."""
    return not (
        Observation.objects.filter(
            park=observation.park,
            final_taxon=observation.final_taxon,
            status=Observation.Status.CONFIRMED,
        )
        .exclude(pk=observation.pk)
        .exists()
    )


def _absolute(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else f"{settings.SITE_URL}{url}"


def alert_payload(observation: Observation, *, first_record: bool) -> dict:
    """What a park manager needs to act: species, where exactly, when, photo and map links."""
    taxon = observation.final_taxon
    photo = observation.photos.order_by("position").first()
    lat, lon = observation.latitude, observation.longitude
    return {
        "event": "invasive_species_confirmed",
        "first_record_in_park": first_record,
        "sighting": {
            "uuid": str(observation.uuid),
            "url": _absolute(observation.get_absolute_url()),
            "observed_at": observation.observed_at.isoformat(),
            "confirmed_at": (observation.decided_at or timezone.now()).isoformat(),
            "observer": observation.observer_credit or "anonymous",
        },
        "taxon": {
            "scientific_name": taxon.scientific_name,
            "authorship": taxon.authorship,
            "common_name": taxon.common_name,
            "family": taxon.family,
            "gbif_key": taxon.gbif_key,
        },
        "park": {"slug": observation.park.slug, "name": observation.park.name},
        "position": {
            "latitude": lat,
            "longitude": lon,
            "accuracy_m": observation.accuracy_m,
            "map_url": f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=17/{lat:.6f}/{lon:.6f}",
        },
        "photo_url": _absolute(photo.image.url) if photo else None,
    }


def alerts_for_verdict(*, observation: Observation, review: Review) -> list[Alert]:
    """Create the alerts of a newly confirmed invasive sighting; deliver them after commit."""
    if observation.park_id is None:
        logger.info(
            "Invasive sighting %s is outside every park: no park contacts to alert",
            observation.uuid,
        )
        return []
    # Two sightings of one taxon confirmed at the same moment must not both be the "first":
    # confirmations in one park take turns from here to commit (a no-op on SQLite, which
    # serialises writers anyway).
    Park.objects.select_for_update().filter(pk=observation.park_id).first()
    first_record = is_first_record(observation)
    payload = alert_payload(observation, first_record=first_record)
    alerts = []
    for contact in observation.park.contacts.filter(is_active=True):
        digest = contact.delivery == ParkContact.Delivery.DAILY_DIGEST
        if contact.email:
            alerts.append(
                Alert(
                    observation=observation,
                    park=observation.park,
                    contact=contact,
                    review=review,
                    channel=Alert.Channel.EMAIL,
                    recipients=contact.email,
                    is_digest=digest,
                    is_first_record=first_record,
                    payload=payload,
                )
            )
        if contact.webhook_url:  # machines get every alert at once
            alerts.append(
                Alert(
                    observation=observation,
                    park=observation.park,
                    contact=contact,
                    review=review,
                    channel=Alert.Channel.WEBHOOK,
                    recipients=contact.webhook_url,
                    is_first_record=first_record,
                    payload=payload,
                )
            )
    Alert.objects.bulk_create(alerts)
    immediate = [alert.pk for alert in Alert.objects.filter(review=review, is_digest=False)]
    transaction.on_commit(lambda: alerts_enqueue(alert_ids=immediate), robust=True)
    return alerts


def alerts_enqueue(*, alert_ids: list[int]) -> None:
    for position, alert_id in enumerate(alert_ids):
        try:
            current_app.send_task(DELIVER_TASK, args=[alert_id], queue="default", retry=False)
        except Exception:
            # The broker is down: the alerts stay pending and the retry sweep sends them. Stop
            # at the first failure, so the curator (this runs after the verdict's commit) waits
            # for one broker timeout, not one per alert.
            logger.warning(
                "Could not enqueue alerts %s; the sweep will send them",
                alert_ids[position:],
                exc_info=True,
            )
            return


def _backoff(attempts: int) -> timedelta:
    seconds = settings.ALERT_RETRY_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.ALERT_RETRY_BACKOFF_MAX_SECONDS))


def alert_claim(alert_id: int) -> Alert | None:
    """Take one due alert for one delivery attempt (a conditional UPDATE: one sender at a time)."""
    now = timezone.now()
    due = Alert.objects.filter(
        pk=alert_id,
        state__in=[Alert.State.PENDING, Alert.State.FAILED],
        is_digest=False,
        attempts__lt=settings.ALERT_MAX_ATTEMPTS,  # a late or duplicate task never goes past
    )
    due = due.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    # Until this attempt ends, nobody else may start one (a lease of the request timeout).
    lease = now + timedelta(seconds=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS * 3)
    if due.update(next_attempt_at=lease) != 1:
        return None
    return Alert.objects.select_related("contact", "observation").get(pk=alert_id)


def alert_deliver(*, alert_id: int) -> bool | None:
    """One delivery attempt: True sent, False failed (retry later), None nothing to do."""
    alert = alert_claim(alert_id)
    if alert is None:
        return None
    with sighting_context(alert.observation.uuid):
        try:
            status_code = _send(alert)
        except Exception as exc:
            status_code = exc.code if isinstance(exc, urllib.error.HTTPError) else None
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # its response holds the socket open
            _record(
                alert,
                ok=False,
                status_code=status_code,
                error=f"{type(exc).__name__}: {exc}",
            )
            return False
        _record(alert, ok=True, status_code=status_code)
        return True


def _record(alert: Alert, *, ok: bool, status_code: int | None = None, error: str = "") -> None:
    now = timezone.now()
    with transaction.atomic():
        AlertAttempt.objects.create(alert=alert, ok=ok, status_code=status_code, error=error[:2000])
        attempts = alert.attempts + 1
        if ok:
            Alert.objects.filter(pk=alert.pk).update(
                state=Alert.State.SENT,
                attempts=attempts,
                sent_at=now,
                error="",
                next_attempt_at=None,
            )
        else:
            Alert.objects.filter(pk=alert.pk).update(
                state=Alert.State.FAILED,
                attempts=attempts,
                error=error[:2000],
                next_attempt_at=now + _backoff(attempts),
            )
    log = logger.info if ok else logger.warning
    log(
        "Alert %s (%s to %s) attempt %d: %s",
        alert.pk,
        alert.channel,
        alert.recipients,
        attempts,
        "sent" if ok else error,
    )


def _mail_connection():
    # Bounded like a webhook POST, so an attempt always ends within the claim's lease (Django's
    # SMTP default is to wait for ever).
    timeout = getattr(settings, "EMAIL_TIMEOUT", None) or settings.ALERT_WEBHOOK_TIMEOUT_SECONDS
    return get_connection(fail_silently=False, timeout=timeout)


def _send(alert: Alert) -> int | None:
    if alert.channel == Alert.Channel.EMAIL:
        subject, body = alert_email_text(alert.payload)
        EmailMessage(subject, body, to=[alert.recipients], connection=_mail_connection()).send(
            fail_silently=False
        )
        return None
    return _post_webhook(alert)


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: urllib would turn the POST into a body-less GET and
    count whatever that page answers as a delivered alert."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_webhook_opener = urllib.request.build_opener(_NoRedirect)


def _post_webhook(alert: Alert) -> int:
    body = json.dumps({"alert_id": alert.pk, **alert.payload}, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ParkWatch-Alerts/1",
        "X-ParkWatch-Event": "invasive_species_confirmed",
        "X-ParkWatch-Delivery": str(alert.pk),
    }
    secret = alert.contact.webhook_secret if alert.contact else ""
    if secret:
        headers[SIGNATURE_HEADER] = webhook_signature(secret, body)
    request = urllib.request.Request(alert.recipients, data=body, headers=headers, method="POST")  # noqa: S310
    with _webhook_opener.open(request, timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS) as response:
        return response.status


def alert_email_text(payload: dict) -> tuple[str, str]:
    taxon = payload["taxon"]
    position = payload["position"]
    first = payload["first_record_in_park"]
    name = taxon["scientific_name"] + (f" ({taxon['common_name']})" if taxon["common_name"] else "")
    subject = f"{'FIRST RECORD in the park: ' if first else ''}{name} confirmed in {payload['park']['name']}"
    accuracy = f" ± {position['accuracy_m']:.0f} m" if position["accuracy_m"] is not None else ""
    lines = [
        "*** FIRST CONFIRMED RECORD OF THIS SPECIES IN THE PARK ***"
        if first
        else "Invasive species confirmed.",
        "",
        f"Species:   {name}",
        f"Park:      {payload['park']['name']}",
        f"Position:  {position['latitude']:.6f}, {position['longitude']:.6f}{accuracy}",
        f"Map:       {position['map_url']}",
        f"Observed:  {payload['sighting']['observed_at']}",
        f"Observer:  {payload['sighting']['observer']}",
        f"Photo:     {payload['photo_url'] or '-'}",
        f"Sighting:  {payload['sighting']['url']}",
    ]
    return subject, "\n".join(lines)


def alert_seconds_until_due(*, alert_id: int) -> float | None:
    """Seconds until a failed alert's next attempt; None once it has no attempts left."""
    alert = Alert.objects.filter(pk=alert_id, state=Alert.State.FAILED).first()
    if (
        alert is None
        or alert.attempts >= settings.ALERT_MAX_ATTEMPTS
        or alert.next_attempt_at is None
    ):
        return None
    return max((alert.next_attempt_at - timezone.now()).total_seconds(), 0.0)


def alerts_due() -> list[int]:
    """Immediate alerts that are pending or failed and due for an attempt (the retry sweep)."""
    now = timezone.now()
    return list(
        Alert.objects.filter(state__in=[Alert.State.PENDING, Alert.State.FAILED], is_digest=False)
        .filter(attempts__lt=settings.ALERT_MAX_ATTEMPTS)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("pk", flat=True)[:500]
    )


def digests_send() -> int:
    """One e-mail per park and digest address with everything confirmed since its last digest.

    Grouped by the address the alerts were made for, so alerts of a contact deleted or edited
    since still go out (an alert is never lost).
    """
    sent = 0
    pending = Alert.objects.filter(
        is_digest=True, state__in=[Alert.State.PENDING, Alert.State.FAILED]
    )
    groups = pending.order_by().values_list("park", "recipients").distinct()
    for park_id, recipients in list(groups):
        alerts = list(
            pending.filter(park=park_id, recipients=recipients)
            .select_related("park")
            .order_by("created_at")
        )
        if not alerts:
            continue
        park = alerts[0].park
        firsts = sum(alert.is_first_record for alert in alerts)
        subject = (
            f"ParkWatch daily digest: {len(alerts)} invasive sighting(s) confirmed in {park.name}"
        )
        if firsts:
            subject += f", {firsts} FIRST RECORD(S)"
        body = "\n\n---\n\n".join(alert_email_text(alert.payload)[1] for alert in alerts)
        try:
            EmailMessage(subject, body, to=[recipients], connection=_mail_connection()).send(
                fail_silently=False
            )
        except Exception as exc:
            for alert in alerts:
                _record(alert, ok=False, error=f"{type(exc).__name__}: {exc}")
            continue
        for alert in alerts:
            _record(alert, ok=True)
        sent += 1
    return sent
