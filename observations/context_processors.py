"""What every page's layout needs: the viewer's roles, map settings, the classifier banner."""

from __future__ import annotations

from django.conf import settings
from django.db.models import FilteredRelation, Q

from observations.models import Campaign
from observations.roles import is_admin, is_curator

DEMO_BANNER = "Demo model active: AI suggestions are not trained on real photos"
NO_CLASSIFIER_BANNER = "No classifier active: sightings wait for one"
_BANNER_CACHE = "_parkwatch_classifier_banner"


def classifier_banner(request) -> dict | None:
    """What the site-wide banner says about the default campaign's active classifier, if anything.

    One query (the campaign joined to its active version), at most once per request, and only
    when a template shows the banner. None when a real (non-demo) version is active, or when
    there is no campaign yet.
    """
    if request is not None and hasattr(request, _BANNER_CACHE):
        return getattr(request, _BANNER_CACHE)
    row = (
        Campaign.objects.filter(is_active=True)
        .annotate(
            active=FilteredRelation(
                "classifier_versions", condition=Q(classifier_versions__state="active")
            )
        )
        .order_by("-is_default", "name", "pk")  # campaign_for_upload's choice: the default first
        .values_list("active__pk", "active__is_demo")
        .first()
    )
    banner = None
    if row is not None:
        version_id, is_demo = row
        if version_id is None:
            banner = {"kind": "none", "text": NO_CLASSIFIER_BANNER}
        elif is_demo:
            banner = {"kind": "demo", "text": DEMO_BANNER}
    if request is not None:
        setattr(request, _BANNER_CACHE, banner)
    return banner


def parkwatch(request):
    user = getattr(request, "user", None)
    return {
        "is_curator": is_curator(user),
        "is_admin": is_admin(user),
        "map_tile_url": settings.MAP_TILE_URL,
        "map_tile_attribution": settings.MAP_TILE_ATTRIBUTION,
        # A callable: the template calls it (once, cached on the request) only where it is shown.
        "classifier_banner": lambda: classifier_banner(request),
    }
