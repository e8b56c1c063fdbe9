"""Times shown where they happened: the park's time zone, with its UTC offset."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings


def park_zone(park) -> ZoneInfo:
    """The park's zone; outside every park (or for a bad zone name) the default zone."""
    name = park.timezone if park is not None else settings.PARKWATCH_DEFAULT_TIMEZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.PARKWATCH_DEFAULT_TIMEZONE)


def utc_offset(moment: datetime) -> str:
    """'UTC+02:00'."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def local_text(moment: datetime, zone: ZoneInfo, *, month: str = "%B") -> str:
    """'1 June 2026, 10:30 (UTC+02:00)': the wall-clock time in `zone`, and its offset."""
    local = moment.astimezone(zone)
    return f"{local.day} {local.strftime(month)} {local:%Y, %H:%M} ({utc_offset(local)})"
