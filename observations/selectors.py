"""Reads: querysets with the joins their pages and endpoints need (no N+1 in lists)."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from observations.geoprivacy import Viewer
from observations.models import Campaign, Observation, Photo, Taxon

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
