"""Who may see a sighting's exact position: the one place every output asks.

A sighting is sensitive when any taxon attached to it is sensitive: the reviewed (final) taxon,
the visitor's guess, or the AI's top-1. A viewer who is neither the observer nor a curator or
admin then gets the position generalised to the 0.1 degree cell that contains it (the cell's
centre), with the accuracy widened to cover the cell, and a note saying so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from observations.roles import is_curator

CELL_DEGREES = 0.1
# Half the diagonal of a 0.1 x 0.1 degree cell at the equator, in metres (~7.9 km).
CELL_UNCERTAINTY_M = 7860
WITHHELD_NOTE = "Coordinates generalised to a 0.1 degree grid cell: the taxon is sensitive."


@dataclass(frozen=True)
class Viewer:
    """Who is looking: a user (maybe anonymous) and the sightings this browser sent."""

    user: object = None
    own_uuids: frozenset = field(default_factory=frozenset)

    @property
    def sees_everything(self) -> bool:
        return is_curator(self.user)

    def owns(self, observation) -> bool:
        user = self.user
        if getattr(user, "is_authenticated", False) and observation.observer_id == user.pk:
            return True
        return str(observation.uuid) in self.own_uuids


@dataclass(frozen=True)
class Position:
    latitude: float
    longitude: float
    accuracy_m: float | None
    generalised: bool = False
    note: str = ""


def is_sensitive(observation) -> bool:
    """Sensitive by the reviewed taxon, the visitor's guess or any AI top-1 taxon.

    "Any AI top-1" covers every classifier version and every photo's own top-1, not only the
    sighting's current suggestion (read from the prefetched predictions when there are some).
    """
    for name in ("final_taxon", "guess", "ai_taxon"):
        taxon = getattr(observation, name, None)
        if taxon is not None and taxon.is_sensitive:
            return True
    if observation.pk is None:
        return False
    return any(
        row.rank == 1 and row.taxon is not None and row.taxon.is_sensitive
        for row in observation.predictions.all()
    )


def generalise(latitude: float, longitude: float) -> tuple[float, float]:
    """The centre of the 0.1 degree cell that holds the point."""
    lat = (math.floor(latitude / CELL_DEGREES) + 0.5) * CELL_DEGREES
    lon = (math.floor(longitude / CELL_DEGREES) + 0.5) * CELL_DEGREES
    return round(min(max(lat, -90), 90), 2), round(min(max(lon, -180), 180), 2)


def may_see_exact(observation, viewer: Viewer) -> bool:
    return viewer.sees_everything or viewer.owns(observation) or not is_sensitive(observation)


def position_for(observation, viewer: Viewer) -> Position:
    """The position this viewer may see."""
    if may_see_exact(observation, viewer):
        return Position(observation.latitude, observation.longitude, observation.accuracy_m)
    latitude, longitude = generalise(observation.latitude, observation.longitude)
    accuracy = max(observation.accuracy_m or 0, CELL_UNCERTAINTY_M)
    return Position(latitude, longitude, accuracy, generalised=True, note=WITHHELD_NOTE)
