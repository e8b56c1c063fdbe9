"""Which park a position lies in (point-in-polygon on the parks' GeoJSON boundaries)."""

from __future__ import annotations

import json
import logging
from functools import lru_cache

from shapely import prepared
from shapely.geometry import Point, shape

from observations.errors import ParkWatchError
from observations.models import Park

logger = logging.getLogger(__name__)


@lru_cache(maxsize=256)
def _prepared_boundary(boundary_json: str):
    return prepared.prep(shape(json.loads(boundary_json)))


def park_boundary_check(boundary: dict) -> None:
    """Raise a clear error unless `boundary` is a valid GeoJSON (Multi)Polygon."""
    if not isinstance(boundary, dict) or boundary.get("type") not in {"Polygon", "MultiPolygon"}:
        raise ParkWatchError(
            "The boundary must be a GeoJSON Polygon or MultiPolygon.",
            code="invalid_boundary",
            field="boundary",
        )
    try:
        geometry = shape(boundary)
    except Exception as exc:
        raise ParkWatchError(
            f"The boundary is not valid GeoJSON: {exc}", code="invalid_boundary", field="boundary"
        ) from None
    if geometry.is_empty or not geometry.is_valid:
        raise ParkWatchError(
            "The boundary polygon is empty or crosses itself.",
            code="invalid_boundary",
            field="boundary",
        )
    minx, miny, maxx, maxy = geometry.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ParkWatchError(
            "The boundary has coordinates outside [-180, 180] x [-90, 90]; GeoJSON is [longitude, latitude].",
            code="invalid_boundary",
            field="boundary",
        )


def park_for_point(*, latitude: float, longitude: float) -> Park | None:
    """The park containing the point, or None. GeoJSON order is [longitude, latitude]."""
    point = Point(longitude, latitude)
    for park in Park.objects.only("id", "boundary", "name", "slug", "timezone"):
        try:
            boundary = _prepared_boundary(json.dumps(park.boundary, sort_keys=True))
        except Exception:  # a broken boundary must not stop sightings elsewhere
            logger.warning("Park %s has an unreadable boundary; skipped", park.slug, exc_info=True)
            continue
        if boundary.covers(point):
            return park
    return None
