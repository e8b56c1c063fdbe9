"""Confirmed records as CSV (RFC 4180, UTF-8, header row), streamed in chunks of bytes.

The columns are documented in README.md ("Exports"); keep the two in step.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator

from observations.exports.records import (
    VERIFICATION_STATUS,
    ExportFilters,
    ExportRecord,
    export_records,
)

CONTENT_TYPE = "text/csv; charset=utf-8"
EXTENSION = "csv"
ROWS_PER_CHUNK = 200
# A spreadsheet runs a cell that starts with one of these as a formula; text that people typed
# (names) gets a leading apostrophe so it stays text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def _number(value: float | int | None) -> str:
    return "" if value is None else str(value)


def _flag(value: bool) -> str:
    return "true" if value else "false"


COLUMNS: tuple[tuple[str, Callable[[ExportRecord], str]], ...] = (
    ("occurrence_id", lambda r: r.occurrence_id),
    ("uuid", lambda r: r.uuid),
    ("url", lambda r: r.url),
    ("observed_at", lambda r: r.event_date),
    ("latitude", lambda r: _number(r.latitude)),
    ("longitude", lambda r: _number(r.longitude)),
    ("coordinate_uncertainty_m", lambda r: _number(r.uncertainty_m)),
    ("position_generalised", lambda r: _flag(r.generalised)),
    ("information_withheld", lambda r: r.information_withheld),
    ("position_source", lambda r: r.position_source),
    ("park", lambda r: r.park_name),
    ("park_slug", lambda r: r.park_slug),
    ("country_code", lambda r: r.country_code),
    ("campaign", lambda r: r.campaign_slug),
    ("scientific_name", lambda r: r.scientific_name),
    ("authorship", lambda r: r.authorship),
    ("taxon_rank", lambda r: r.taxon_rank),
    ("common_name", lambda r: r.common_name),
    ("kingdom", lambda r: r.kingdom),
    ("family", lambda r: r.family),
    ("gbif_taxon_key", lambda r: _number(r.gbif_key)),
    ("is_invasive", lambda r: _flag(r.is_invasive)),
    ("recorded_by", lambda r: _text(r.recorded_by)),
    ("identified_by", lambda r: _text(r.identified_by)),
    ("date_identified", lambda r: r.date_identified),
    ("verification_status", lambda r: VERIFICATION_STATUS),
    ("ai_taxon", lambda r: r.ai_taxon),
    ("ai_probability", lambda r: _number(r.ai_probability)),
    ("ai_model", lambda r: _text(r.ai_model)),
    ("licence", lambda r: r.licence),
    ("licence_url", lambda r: r.licence_url),
    ("rights_holder", lambda r: _text(r.rights_holder)),
    ("control_status", lambda r: r.control_status),
    ("photo_urls", lambda r: " | ".join(photo.url for photo in r.photos)),
    ("modified", lambda r: r.modified),
)
HEADER = tuple(name for name, _ in COLUMNS)


def csv_chunks(filters: ExportFilters, *, chunk_size: int | None = None) -> Iterator[bytes]:
    """The CSV file, a few hundred rows per chunk; never the whole file in memory."""
    filters = filters.as_of_now()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for rows, record in enumerate(export_records(filters, chunk_size=chunk_size), start=1):
        writer.writerow([value(record) for _, value in COLUMNS])
        if rows % ROWS_PER_CHUNK == 0:
            yield _take(buffer)
    if tail := _take(buffer):
        yield tail


def _take(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data
