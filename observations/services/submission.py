"""Submitting a sighting: photos checked, position and time settled, stored whole or not at all."""

from __future__ import annotations

import logging
import uuid as uuid_module
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from observations.errors import Conflict, ParkWatchError
from observations.logcontext import sighting_extra
from observations.models import Campaign, Observation, Park, Photo, Taxon
from observations.services.classification import classification_request
from observations.services.exif import EARLIEST_YEAR
from observations.services.parks import park_for_point
from observations.services.photos import InspectedPhoto, photo_inspect
from observations.timezones import park_zone

logger = logging.getLogger(__name__)

# Clocks on phones drift; a sighting a few minutes "in the future" is not an error.
FUTURE_TOLERANCE = timedelta(minutes=10)


@dataclass(frozen=True)
class SubmissionResult:
    observation: Observation
    created: bool


def observation_submit(
    *,
    photos: Sequence,
    observer=None,
    observer_email: str = "",
    observer_credit: str = "",
    campaign: Campaign | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    accuracy_m: float | None = None,
    position_source: str | None = None,
    observed_at: datetime | None = None,
    notes: str = "",
    guess: Taxon | None = None,
    licence: str = Observation.Licence.CC_BY,
    client_uuid: uuid_module.UUID | None = None,
) -> SubmissionResult:
    """Store a sighting with its photos, or raise ParkWatchError and store nothing.

    A repeated `client_uuid` returns the first sighting (created=False), also under a race:
    the unique constraint decides, not a check-then-insert.
    """
    observer = observer if getattr(observer, "is_authenticated", False) else None
    if client_uuid is not None:
        existing = _existing_for_client_uuid(client_uuid, observer)
        if existing is not None:
            return SubmissionResult(existing, created=False)

    if not observer and not settings.ALLOW_ANONYMOUS_UPLOADS:
        raise ParkWatchError("Sign in to send a sighting.", code="not_authenticated", status=401)
    inspected = _inspect_photos(photos)
    campaign = campaign or _default_campaign()
    if guess is not None and not campaign.taxa.filter(pk=guess.pk).exists():
        raise ParkWatchError(
            f"{guess.scientific_name} is not one of the taxa of {campaign.name}.",
            code="unknown_taxon",
            field="guess",
        )
    latitude, longitude, accuracy_m, altitude_m, position_source = _settle_position(
        inspected, latitude, longitude, accuracy_m, position_source
    )
    park = park_for_point(latitude=latitude, longitude=longitude)
    observed_at = _settle_time(inspected, observed_at, park)
    if licence not in Observation.Licence.values:
        raise ParkWatchError(
            f"Unknown licence {licence!r}; choose one of {', '.join(Observation.Licence.values)}.",
            code="invalid_licence",
            field="licence",
        )

    observation = Observation(
        client_uuid=client_uuid,
        observer=observer,
        observer_email=observer_email if not observer else (observer_email or observer.email),
        observer_credit=observer_credit.strip(),
        campaign=campaign,
        park=park,
        latitude=latitude,
        longitude=longitude,
        accuracy_m=accuracy_m,
        altitude_m=altitude_m,
        position_source=position_source,
        observed_at=observed_at,
        notes=notes.strip(),
        guess=guess,
        licence=licence,
        possible_duplicate_of=_possible_duplicate_of(inspected),
    )
    observation.full_clean(exclude=["client_uuid", "campaign", "park", "guess", "observer"])

    stored_files: list = []
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    observation.save()
            except IntegrityError:
                if client_uuid is None:
                    raise
                # Lost the race against the same retry: the first one's row is committed now.
                existing = _existing_for_client_uuid(client_uuid, observer)
                if existing is None:
                    raise
                return SubmissionResult(existing, created=False)
            for position, photo in enumerate(inspected):
                _store_photo(observation, position, photo, stored_files)
            transaction.on_commit(
                lambda: classification_request(observation_ids=[observation.pk]), robust=True
            )
    except BaseException:
        for field_file in stored_files:
            try:
                field_file.storage.delete(field_file.name)
            except Exception:
                logger.exception(
                    "Could not remove %s after a failed upload",
                    field_file.name,
                    extra=sighting_extra(observation),
                )
        raise
    logger.info(
        "Sighting %s received: %d photo(s), park=%s",
        observation.uuid,
        len(inspected),
        park,
        extra=sighting_extra(observation),
    )
    return SubmissionResult(observation, created=True)


def _existing_for_client_uuid(client_uuid, observer) -> Observation | None:
    existing = Observation.objects.filter(client_uuid=client_uuid).first()
    if existing is None:
        return None
    if existing.observer_id and (observer is None or existing.observer_id != observer.pk):
        raise Conflict(
            "This client_uuid belongs to another user's sighting.",
            code="client_uuid_taken",
            field="client_uuid",
        )
    return existing


def _inspect_photos(photos: Sequence) -> list[InspectedPhoto]:
    if not photos:
        raise ParkWatchError("Send at least one photo.", code="photos_missing", field="photos")
    if len(photos) > settings.PHOTO_MAX_COUNT:
        raise ParkWatchError(
            f"{len(photos)} photos sent; at most {settings.PHOTO_MAX_COUNT} photos of one "
            "organism make one sighting.",
            code="too_many_photos",
            field="photos",
        )
    return [photo_inspect(photo, index=index) for index, photo in enumerate(photos)]


