"""Expert review: claiming sightings, deciding on them, agreement between curators.

Claims are taken with one conditional UPDATE each (healthchecks' pattern): a curator gets a
sighting only if the row was still free when the UPDATE ran, so two curators asking at the same
moment never get the same one, on PostgreSQL and SQLite alike. Decisions are split into
`check_review_decide` (validate, raise a clear error) and `do_review_decide` (write).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from observations.errors import Conflict, ParkWatchError
from observations.logcontext import sighting_context
from observations.models import Observation, Review, Taxon
from observations.roles import is_admin, is_curator
from observations.selectors import ai_predictions, review_queue
from observations.services.alerts import alerts_for_verdict
from observations.services.control import control_open
from observations.services.notifications import verdict_notify

logger = logging.getLogger(__name__)

FINAL_STATUS = {
    Review.Decision.CONFIRM: Observation.Status.CONFIRMED,
    Review.Decision.REJECT: Observation.Status.REJECTED,
    Review.Decision.UNIDENTIFIABLE: Observation.Status.UNIDENTIFIABLE,
    Review.Decision.NEEDS_INFO: Observation.Status.NEEDS_INFO,
}
DECIDED_STATUSES = set(FINAL_STATUS.values())


def is_lead(user, campaign) -> bool:
    """Lead curators (and admins) decide alone and settle conflicts."""
    return is_admin(user) or campaign.lead_curators.filter(pk=user.pk).exists()


def _claim_minutes() -> timedelta:
    return timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)


def _check_curator(curator) -> None:
    if not is_curator(curator):
        raise ParkWatchError(
            "Only curators may review sightings.", code="not_a_curator", status=403
        )


def review_claim_next(*, curator, campaign=None, filters: dict | None = None) -> Observation | None:
    """The curator's own unfinished claim, else the top free sighting of the queue, claimed.

    Returns None when nothing is waiting.
    """
    _check_curator(curator)
    now = timezone.now()
    own = (
        Observation.objects.filter(
            status=Observation.Status.IN_REVIEW, claimed_by=curator, claim_expires_at__gt=now
        )
        .order_by("claim_expires_at")
        .first()
    )
    if own is not None:
        Observation.objects.filter(pk=own.pk).update(claim_expires_at=now + _claim_minutes())
        own.refresh_from_db()
        return own
    candidates = review_queue(curator=curator, campaign=campaign, filters=filters or {})
    # Walk the queue in priority order; a lost race on one row just moves to the next.
    for observation_id in candidates.values_list("pk", flat=True)[: settings.REVIEW_CLAIM_SCAN]:
        claimed = _claim(observation_id, curator, now)
        if claimed is not None:
            return claimed
    return None


def _claim(observation_id: int, curator, now) -> Observation | None:
    free = Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now)
    waiting = (
        Observation.objects.filter(pk=observation_id)
        .filter(free)
        .exclude(status__in=DECIDED_STATUSES)
    )
    current = waiting.values_list("status", flat=True).first()
    if current is None:
        return None
    from_status = current if current != Observation.Status.IN_REVIEW else None
    updates = {
        "status": Observation.Status.IN_REVIEW,
        "claimed_by": curator,
        "claim_expires_at": now + _claim_minutes(),
    }
    if from_status:
        updates["claimed_from_status"] = from_status
    # The same condition again, in the UPDATE itself: only one curator's UPDATE matches.
    if waiting.filter(status=current).update(**updates) != 1:
        return None
    return Observation.objects.select_related("campaign", "ai_taxon", "guess").get(
        pk=observation_id
    )


def review_release(*, curator, observation: Observation) -> Observation:
    """Give a claimed sighting back to the queue."""
    _check_curator(curator)
    released = Observation.objects.filter(
        pk=observation.pk, status=Observation.Status.IN_REVIEW, claimed_by=curator
    ).update(
        status=observation.claimed_from_status or Observation.Status.CLASSIFIED,
        claimed_by=None,
        claim_expires_at=None,
    )
    if not released and not is_admin(curator):
        raise Conflict("You do not hold a claim on this sighting.", code="not_claimed")
    if not released:  # an admin may free anyone's claim
        Observation.objects.filter(pk=observation.pk, status=Observation.Status.IN_REVIEW).update(
            status=observation.claimed_from_status or Observation.Status.CLASSIFIED,
            claimed_by=None,
            claim_expires_at=None,
        )
    observation.refresh_from_db()
    return observation


def claims_expire() -> int:
    """Put sightings whose claim ran out back in their status before the claim (beat)."""
    now = timezone.now()
    count = 0
    for status in (
        Observation.objects.filter(status=Observation.Status.IN_REVIEW, claim_expires_at__lte=now)
        .values_list("claimed_from_status", flat=True)
        .distinct()
    ):
        count += Observation.objects.filter(
            status=Observation.Status.IN_REVIEW,
            claim_expires_at__lte=now,
            claimed_from_status=status,
        ).update(
            status=status or Observation.Status.CLASSIFIED, claimed_by=None, claim_expires_at=None
        )
    return count


@dataclass(frozen=True)
class ReviewResult:
    review: Review
    observation: Observation
    final: bool  # the sighting reached a verdict (or a conflict) with this review


def check_review_decide(
    *,
    observation: Observation,
    curator,
    decision: str,
    taxon: Taxon | None,
    reject_reason: str = "",
    message_to_observer: str = "",
) -> None:
    """Validate a decision before anything is written; raise a clear error."""
    _check_curator(curator)
    if decision not in Review.Decision.values:
        raise ParkWatchError(
            f"decision must be one of {', '.join(Review.Decision.values)}.",
            code="invalid_decision",
            field="decision",
        )
    if decision == Review.Decision.CONFIRM and taxon is None:
        raise ParkWatchError("Confirming needs a taxon.", code="taxon_missing", field="taxon")
    if decision != Review.Decision.CONFIRM and taxon is not None:
        raise ParkWatchError(
            "Only a confirmation names a taxon.", code="taxon_not_expected", field="taxon"
        )
    if decision == Review.Decision.REJECT and reject_reason not in Review.RejectReason.values:
        raise ParkWatchError(
            f"Rejecting needs a reason: {', '.join(Review.RejectReason.values)}.",
            code="reject_reason_missing",
            field="reject_reason",
        )
    if decision == Review.Decision.NEEDS_INFO and not message_to_observer.strip():
        raise ParkWatchError(
            "Say what information the visitor should add.",
            code="message_missing",
            field="message_to_observer",
        )
    lead = is_lead(curator, observation.campaign)
    now = timezone.now()
    if (
        observation.status == Observation.Status.IN_REVIEW
        and observation.claimed_by_id not in (None, curator.pk)
        and observation.claim_expires_at
        and observation.claim_expires_at > now
        and not lead
    ):
        raise Conflict("Another curator is reviewing this sighting.", code="claimed_by_another")
    if observation.status in DECIDED_STATUSES and not lead:
        raise Conflict(
            "This sighting already has a verdict; only a lead curator can correct it.",
            code="already_decided",
        )
    if observation.status == Observation.Status.CONFLICT and not lead:
        raise Conflict(
            "Curators disagree on this sighting: a lead curator decides.",
            code="conflict_needs_lead",
        )


def _ai_snapshot(observation: Observation) -> dict:
    rows = ai_predictions(observation)
    return {
        "version": rows[0].version.label if rows else None,
        "top5": [
            {
                "rank": row.rank,
                "label": row.label,
                "taxon": row.taxon.scientific_name if row.taxon else None,
                "probability": round(row.probability, 4),
            }
            for row in rows
        ],
        "ai_taxon": observation.ai_taxon.scientific_name if observation.ai_taxon_id else None,
        "ai_score": observation.ai_score,
    }


@transaction.atomic
def do_review_decide(
    *,
    observation: Observation,
    curator,
    decision: str,
    taxon: Taxon | None = None,
    reject_reason: str = "",
    comment: str = "",
    message_to_observer: str = "",
) -> ReviewResult:
    """Record the review and apply the outcome: verdict, conflict, or wait for another curator."""
    observation = (
        # `of=("self",)`: PostgreSQL cannot lock the nullable side of the outer joins.
        Observation.objects.select_for_update(of=("self",))
        .select_related("campaign", "ai_taxon", "final_taxon", "park")
        .get(pk=observation.pk)
    )
    check_review_decide(
        observation=observation,
        curator=curator,
        decision=decision,
        taxon=taxon,
        reject_reason=reject_reason,
        message_to_observer=message_to_observer,
    )
    lead = is_lead(curator, observation.campaign)
    last_round = observation.reviews.order_by("-round").values_list("round", flat=True).first() or 0
    # A lead's correction of a verdict opens a new round; otherwise reviews join the open one.
    round_ = last_round + 1 if observation.status in DECIDED_STATUSES else last_round or 1
    try:
        with transaction.atomic():
            review = Review.objects.create(
                observation=observation,
                curator=curator,
                decision=decision,
                taxon=taxon,
                reject_reason=reject_reason if decision == Review.Decision.REJECT else "",
                comment=comment.strip(),
                message_to_observer=message_to_observer.strip(),
                by_lead=lead,
                round=round_,
                ai_snapshot=_ai_snapshot(observation),
            )
    except IntegrityError:
        raise Conflict(
            "You have already reviewed this sighting.", code="already_reviewed"
        ) from None

    previous_status, previous_taxon = observation.status, observation.final_taxon
    outcome = _outcome(observation, review, lead)
    now = timezone.now()
    observation.claimed_by = None
    observation.claim_expires_at = None
    if outcome is None:  # waiting for more curators: back to the queue, as it was before
        if observation.status == Observation.Status.IN_REVIEW:
            observation.status = observation.claimed_from_status or Observation.Status.CLASSIFIED
        if observation.status in DECIDED_STATUSES | {Observation.Status.IN_REVIEW}:
            observation.status = Observation.Status.CLASSIFIED
    elif outcome == Observation.Status.CONFLICT:
        observation.status = Observation.Status.CONFLICT
    else:
        observation.status = outcome
        observation.final_taxon = taxon if outcome == Observation.Status.CONFIRMED else None
        observation.decided_at = now
        observation.message_to_observer = (
            review.message_to_observer if outcome == Observation.Status.NEEDS_INFO else ""
        )
    observation.save(
        update_fields=[
            "status",
            "final_taxon",
            "decided_at",
            "message_to_observer",
            "claimed_by",
            "claim_expires_at",
            "updated_at",
        ]
    )
    final = outcome is not None and outcome != Observation.Status.CONFLICT
    if final:
        newly_confirmed_invasive = (
            observation.status == Observation.Status.CONFIRMED
            and taxon.is_invasive
            and (previous_status != Observation.Status.CONFIRMED or previous_taxon != taxon)
        )
        if observation.status == Observation.Status.CONFIRMED and taxon.is_invasive:
            control_open(observation=observation, user=curator)
        if newly_confirmed_invasive:
            alerts_for_verdict(observation=observation, review=review)
        if previous_status != observation.status or previous_taxon != observation.final_taxon:
            verdict_notify(observation=observation)
    logger.info(
        "Sighting %s reviewed by %s: %s -> %s",
        observation.uuid,
        curator,
        decision,
        observation.status,
    )
    return ReviewResult(review=review, observation=observation, final=outcome is not None)


def _outcome(observation: Observation, review: Review, lead: bool) -> str | None:
    """The status this review leads to, or None while more curators must look."""
    if lead:
        return FINAL_STATUS[review.decision]
    reviews = list(observation.reviews.filter(round=review.round))
    if len(reviews) < observation.campaign.reviews_required:
        return None
    opinions = {(r.decision, r.taxon_id) for r in reviews}
    if len(opinions) == 1:
        return FINAL_STATUS[review.decision]
    return Observation.Status.CONFLICT


def review_decide(**kwargs) -> ReviewResult:
    """Validate then record a review (see `do_review_decide`)."""
    with sighting_context(kwargs["observation"].uuid):
        return do_review_decide(**kwargs)


def review_bulk_decide(
    *, curator, observations, decision: str, taxon_for=None, reject_reason: str = ""
) -> list:
    """Confirm or reject several clear cases from the list; each is its own transaction.

    `taxon_for(observation)` gives the taxon to confirm (by default the AI's top-1).
    Returns (observation, error or None) pairs so the page can say which ones failed.
    """
    results = []
    for observation in observations:
        taxon = None
        if decision == Review.Decision.CONFIRM:
            taxon = taxon_for(observation) if taxon_for else observation.ai_taxon
        try:
            do_review_decide(
                observation=observation,
                curator=curator,
                decision=decision,
                taxon=taxon,
                reject_reason=reject_reason,
            )
        except ParkWatchError as exc:
            results.append((observation, exc))
        else:
            results.append((observation, None))
    return results
