"""Telling visitors what the experts decided about their sighting."""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.core.mail import get_connection, send_mail
from django.db import transaction

from observations.models import Observation

logger = logging.getLogger(__name__)

SUBJECTS = {
    Observation.Status.CONFIRMED: "Your sighting was confirmed: {taxon}",
    Observation.Status.REJECTED: "About your sighting: not confirmed",
    Observation.Status.UNIDENTIFIABLE: "About your sighting: it could not be identified",
    Observation.Status.NEEDS_INFO: "About your sighting: the experts need more information",
}


def observer_address(observation: Observation) -> str:
    if observation.observer_id and observation.observer.email:
        return observation.observer.email
    return observation.observer_email


def verdict_notify(*, observation: Observation) -> None:
    """After commit, e-mail the visitor (if they gave an address) on the default queue."""
    if not observer_address(observation):
        return
    transaction.on_commit(
        lambda: _enqueue("observations.tasks.send_verdict_email", observation.pk), robust=True
    )


def _enqueue(task_name: str, *args) -> None:
    try:
        current_app.send_task(task_name, args=list(args), queue="default", retry=False)
    except Exception:
        logger.warning("Could not enqueue %s%s; sending inline", task_name, args, exc_info=True)
        if task_name == "observations.tasks.send_verdict_email":
            verdict_email_send(observation_id=args[0])


def verdict_email_send(*, observation_id: int) -> bool:
    observation = Observation.objects.select_related("final_taxon", "observer").get(
        pk=observation_id
    )
    address = observer_address(observation)
    if not address or observation.status not in SUBJECTS:
        return False
    taxon = observation.final_taxon.display_name if observation.final_taxon else ""
    url = f"{settings.SITE_URL}{observation.get_absolute_url()}"
    lines = [f"Thank you for your sighting of {observation.observed_at:%d %B %Y}.", ""]
    if observation.status == Observation.Status.CONFIRMED:
        lines.append(f"An expert confirmed it as {taxon}.")
        if observation.final_taxon and observation.final_taxon.is_invasive:
            # Only say the managers were told when alerts exist (a sighting outside every park,
            # or in a park without contacts, alerts nobody).
            if observation.alerts.exists():
                lines.append("It is an invasive species: the park's managers have been alerted.")
            else:
                lines.append("It is an invasive species.")
    elif observation.status == Observation.Status.NEEDS_INFO:
        lines += ["The experts need more information:", "", observation.message_to_observer]
    elif observation.status == Observation.Status.REJECTED:
        lines.append("The experts could not confirm it from these photos.")
    else:
        lines.append("The experts could not identify the organism from these photos.")
    lines += ["", f"See it here: {url}", "", "ParkWatch"]
    # Bounded: with the broker down this runs inline in the curator's request.
    timeout = getattr(settings, "EMAIL_TIMEOUT", None) or settings.ALERT_WEBHOOK_TIMEOUT_SECONDS
    send_mail(
        SUBJECTS[observation.status].format(taxon=taxon),
        "\n".join(lines),
        None,
        [address],
        connection=get_connection(fail_silently=False, timeout=timeout),
    )
    return True
