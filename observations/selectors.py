"""Reads: querysets with the joins their pages and endpoints need (no N+1 in lists)."""

from __future__ import annotations

import math

from django.conf import settings
from django.db.models import Case, Prefetch, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from observations.geoprivacy import Viewer
from observations.models import Campaign, Observation, Photo, Taxon
from observations.roles import is_admin

OBSERVATION_RELATED = (
    "campaign",
    "park",
    "guess",
    "ai_taxon",
    "final_taxon",
    "observer",
    "possible_duplicate_of",
)
# The classifier writes Prediction rows; the domain reads them through the reverse relation,
# without importing the classifier app.
_predictions = Observation._meta.get_field("predictions")


def observation_queryset() -> QuerySet[Observation]:
    predictions = _predictions.related_model.objects.select_related("taxon", "version").order_by(
        "-version__created_at", "-version_id", "photo_id", "rank"
    )
    return Observation.objects.select_related(*OBSERVATION_RELATED).prefetch_related(
        Prefetch("photos", queryset=Photo.objects.order_by("position")),
        Prefetch("predictions", queryset=predictions),
    )


def observation_list(
    *, viewer: Viewer, mine: bool = False, filters: dict | None = None
) -> QuerySet[Observation]:
    """Curators see every sighting; others their own and others' confirmed ones."""
    own = Q(uuid__in=list(viewer.own_uuids))
    if getattr(viewer.user, "is_authenticated", False):
        own |= Q(observer=viewer.user)
    queryset = observation_queryset()
    filters = filters or {}
    if filters.get("status"):
        queryset = queryset.filter(status=filters["status"])
    if filters.get("campaign"):
        queryset = queryset.filter(campaign__slug=filters["campaign"])
    if filters.get("park"):
        queryset = queryset.filter(park__slug=filters["park"])
    if mine:
        return queryset.filter(own) if own else queryset.none()
    if viewer.sees_everything:
        return queryset
    return queryset.filter(own | Q(status=Observation.Status.CONFIRMED))


def ai_predictions(observation: Observation, *, photo=None) -> list:
    """The newest classifier version's top 5 for the sighting (or one photo), best first.

    Reads the prefetched rows of `observation_queryset`; no query when they are prefetched.
    """
    rows = [
        row
        for row in observation.predictions.all()
        if row.photo_id == (photo.pk if photo else None)
    ]
    if not rows:
        return []
    newest = rows[0].version_id
    return sorted((row for row in rows if row.version_id == newest), key=lambda row: row.rank)


def observation_get(*, uuid) -> Observation | None:
    return observation_queryset().filter(uuid=uuid).first()


def campaign_for_upload(slug: str | None = None) -> Campaign | None:
    campaigns = Campaign.objects.filter(is_active=True)
    if slug:
        return campaigns.filter(slug=slug).first()
    return campaigns.filter(is_default=True).first() or campaigns.first()


def campaign_taxa(campaign: Campaign | None) -> QuerySet[Taxon]:
    if campaign is None:
        return Taxon.objects.none()
    return campaign.taxa.order_by("scientific_name")


# -- review ------------------------------------------------------------------------------------

WAITING_FOR_REVIEW = (
    Observation.Status.RECEIVED,
    Observation.Status.CLASSIFIED,
    Observation.Status.CLASSIFICATION_FAILED,
)


def curator_campaigns(curator) -> QuerySet[Campaign] | None:
    """The campaigns a curator works on; None means all (admins, or curators not assigned)."""
    if is_admin(curator):
        return None
    assigned = Campaign.objects.filter(Q(curators=curator) | Q(lead_curators=curator)).distinct()
    return assigned if assigned.exists() else None


