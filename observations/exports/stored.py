"""Exports written to the private `models` storage (a bucket in production) instead of sent.

Each run writes `exports/<UTC time>-<format>.<ext>`; with `latest` it also replaces
`exports/latest-<format>.<ext>`, a name that stays the same so a GBIF IPT or a park's GIS can
harvest it. The file is first written chunk by chunk to a temporary file and then uploaded (in
parts, for a big file in S3): memory stays flat and the object appears whole or not at all.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.files import File

from observations.exports import FORMATS
from observations.exports.records import ExportFilters, confirmed_sightings
from observations.storage import named_storage

PREFIX = "exports"


@dataclass(frozen=True)
class StoredExport:
    name: str  # in the `models` storage
    latest_name: str | None
    records: int
    size: int

    def url(self, name: str | None = None) -> str | None:
        """A signed URL when the storage makes them (S3), else None: local files have a path."""
        storage = exports_storage()
        if not getattr(storage, "querystring_auth", False):
            return None
        return storage.url(name or self.name)

    def path(self) -> str | None:
        try:
            return exports_storage().path(self.name)
        except NotImplementedError:
            return None


def exports_storage():
    """Private: exports may hold exact positions (`positions=exact`)."""
    return named_storage("models")


def export_store(
    *,
    export_format: str,
    filters: ExportFilters | None = None,
    latest: bool = False,
    chunk_size: int | None = None,
    now: datetime | None = None,
) -> StoredExport:
    """Write one export file into storage; a Darwin Core Archive keeps only GBIF licences."""
    export = FORMATS[export_format]
    filters = filters or ExportFilters()
    if export.name == "dwca":
        filters = dataclasses.replace(filters, gbif_only=True)
    filters = filters.as_of_now()
    records = confirmed_sightings(filters).count()
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    storage = exports_storage()
    with tempfile.TemporaryFile() as spool:
        for chunk in export.chunks(filters, chunk_size=chunk_size):
            spool.write(chunk)
        size = spool.tell()
        spool.seek(0)
        name = storage.save(f"{PREFIX}/{stamp}-{export.name}.{export.extension}", File(spool))
        latest_name = None
        if latest:
            latest_name = f"{PREFIX}/latest-{export.name}.{export.extension}"
            # Replaced, not renamed aside: the storage would otherwise pick a new free name.
            storage.delete(latest_name)
            spool.seek(0)
            latest_name = storage.save(latest_name, File(spool))
    return StoredExport(name=name, latest_name=latest_name, records=records, size=size)
