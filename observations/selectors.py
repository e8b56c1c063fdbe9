"""Reads: querysets with the joins their pages and endpoints need (no N+1 in lists)."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from observations.geoprivacy import Viewer
from observations.models import Campaign, Observation, Photo, Taxon

OBSERVATION_RELATED = ("campaign", "park", "guess", "ai_taxon", "final_taxon", "observer")


def observation_queryset() -> QuerySet[Observation]:
    return Observation.objects.select_related(*OBSERVATION_RELATED).prefetch_related(
        Prefetch("photos", queryset=Photo.objects.order_by("position"))
    )


def observation_list(*, viewer: Viewer, mine: bool = False) -> QuerySet[Observation]:
    """Curators see every sighting; others their own and others' confirmed ones."""
    own = Q(uuid__in=list(viewer.own_uuids))
    if getattr(viewer.user, "is_authenticated", False):
        own |= Q(observer=viewer.user)
    queryset = observation_queryset()
    if mine:
        return queryset.filter(own) if own else queryset.none()
    if viewer.sees_everything:
        return queryset
    return queryset.filter(own | Q(status=Observation.Status.CONFIRMED))


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
