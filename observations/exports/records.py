"""Confirmed records for export: the filters, the selector, and one row model for every format.

CSV, GeoJSON and the Darwin Core Archive all read the same `ExportRecord`s, so a sighting says
the same thing in each and its geoprivacy is decided once, here: `public` positions are what an
anonymous visitor may see (`position_for` with an anonymous `Viewer()`), `exact` the stored
position. Records stream from the database in chunks (`iterator(chunk_size=...)`, prefetches
done per chunk), so memory stays flat however many there are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db.models import F, Prefetch, Q, QuerySet
from django.utils import timezone
from django.utils.encoding import filepath_to_uri

from observations.errors import ParkWatchError
from observations.geoprivacy import Viewer, position_for
from observations.models import Campaign, Observation, Park, Photo, Review, Taxon
from observations.selectors import ai_predictions

PUBLIC = "public"
EXACT = "exact"
POSITIONS = (PUBLIC, EXACT)
# The record licences GBIF accepts: a Darwin Core Archive only ever holds these.
GBIF_LICENCES = (
    Observation.Licence.CC0,
    Observation.Licence.CC_BY,
    Observation.Licence.CC_BY_NC,
)
LICENCE_URLS = {
    Observation.Licence.CC0: "https://creativecommons.org/publicdomain/zero/1.0/legalcode",
    Observation.Licence.CC_BY: "https://creativecommons.org/licenses/by/4.0/legalcode",
    Observation.Licence.CC_BY_NC: "https://creativecommons.org/licenses/by-nc/4.0/legalcode",
}
# identificationVerificationStatus of every exported record (HISPID's controlled vocabulary,
# used by the Atlas of Living Australia): an expert curator confirmed the taxon from the photos.
VERIFICATION_STATUS = "verified by specialist"
INFORMATION_WITHHELD = "Exact coordinates withheld: sensitive taxon; available on request."
DATA_GENERALIZATIONS = "Coordinates generalised to a 0.1 degree grid cell."
_TAXA = ("final_taxon", "guess", "ai_taxon")
_CURATOR_FIELDS = ("curator__username", "curator__first_name", "curator__last_name")
# The classifier writes Prediction rows; the domain reads them through the reverse relation,
# without importing the classifier app (as `observations.selectors` does).
_predictions = Observation._meta.get_field("predictions")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class ExportFilters:
    """Which confirmed records an export holds, and which positions it shows."""

    campaign: Campaign | None = None
    park: Park | None = None
    taxon: Taxon | None = None
    since: date | None = None
    until: date | None = None
    invasive_only: bool = False
    positions: str = PUBLIC
    gbif_only: bool = False
    # Records decided after this moment are left out: the passes over the database that one
    # file needs (occurrences, then their photos) then describe the same records.
    decided_before: datetime | None = None

    def as_of_now(self) -> ExportFilters:
        if self.decided_before is not None:
            return self
        return dataclasses.replace(self, decided_before=timezone.now())


def export_filters(params: Mapping[str, object]) -> ExportFilters:
    """Check filters as a user gave them (query string or command line).

    Keys: campaign (slug), park (slug), taxon (id or scientific name), since and until (ISO
    dates, inclusive, days of the site's TIME_ZONE), invasive_only, gbif_only, positions
    (`public` or `exact`). Raises ParkWatchError (400) naming the field at fault.
    """

    def text(name: str) -> str:
        value = params.get(name)
        value = "" if value is None else str(value).strip()
        if "\x00" in value:  # PostgreSQL refuses NUL in a query: a 400, not a 500
            raise ParkWatchError(
                f"{name} contains a NUL character.", code="invalid_characters", field=name
            )
        return value

    campaign = park = taxon = None
    if slug := text("campaign"):
        campaign = Campaign.objects.filter(slug=slug).first()
        if campaign is None:
            raise ParkWatchError(
                f"No campaign is called {slug!r}.", code="unknown_campaign", field="campaign"
            )
    if slug := text("park"):
        park = Park.objects.filter(slug=slug).first()
        if park is None:
            raise ParkWatchError(f"No park is called {slug!r}.", code="unknown_park", field="park")
    if name := text("taxon"):
        if name.isdigit():
            taxon = Taxon.objects.filter(pk=int(name)).first()
        else:
            taxon = Taxon.objects.filter(scientific_name__iexact=name).first()
        if taxon is None:
            raise ParkWatchError(
                f"No taxon has the id or scientific name {name!r}.",
                code="unknown_taxon",
                field="taxon",
            )
    since, until = _date(text("since"), "since"), _date(text("until"), "until")
    if since and until and since > until:
        raise ParkWatchError(
            "since must be on or before until.", code="invalid_date_range", field="since"
        )
    positions = text("positions").lower() or PUBLIC
    if positions not in POSITIONS:
        raise ParkWatchError(
            "positions must be public (generalised for sensitive taxa) or exact.",
            code="invalid_positions",
            field="positions",
        )
    return ExportFilters(
        campaign=campaign,
        park=park,
        taxon=taxon,
        since=since,
        until=until,
        invasive_only=_boolean(params.get("invasive_only"), "invasive_only"),
        gbif_only=_boolean(params.get("gbif_only"), "gbif_only"),
        positions=positions,
    )


def _date(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ParkWatchError(
            f"{field} must be an ISO date (YYYY-MM-DD), not {value!r}.",
            code="invalid_date",
            field=field,
        ) from None


def _boolean(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ParkWatchError(
        f"{field} must be true or false (1 or 0).", code="invalid_boolean", field=field
    )


def confirmed_sightings(filters: ExportFilters) -> QuerySet[Observation]:
    """Confirmed sightings (a verdict with a final taxon) matching the filters."""
    records = Observation.objects.filter(
        status=Observation.Status.CONFIRMED, final_taxon__isnull=False
    )
    if filters.campaign is not None:
        records = records.filter(campaign=filters.campaign)
    if filters.park is not None:
        records = records.filter(park=filters.park)
    if filters.taxon is not None:
        records = records.filter(final_taxon=filters.taxon)
    zone = timezone.get_current_timezone()
    if filters.since is not None:
        records = records.filter(observed_at__gte=datetime.combine(filters.since, time(), zone))
    if filters.until is not None:
        day_after = filters.until + timedelta(days=1)
        records = records.filter(observed_at__lt=datetime.combine(day_after, time(), zone))
    if filters.invasive_only:
        records = records.filter(final_taxon__is_invasive=True)
    if filters.gbif_only:
        records = records.filter(licence__in=GBIF_LICENCES)
    if filters.decided_before is not None:
        records = records.filter(
            Q(decided_at__lte=filters.decided_before) | Q(decided_at__isnull=True)
        )
    return records


def confirmed_records(filters: ExportFilters) -> QuerySet[Observation]:
    """`confirmed_sightings` with what a row needs and no more, oldest first.

    Building rows then runs no query and a chunk of sightings stays small in memory: the
    joined taxa, park and campaign, the photos, the confirming reviews (identifiedBy) and each
    classifier version's top-1 predictions (the geoprivacy looks at every AI top-1, the AI
    remark at the newest version's).
    """
    heavy_taxon_fields = ("common_names", "description", "info_url")
    records = (
        confirmed_sightings(filters)
        .select_related("campaign", "park", "final_taxon", "guess", "ai_taxon")
        .defer(
            "notes",
            "status_detail",
            "message_to_observer",
            "campaign__description",
            "park__boundary",
            *(f"{taxon}__{field}" for taxon in _TAXA for field in heavy_taxon_fields),
        )
    )
    confirming = (
        Review.objects.filter(decision=Review.Decision.CONFIRM)
        .select_related("curator")
        .only("observation_id", "taxon_id", "round", "created_at", *_CURATOR_FIELDS)
        .order_by("-round", "-created_at")
    )
    top_ones = (
        _predictions.related_model.objects.filter(rank=1)
        .select_related("taxon", "version")
        .only(
            "observation_id",
            "photo_id",
            "rank",
            "label",
            "probability",
            "taxon__scientific_name",
            "taxon__is_sensitive",
            "version__name",
            "version__created_at",
        )
        .order_by("-version__created_at", "-version_id", "photo_id", "rank")
    )
    photos = (
        Photo.objects.only("observation_id", "position")
        .annotate(image_name=F("image"))
        .order_by("position")
    )
    return records.prefetch_related(
        Prefetch("photos", queryset=photos, to_attr="export_photos"),
        Prefetch("predictions", queryset=top_ones),
        Prefetch("reviews", queryset=confirming, to_attr="confirming_reviews"),
    ).order_by("pk")


@dataclass(frozen=True, slots=True)
class ExportPhoto:
    id: int
    position: int
    url: str


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """One confirmed sighting as every export format writes it."""

    uuid: str
    occurrence_id: str  # urn:uuid:<uuid>, stable for the sighting's lifetime
    url: str  # the sighting's page
    event_date: str  # ISO 8601 with the offset of the park's time zone
    latitude: float
    longitude: float
    uncertainty_m: float | None
    generalised: bool
    position_source: str
    park_name: str
    park_slug: str
    country_code: str
    campaign_slug: str
    scientific_name: str
    authorship: str
    taxon_rank: str
    common_name: str
    kingdom: str
    family: str
    gbif_key: int | None
    is_invasive: bool
    recorded_by: str
    identified_by: str
    date_identified: str
    ai_taxon: str
    ai_probability: float | None
    ai_model: str
    licence: str
    licence_url: str
    rights_holder: str
    control_status: str
    modified: str
    photos: tuple[ExportPhoto, ...]

    @property
    def full_scientific_name(self) -> str:
        return f"{self.scientific_name} {self.authorship}".strip()

    @property
    def information_withheld(self) -> str:
        return INFORMATION_WITHHELD if self.generalised else ""

    @property
    def data_generalizations(self) -> str:
        return DATA_GENERALIZATIONS if self.generalised else ""

    @property
    def identification_remarks(self) -> str:
        if not self.ai_taxon:
            return ""
        remark = f"AI suggestion: {self.ai_taxon}"
        if self.ai_probability is not None:
            remark += f" (p={self.ai_probability:.2f})"
        if self.ai_model:
            remark += f" by {self.ai_model}"
        return remark


def export_records(
    filters: ExportFilters, *, chunk_size: int | None = None
) -> Iterator[ExportRecord]:
    """The rows of an export, read from the database `chunk_size` sightings at a time."""
    chunk_size = chunk_size or settings.EXPORT_CHUNK_SIZE
    for observation in confirmed_records(filters).iterator(chunk_size=chunk_size):
        record = export_record(observation, positions=filters.positions)
        _forget_prefetched(observation)
        yield record


def _forget_prefetched(observation: Observation) -> None:
    """Break the cycles prefetching makes (observation -> its photos -> photo.observation), so a
    finished chunk is freed at once by reference counting, not whenever the garbage collector
    next runs: that would let several chunks pile up, and memory grow with the export."""
    observation._prefetched_objects_cache = {}
    observation.export_photos = observation.confirming_reviews = ()


def export_record(observation: Observation, *, positions: str = PUBLIC) -> ExportRecord:
    """A sighting from `confirmed_records` as a row, with `public` or `exact` positions."""
    if positions == EXACT:
        latitude, longitude = observation.latitude, observation.longitude
        uncertainty, generalised = observation.accuracy_m, False
    else:
        shown = position_for(observation, Viewer())
        latitude, longitude = shown.latitude, shown.longitude
        uncertainty, generalised = shown.accuracy_m, shown.generalised
    park, taxon = observation.park, observation.final_taxon
    ai_taxon, ai_probability, ai_model = _ai_suggestion(observation)
    curator = _confirmed_by(observation)
    return ExportRecord(
        uuid=str(observation.uuid),
        occurrence_id=occurrence_id(observation),
        url=absolute_url(observation.get_absolute_url()),
        event_date=event_date(observation),
        latitude=latitude,
        longitude=longitude,
        uncertainty_m=uncertainty,
        generalised=generalised,
        position_source=observation.position_source,
        park_name=park.name if park else "",
        park_slug=park.slug if park else "",
        country_code=park.country_code.upper() if park else "",
        campaign_slug=observation.campaign.slug,
        scientific_name=taxon.scientific_name,
        authorship=taxon.authorship,
        taxon_rank=taxon.rank,
        common_name=taxon.common_name,
        kingdom=taxon.kingdom,
        family=taxon.family,
        gbif_key=taxon.gbif_key,
        is_invasive=taxon.is_invasive,
        recorded_by=observation.observer_credit.strip(),
        identified_by=(curator.get_full_name().strip() or curator.get_username())
        if curator
        else "",
        date_identified=_iso(observation.decided_at, UTC),
        ai_taxon=ai_taxon,
        ai_probability=ai_probability,
        ai_model=ai_model,
        licence=observation.licence,
        licence_url=licence_url(observation.licence),
        rights_holder=rights_holder(observation),
        control_status=observation.control_status,
        modified=_iso(observation.updated_at, UTC),
        photos=tuple(
            ExportPhoto(id=photo.pk, position=photo.position, url=photo_url(photo.image_name))
            for photo in observation.export_photos
            if photo.image_name
        ),
    )


def confirmed_photos(filters: ExportFilters) -> QuerySet[Photo]:
    """The photos of `confirmed_sightings`, sighting by sighting, with what a media row needs."""
    return (
        Photo.objects.filter(observation__in=confirmed_sightings(filters).values("pk"))
        .select_related("observation__park")
        .annotate(image_name=F("image"))
        .only(
            "position",
            "observation__uuid",
            "observation__observed_at",
            "observation__observer_credit",
            "observation__licence",
            "observation__park__timezone",
        )
        .order_by("observation_id", "position")
    )


@dataclass(frozen=True, slots=True)
class ExportMedia:
    """One public photo of a confirmed sighting (a row of the Multimedia extension)."""

    occurrence_id: str
    sighting_uuid: str
    sighting_url: str
    position: int
    url: str  # the public derivative (re-encoded, no EXIF), never the original
    created: str  # when the sighting was photographed, as its eventDate
    creator: str
    licence_url: str
    rights_holder: str


def export_media(filters: ExportFilters, *, chunk_size: int | None = None) -> Iterator[ExportMedia]:
    """The photos of an export's sightings, read `chunk_size` at a time."""
    chunk_size = chunk_size or settings.EXPORT_CHUNK_SIZE
    for photo in confirmed_photos(filters).iterator(chunk_size=chunk_size):
        if not photo.image_name:
            continue
        observation = photo.observation
        yield ExportMedia(
            occurrence_id=occurrence_id(observation),
            sighting_uuid=str(observation.uuid),
            sighting_url=absolute_url(observation.get_absolute_url()),
            position=photo.position,
            url=photo_url(photo.image_name),
            created=event_date(observation),
            creator=observation.observer_credit.strip(),
            licence_url=licence_url(observation.licence),
            rights_holder=rights_holder(observation),
        )


def occurrence_id(observation: Observation) -> str:
    """A stable URN: the sighting's public UUID never changes."""
    return f"urn:uuid:{observation.uuid}"


def event_date(observation: Observation) -> str:
    """When it was seen: ISO 8601 with the offset of its park's time zone (UTC outside parks)."""
    park = observation.park
    return _iso(observation.observed_at, _zone(park.timezone if park else ""))


def rights_holder(observation: Observation) -> str:
    """The observer as credited; the dataset's default holder for uncredited sightings."""
    return observation.observer_credit.strip() or settings.DWCA_RIGHTS_HOLDER


def photo_url(name: str) -> str:
    """The public derivative's absolute URL, from its file name.

    Read from the name rather than through `photo.image`, whose file object points back at the
    photo: that cycle would keep each chunk alive until the garbage collector runs.
    """
    storage = _public_photos()
    if getattr(storage, "querystring_auth", False):
        # A signed URL expires within hours; the site's media address redirects to a fresh one.
        return absolute_url(f"{settings.MEDIA_URL}{filepath_to_uri(name)}")
    return absolute_url(storage.url(name))


def _public_photos():
    return Photo._meta.get_field("image").storage


def absolute_url(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else f"{settings.SITE_URL}{url}"


def licence_url(code: str) -> str:
    return LICENCE_URLS.get(code, code)


def _confirmed_by(observation: Observation):
    """`selectors.confirmed_by`, read from the prefetched confirming reviews (no query)."""
    for review in getattr(observation, "confirming_reviews", ()):
        if review.taxon_id == observation.final_taxon_id:
            return review.curator
    return None


def _ai_suggestion(observation: Observation) -> tuple[str, float | None, str]:
    """(taxon or raw label, probability, model version label) of the AI's top-1."""
    rows = ai_predictions(observation)
    if rows:
        top = rows[0]
        name = top.taxon.scientific_name if top.taxon is not None else top.label
        return name, top.probability, top.version.label
    if observation.ai_taxon is not None or observation.ai_label:
        name = (
            observation.ai_taxon.scientific_name if observation.ai_taxon else observation.ai_label
        )
        return name, observation.ai_score, ""
    return "", None, ""


@lru_cache(maxsize=64)
def _zone(name: str):
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _iso(moment: datetime | None, zone) -> str:
    if moment is None:
        return ""
    return moment.astimezone(zone).isoformat(timespec="seconds")