def review_queue(*, curator, campaign=None, filters: dict | None = None) -> QuerySet[Observation]:
    """Sightings waiting for this curator, most urgent first.

    Priority: likely invasive first (the AI gave an invasive taxon at least
    REVIEW_INVASIVE_THRESHOLD), then the most uncertain (entropy of the AI's top 5), then the
    oldest. Free claims only (or expired ones); conflicts only for lead curators; never a
    sighting this curator already reviewed.
    """
    filters = filters or {}
    now = timezone.now()
    waiting = Q(status__in=WAITING_FOR_REVIEW) | Q(
        status=Observation.Status.IN_REVIEW, claim_expires_at__lte=now
    )
    lead_campaigns = None
    if is_admin(curator):
        waiting |= Q(status=Observation.Status.CONFLICT)
    else:
        lead_campaigns = list(curator.led_campaigns.values_list("pk", flat=True))
        if lead_campaigns:
            waiting |= Q(status=Observation.Status.CONFLICT, campaign__in=lead_campaigns)
    queryset = observation_queryset().filter(waiting).exclude(reviews__curator=curator)
    campaigns = curator_campaigns(curator)
    if campaigns is not None:
        queryset = queryset.filter(campaign__in=campaigns)
    if campaign is not None:
        queryset = queryset.filter(campaign=campaign)
    if filters.get("campaign"):
        queryset = queryset.filter(campaign__slug=filters["campaign"])
    if filters.get("park"):
        queryset = queryset.filter(park__slug=filters["park"])
    if filters.get("ai_taxon"):
        queryset = queryset.filter(ai_taxon_id=filters["ai_taxon"])
    if filters.get("invasive_only"):
        queryset = queryset.filter(ai_invasive_score__gte=settings.REVIEW_INVASIVE_THRESHOLD)
    if filters.get("duplicates_only"):
        queryset = queryset.filter(possible_duplicate_of__isnull=False)
    if filters.get("exclude"):  # sightings this curator skipped a moment ago
        queryset = queryset.exclude(uuid__in=filters["exclude"])
    return queryset.annotate(
        likely_invasive=Case(
            When(ai_invasive_score__gte=settings.REVIEW_INVASIVE_THRESHOLD, then=Value(1)),
            default=Value(0),
        ),
        uncertainty=Coalesce("ai_entropy", Value(-1.0)),
    ).order_by("-likely_invasive", "-uncertainty", "received_at", "pk")


def review_history(observation: Observation) -> QuerySet:
    return observation.reviews.select_related("curator", "taxon").order_by("created_at")


def nearby_confirmed(observation: Observation, *, radius_m: float = 1000, limit: int = 20) -> list:
    """Other confirmed sightings within `radius_m` (bounding box in SQL, exact distance here)."""
    lat, lon = observation.latitude, observation.longitude
    dlat = radius_m / 111_320
    dlon = radius_m / (111_320 * max(math.cos(math.radians(lat)), 0.01))
    candidates = (
        Observation.objects.filter(
            status=Observation.Status.CONFIRMED,
            latitude__range=(lat - dlat, lat + dlat),
            longitude__range=(lon - dlon, lon + dlon),
        )
        .exclude(pk=observation.pk)
        .select_related("final_taxon")
    )
    found = []
    for other in candidates:
        distance = _haversine_m(lat, lon, other.latitude, other.longitude)
        if distance <= radius_m:
            other.distance_m = round(distance)
            found.append(other)
    return sorted(found, key=lambda other: other.distance_m)[:limit]


def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    radius = 6_371_000
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = math.radians(lat2 - lat1), math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(a))


def training_pool(*, campaign=None) -> QuerySet[Photo]:
    """Photos of confirmed sightings, with the confirmed taxon: what retraining learns from.

    A selector over verdicts, so a rejection keeps photos out and a correction moves them.
    Each photo carries `observation__final_taxon`; who confirmed it is the deciding review.
    """
    photos = Photo.objects.filter(
        observation__status=Observation.Status.CONFIRMED, observation__final_taxon__isnull=False
    ).select_related("observation__final_taxon", "observation__campaign")
    if campaign is not None:
        photos = photos.filter(observation__campaign=campaign)
    return photos.order_by("observation_id", "position")


def confirmed_by(observation: Observation):
    """The curator whose review gave the current verdict (the latest confirming review)."""
    review = (
        observation.reviews.filter(decision="confirm", taxon=observation.final_taxon)
        .select_related("curator")
        .order_by("-round", "-created_at")
        .first()
    )
    return review.curator if review else None


def control_cases(*, open_only: bool = True) -> QuerySet[Observation]:
    """Confirmed invasive sightings under follow-up, oldest first."""
    cases = observation_queryset().filter(
        status=Observation.Status.CONFIRMED, final_taxon__is_invasive=True
    )
    cases = cases.exclude(control_status="")
    if open_only:
        cases = cases.exclude(control_status=Observation.ControlStatus.ERADICATED)
    return cases.prefetch_related("control_events__user").order_by("decided_at", "pk")