def _default_campaign() -> Campaign:
    campaign = (
        Campaign.objects.filter(is_default=True).first()
        or Campaign.objects.filter(is_active=True).first()
    )
    if campaign is None:
        raise ParkWatchError(
            "No campaign is open for sightings yet (an admin must create one).",
            code="no_campaign",
            field="campaign",
        )
    return campaign


def _settle_position(inspected, latitude, longitude, accuracy_m, source):
    """Sent values win over EXIF; the source is stored with the position."""
    if (latitude is None) != (longitude is None):
        raise ParkWatchError(
            "Send both latitude and longitude, or neither.",
            code="position_incomplete",
            field="latitude" if latitude is None else "longitude",
        )
    altitude_m = None
    with_gps = next((p.metadata for p in inspected if p.metadata.has_position), None)
    if latitude is not None and source == Observation.PositionSource.EXIF and with_gps is not None:
        # The page read the position from the photo and sent it back: keep what else EXIF says.
        altitude_m = with_gps.altitude_m
        if accuracy_m is None:
            accuracy_m = with_gps.accuracy_m
    if latitude is None:
        if with_gps is None:
            raise ParkWatchError(
                "No position: the photos carry no GPS position. Send latitude and longitude, "
                "use your device's location or pick the point on the map.",
                code="position_missing",
                field="latitude",
            )
        latitude, longitude = with_gps.latitude, with_gps.longitude
        altitude_m = with_gps.altitude_m
        if accuracy_m is None:
            accuracy_m = with_gps.accuracy_m
        source = Observation.PositionSource.EXIF
    else:
        source = source or Observation.PositionSource.DEVICE
        if source not in Observation.PositionSource.values:
            raise ParkWatchError(
                f"position_source must be one of {', '.join(Observation.PositionSource.values)}.",
                code="invalid_position_source",
                field="position_source",
            )
    if not -90 <= latitude <= 90:
        raise ParkWatchError(
            "Latitude must be between -90 and 90.", code="invalid_latitude", field="latitude"
        )
    if not -180 <= longitude <= 180:
        raise ParkWatchError(
            "Longitude must be between -180 and 180.", code="invalid_longitude", field="longitude"
        )
    if accuracy_m is not None and accuracy_m < 0:
        raise ParkWatchError(
            "Accuracy cannot be negative.", code="invalid_accuracy", field="accuracy_m"
        )
    return latitude, longitude, accuracy_m, altitude_m, source


def _settle_time(inspected, observed_at: datetime | None, park: Park | None) -> datetime:
    """Sent time wins; else EXIF DateTimeOriginal with its offset, else in the park's zone."""
    if observed_at is None:
        observed_at = next((p.metadata.taken_at for p in inspected if p.metadata.taken_at), None)
    if observed_at is None:
        raise ParkWatchError(
            "No date: the photos carry no time they were taken. Send observed_at.",
            code="observed_at_missing",
            field="observed_at",
        )
    if observed_at.year < EARLIEST_YEAR:  # also keeps the time storable in UTC (not year 0)
        raise ParkWatchError(
            f"The observation time is before {EARLIEST_YEAR}.",
            code="observed_at_too_early",
            field="observed_at",
        )
    if timezone.is_naive(observed_at):
        observed_at = observed_at.replace(tzinfo=park_zone(park))
    if observed_at > timezone.now() + FUTURE_TOLERANCE:
        raise ParkWatchError(
            "The observation time is in the future.",
            code="observed_at_in_future",
            field="observed_at",
        )
    # In UTC: PostgreSQL refuses offsets beyond 15:59, which ISO 8601 and EXIF allow.
    return observed_at.astimezone(UTC)


def _possible_duplicate_of(inspected: list[InspectedPhoto]) -> Observation | None:
    """The earliest sighting with an identical or near-identical photo, if any."""
    hashes = [photo.sha256 for photo in inspected]
    identical = Photo.objects.filter(sha256__in=hashes).order_by("observation__received_at").first()
    if identical is not None:
        return identical.observation
    band_filter = Q()
    for photo in inspected:
        b0, b1, b2, b3 = photo.phash_bands
        band_filter |= Q(phash_band0=b0) | Q(phash_band1=b1) | Q(phash_band2=b2) | Q(phash_band3=b3)
    limit = settings.PHOTO_NEAR_DUPLICATE_BITS
    candidates = (
        Photo.objects.filter(band_filter)
        .only("phash", "observation_id")
        .order_by("observation__received_at")[:500]
    )
    for candidate in candidates:
        value = int(candidate.phash, 16)
        if any((value ^ photo.phash).bit_count() <= limit for photo in inspected):
            return Observation.objects.get(pk=candidate.observation_id)
    return None


def _store_photo(
    observation: Observation, position: int, photo: InspectedPhoto, stored: list
) -> None:
    stem = f"{observation.uuid.hex}-{position + 1}"
    row = Photo(
        observation=observation,
        position=position,
        sha256=photo.sha256,
        phash=photo.phash_hex,
        width=photo.width,
        height=photo.height,
        format=photo.format,
        size_bytes=photo.size_bytes,
    )
    row.phash_band0, row.phash_band1, row.phash_band2, row.phash_band3 = photo.phash_bands
    photo.upload.seek(0)
    row.original.save(f"{stem}{photo.extension}", photo.upload, save=False)
    stored.append(row.original)
    row.image.save(f"{stem}.jpg", ContentFile(photo.public_jpeg), save=False)
    stored.append(row.image)
    row.thumbnail.save(f"{stem}-thumb.jpg", ContentFile(photo.thumbnail_jpeg), save=False)
    stored.append(row.thumbnail)
    row.save()
