"""Follow-up of confirmed invasive sightings (early detection and rapid response).

`reported` -> `assessed` -> `treatment_scheduled` -> `treated` -> `monitoring` -> `eradicated`,
each change recorded with who, when and a note. Steps may be skipped forwards; going back is
allowed only where field work does (regrowth found while monitoring: back to treatment).
"""

from __future__ import annotations

from django.db import transaction

from observations.errors import ParkWatchError
from observations.models import ControlEvent, Observation
from observations.roles import is_curator

ORDER = list(Observation.ControlStatus.values)
BACKWARD_ALLOWED = {
    (Observation.ControlStatus.MONITORING, Observation.ControlStatus.TREATMENT_SCHEDULED),
    (Observation.ControlStatus.MONITORING, Observation.ControlStatus.TREATED),
    (Observation.ControlStatus.ERADICATED, Observation.ControlStatus.MONITORING),
}


def control_open(*, observation: Observation, user=None) -> ControlEvent | None:
    """Start the follow-up of a newly confirmed invasive sighting (once)."""
    if observation.control_status:
        return None
    observation.control_status = Observation.ControlStatus.REPORTED
    Observation.objects.filter(pk=observation.pk).update(control_status=observation.control_status)
    return ControlEvent.objects.create(
        observation=observation,
        from_status="",
        to_status=Observation.ControlStatus.REPORTED,
        user=user,
        note="Confirmed invasive sighting: follow-up opened.",
    )


def check_control_advance(*, observation: Observation, user, to_status: str, note: str) -> None:
    if not is_curator(user):
        raise ParkWatchError(
            "Only curators and admins record control work.", code="not_a_curator", status=403
        )
    if observation.status != Observation.Status.CONFIRMED or not observation.control_status:
        raise ParkWatchError(
            "Only confirmed invasive sightings are followed up.",
            code="not_under_control",
            field="to_status",
        )
    if to_status not in ORDER:
        raise ParkWatchError(
            f"to_status must be one of {', '.join(ORDER)}.",
            code="invalid_control_status",
            field="to_status",
        )
    current = observation.control_status
    if to_status == current:
        raise ParkWatchError(
            f"The follow-up is already {current}.", code="unchanged", field="to_status"
        )
    if (
        ORDER.index(to_status) < ORDER.index(current)
        and (current, to_status) not in BACKWARD_ALLOWED
    ):
        raise ParkWatchError(
            f"A follow-up cannot go back from {current} to {to_status}.",
            code="invalid_control_transition",
            field="to_status",
        )
    if not note.strip():
        raise ParkWatchError(
            "Add a note: what was done or seen.", code="note_missing", field="note"
        )


@transaction.atomic
def control_advance(*, observation: Observation, user, to_status: str, note: str) -> ControlEvent:
    observation = Observation.objects.select_for_update().get(pk=observation.pk)
    check_control_advance(observation=observation, user=user, to_status=to_status, note=note)
    event = ControlEvent.objects.create(
        observation=observation,
        from_status=observation.control_status,
        to_status=to_status,
        user=user,
        note=note.strip(),
    )
    Observation.objects.filter(pk=observation.pk).update(control_status=to_status)
    return event
