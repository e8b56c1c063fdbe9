"""What a photo's EXIF says about where and when it was taken."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from PIL import ExifTags, Image

GPS = ExifTags.GPS
TAG_DATETIME = ExifTags.Base.DateTime
TAG_DATETIME_ORIGINAL = ExifTags.Base.DateTimeOriginal
TAG_OFFSET_TIME_ORIGINAL = ExifTags.Base.OffsetTimeOriginal
TAG_OFFSET_TIME = ExifTags.Base.OffsetTime
TAG_ORIENTATION = ExifTags.Base.Orientation
# Photographs of plants in parks are not older than this; earlier EXIF times are unset clocks.
EARLIEST_YEAR = 1900


@dataclass(frozen=True)
class PhotoMetadata:
    latitude: float | None = None
    longitude: float | None = None
    altitude_m: float | None = None
    accuracy_m: float | None = None
    # Aware when the photo says its UTC offset (or only has a GPS time), else naive local time.
    taken_at: datetime | None = None
    orientation: int = 1

    @property
    def has_position(self) -> bool:
        return self.latitude is not None and self.longitude is not None


def read_metadata(image: Image.Image) -> PhotoMetadata:
    """Position, altitude, accuracy, time and orientation from an opened (not yet loaded) image."""
    try:
        exif = image.getexif()
    except Exception:  # a damaged EXIF block is no reason to refuse the photo itself
        return PhotoMetadata()
    if not exif:
        return PhotoMetadata()
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:
        gps = {}
    try:
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:
        exif_ifd = {}

    latitude = _coordinate(gps.get(GPS.GPSLatitude), gps.get(GPS.GPSLatitudeRef), "S", 90)
    longitude = _coordinate(gps.get(GPS.GPSLongitude), gps.get(GPS.GPSLongitudeRef), "W", 180)
    if latitude is None or longitude is None or (latitude == 0 and longitude == 0):
        # (0, 0) is what broken GPS code writes, not a place anyone photographs plants.
        latitude = longitude = None

    altitude = _number(gps.get(GPS.GPSAltitude))
    if altitude is not None and _ref(gps.get(GPS.GPSAltitudeRef)) in {"1", "\x01"}:
        altitude = -altitude
    accuracy = _number(gps.get(GPS.GPSHPositioningError))
    if accuracy is not None and accuracy < 0:
        accuracy = None

    taken_at = _plausible(
        _exif_datetime(
            exif_ifd.get(TAG_DATETIME_ORIGINAL) or exif.get(TAG_DATETIME),
            exif_ifd.get(TAG_OFFSET_TIME_ORIGINAL) or exif_ifd.get(TAG_OFFSET_TIME),
        )
    )
    if taken_at is None:
        taken_at = _plausible(_gps_datetime(gps.get(GPS.GPSDateStamp), gps.get(GPS.GPSTimeStamp)))

    orientation = exif.get(TAG_ORIENTATION, 1)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    return PhotoMetadata(
        latitude=latitude,
        longitude=longitude,
        altitude_m=altitude if latitude is not None else None,
        accuracy_m=accuracy if latitude is not None else None,
        taken_at=taken_at,
        orientation=orientation,
    )


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _ref(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    return str(value or "").strip().upper()[:1]


def _coordinate(dms, ref, negative_ref: str, limit: float) -> float | None:
    if dms is None:
        return None
    parts = dms if isinstance(dms, tuple | list) else (dms,)
    numbers = [_number(part) for part in parts[:3]]
    if not numbers or any(n is None for n in numbers):
        return None
    degrees = (
        numbers[0]
        + (numbers[1] / 60 if len(numbers) > 1 else 0)
        + (numbers[2] / 3600 if len(numbers) > 2 else 0)
    )
    if _ref(ref) == negative_ref:
        degrees = -degrees
    if not -limit <= degrees <= limit:
        return None
    return round(degrees, 7)


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    return str(value or "").strip().strip("\x00").strip()


def _exif_datetime(value, offset) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset_text = _text(offset)
    if offset_text:
        try:
            sign = -1 if offset_text[0] == "-" else 1
            hours, minutes = offset_text.lstrip("+-").split(":")
            delta = timedelta(hours=int(hours), minutes=int(minutes))
            return moment.replace(tzinfo=timezone(sign * delta))
        except (ValueError, IndexError):
            pass
    return moment


def _plausible(moment: datetime | None) -> datetime | None:
    """A camera whose clock was never set may write year 1: that is no date at all."""
    if moment is None or moment.year < EARLIEST_YEAR:
        return None
    return moment


def _gps_datetime(datestamp, timestamp) -> datetime | None:
    text = _text(datestamp)
    if not text or not timestamp or len(timestamp) < 3:
        return None
    try:
        day = datetime.strptime(text[:10], "%Y:%m:%d")
        hours, minutes, seconds = (_number(part) for part in timestamp[:3])
        return day.replace(tzinfo=UTC) + timedelta(hours=hours, minutes=minutes, seconds=seconds)
    except (TypeError, ValueError, OverflowError):  # e.g. 2^32 hours after 31 Dec 9999
        return None
