from django.conf import settings

from observations.roles import is_admin, is_curator


def parkwatch(request):
    user = getattr(request, "user", None)
    return {
        "is_curator": is_curator(user),
        "is_admin": is_admin(user),
        "map_tile_url": settings.MAP_TILE_URL,
        "map_tile_attribution": settings.MAP_TILE_ATTRIBUTION,
    }
