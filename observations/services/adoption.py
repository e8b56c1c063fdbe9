"""Anonymous sightings join the account of the visitor who sent them, once they sign in."""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from observations.models import Observation


def _valid_uuids(uuids: Iterable) -> set[uuid_module.UUID]:
    valid = set()
    for value in uuids:
        try:
            valid.add(
                value if isinstance(value, uuid_module.UUID) else uuid_module.UUID(str(value))
            )
        except (TypeError, ValueError, AttributeError):
            continue  # a tampered or stale session entry: ignore it
    return valid


@transaction.atomic
def observations_adopt(*, user, uuids: Iterable) -> int:
    """Give `user` the sightings among `uuids` that have no observer yet; return how many.

    A sighting that already belongs to an account (this one or another) is left alone: a
    session never takes a sighting from someone else.
    """
    if not getattr(user, "is_authenticated", False):
        return 0
    valid = _valid_uuids(uuids)
    if not valid:
        return 0
    return Observation.objects.filter(uuid__in=valid, observer__isnull=True).update(
        observer=user, updated_at=timezone.now()
    )
