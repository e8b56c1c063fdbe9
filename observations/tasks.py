"""Default-queue tasks of the domain: alerts, verdict e-mails, housekeeping. No ML here."""

from __future__ import annotations

from celery import shared_task

from observations.services import alerts
from observations.services.notifications import verdict_email_send
from observations.services.review import claims_expire


@shared_task(bind=True, name="observations.tasks.deliver_alert", max_retries=None)
def deliver_alert(self, alert_id: int) -> bool | None:
    """Deliver one alert; on failure try again with backoff (every attempt is recorded)."""
    delivered = alerts.alert_deliver(alert_id=alert_id)
    if delivered is False:
        wait = alerts.alert_seconds_until_due(alert_id=alert_id)
        if wait is not None:
            raise self.retry(countdown=wait + 0.5)
    return delivered


@shared_task(name="observations.tasks.retry_alerts")
def retry_alerts() -> int:
    """Re-send alerts whose delivery is due (a broker outage or a worker lost the message)."""
    due = alerts.alerts_due()
    alerts.alerts_enqueue(alert_ids=due)
    return len(due)


@shared_task(name="observations.tasks.send_alert_digests")
def send_alert_digests() -> int:
    return alerts.digests_send()


@shared_task(bind=True, name="observations.tasks.send_verdict_email", max_retries=5)
def send_verdict_email(self, observation_id: int) -> bool:
    try:
        return verdict_email_send(observation_id=observation_id)
    except OSError as exc:  # the mail server is away: try again later
        raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from exc


@shared_task(name="observations.tasks.expire_review_claims")
def expire_review_claims() -> int:
    return claims_expire()


@shared_task(name="observations.tasks.write_export")
def write_export(export_format: str = "dwca", latest: bool = True) -> str:
    """Write an export of the confirmed records (public positions) into storage; its name."""
    from observations.exports.stored import export_store

    return export_store(export_format=export_format, latest=latest).name
