"""Changing a campaign's active classifier: by the gate, by hand, or rolling back; recorded.

After a change, sightings still waiting for review are classified again by the new version in
the background (their old predictions stay, under the old version).
"""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.db import transaction

from classifier.models import ClassifierVersion, PromotionEvent
from classifier.services.registry import RegistryError, check_version_activate, do_version_activate
from observations.models import Campaign, Observation

logger = logging.getLogger(__name__)

RECLASSIFY_STATUSES = (Observation.Status.CLASSIFIED, Observation.Status.CLASSIFICATION_FAILED)


def reclassify_awaiting(*, campaign: Campaign) -> list[int]:
    """Send the campaign's sightings awaiting review back through the active classifier.

    Sightings a curator holds right now (in review) or that have a verdict keep what they have.
    """
    awaiting = Observation.objects.filter(campaign=campaign, status__in=RECLASSIFY_STATUSES)
    ids = list(awaiting.values_list("pk", flat=True))
    if not ids:
        return []
    Observation.objects.filter(pk__in=ids, status__in=RECLASSIFY_STATUSES).update(
        status=Observation.Status.RECEIVED,
        status_detail="Being classified again by the newly promoted classifier.",
        classification_claimed_until=None,
        classification_attempts=0,
    )

    def enqueue() -> None:
        size = settings.CLASSIFIER_BATCH_SIZE
        for start in range(0, len(ids), size):
            try:
                current_app.send_task(
                    settings.CLASSIFY_TASK_NAME,
                    args=[ids[start : start + size]],
                    queue="inference",
                    retry=False,
                )
            except Exception:
                logger.warning(
                    "Could not enqueue reclassification; the sweeper will", exc_info=True
                )
                return

    transaction.on_commit(enqueue, robust=True)
    return ids


@transaction.atomic
def version_promote(
    *,
    version: ClassifierVersion,
    user=None,
    action: str = PromotionEvent.Action.MANUAL_PROMOTION,
    reasons: list[str] | None = None,
    comparison: dict | None = None,
) -> PromotionEvent:
    """Activate `version`, record why, and reclassify the sightings awaiting review."""
    check_version_activate(version=version)
    previous = ClassifierVersion.objects.filter(
        campaign_id=version.campaign_id, state=ClassifierVersion.State.ACTIVE
    ).first()
    if previous is not None and previous.pk == version.pk:
        raise RegistryError(f"{version.label} is already active.", code="already_active")
    reason_text = "; ".join(reasons or []) or f"{PromotionEvent.Action(action).label}."
    do_version_activate(version=version, reason=reason_text)
    event = PromotionEvent.objects.create(
        version=version,
        previous=previous,
        action=action,
        reasons=reasons or [],
        comparison=comparison or {},
        user=user,
    )
    count = len(reclassify_awaiting(campaign=version.campaign))
    logger.info("%s -> %s (%s); %d sighting(s) to reclassify", previous, version, action, count)
    return event


def version_hold(
    *, version: ClassifierVersion, reasons: list[str], comparison: dict
) -> PromotionEvent:
    """The gate kept a candidate back: say why on the version and in the record."""
    ClassifierVersion.objects.filter(pk=version.pk).update(
        state_reason="Held back by the promotion gate: " + "; ".join(reasons)
    )
    previous = ClassifierVersion.objects.filter(
        campaign_id=version.campaign_id, state=ClassifierVersion.State.ACTIVE
    ).first()
    return PromotionEvent.objects.create(
        version=version,
        previous=previous,
        action=PromotionEvent.Action.HELD,
        reasons=reasons,
        comparison=comparison,
    )


def version_rollback(*, campaign: Campaign, user=None) -> PromotionEvent:
    """Go back to the version that was active before the current one."""
    current = ClassifierVersion.objects.filter(
        campaign=campaign, state=ClassifierVersion.State.ACTIVE
    ).first()
    if current is None:
        raise RegistryError("No active classifier to roll back from.", code="nothing_active")
    last = (
        PromotionEvent.objects.filter(version=current, previous__isnull=False)
        .exclude(action=PromotionEvent.Action.HELD)
        .select_related("previous")
        .first()
    )
    if last is None:
        raise RegistryError(
            f"No earlier version to roll back to from {current.label}.", code="no_previous"
        )
    return version_promote(
        version=last.previous,
        user=user,
        action=PromotionEvent.Action.ROLLBACK,
        reasons=[f"Rolled back from {current.label}."],
    )
