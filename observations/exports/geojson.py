"""Confirmed records as GeoJSON (RFC 7946), streamed in chunks of bytes.

One FeatureCollection of Point features: coordinates are [longitude, latitude] in WGS 84, with no
`crs` member (RFC 7946 removed it); each feature's `id` is the sighting's UUID and its
properties are the CSV's columns (README.md), less the coordinates and the UUID (the geometry and
the `id` carry them), with JSON types (numbers, booleans, null, a list of photo URLs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from observations.exports.records import (
    VERIFICATION_STATUS,
    ExportFilters,
    ExportRecord,
    export_records,
)

CONTENT_TYPE = "application/geo+json"
EXTENSION = "geojson"
FEATURES_PER_CHUNK = 200


def feature(record: ExportRecord) -> dict:
    """One sighting as a Feature; properties named as the CSV's columns, typed for JSON."""
    properties = {
        "occurrence_id": record.occurrence_id,
        "url": record.url,
        "observed_at": record.event_date,
        "coordinate_uncertainty_m": record.uncertainty_m,
        "position_generalised": record.generalised,
        "information_withheld": record.information_withheld,
        "position_source": record.position_source,
        "park": record.park_name,
        "park_slug": record.park_slug,
        "country_code": record.country_code,
        "campaign": record.campaign_slug,
        "scientific_name": record.scientific_name,
        "authorship": record.authorship,
        "taxon_rank": record.taxon_rank,
        "common_name": record.common_name,
        "kingdom": record.kingdom,
        "family": record.family,
        "gbif_taxon_key": record.gbif_key,
        "is_invasive": record.is_invasive,
        "recorded_by": record.recorded_by,
        "identified_by": record.identified_by,
        "date_identified": record.date_identified,
        "verification_status": VERIFICATION_STATUS,
        "ai_taxon": record.ai_taxon,
        "ai_probability": record.ai_probability,
        "ai_model": record.ai_model,
        "licence": record.licence,
        "licence_url": record.licence_url,
        "rights_holder": record.rights_holder,
        "control_status": record.control_status,
        "photo_urls": [photo.url for photo in record.photos],
        "modified": record.modified,
    }
    return {
        "type": "Feature",
        "id": record.uuid,
        "geometry": {"type": "Point", "coordinates": [record.longitude, record.latitude]},
        "properties": properties,
    }


def geojson_chunks(filters: ExportFilters, *, chunk_size: int | None = None) -> Iterator[bytes]:
    """The FeatureCollection, a few hundred features per chunk; never the whole file in memory."""
    filters = filters.as_of_now()
    parts = ['{"type":"FeatureCollection","features":[']
    for count, record in enumerate(export_records(filters, chunk_size=chunk_size), start=1):
        text = json.dumps(feature(record), ensure_ascii=False, separators=(",", ":"))
        parts.append(("\n" if count == 1 else ",\n") + text)
        if count % FEATURES_PER_CHUNK == 0:
            yield "".join(parts).encode("utf-8")
            parts.clear()
    parts.append("\n]}\n")
    yield "".join(parts).encode("utf-8")
