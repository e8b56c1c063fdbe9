from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from classifier.models import ClassifierLabel, ClassifierVersion


def version_list(*, campaign_slug: str | None = None) -> QuerySet[ClassifierVersion]:
    versions = ClassifierVersion.objects.select_related("campaign").prefetch_related(
        Prefetch(
            "labels", queryset=ClassifierLabel.objects.select_related("taxon").order_by("index")
        )
    )
    if campaign_slug:
        versions = versions.filter(campaign__slug=campaign_slug)
    return versions
