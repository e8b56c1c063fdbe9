"""Exports of confirmed records: CSV, GeoJSON and a Darwin Core Archive for GBIF.

Each format is a generator of byte chunks over the same rows (`records.py`), so the API's
streaming response and the `export_records` command write files of any size in flat memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

from observations.exports import csv, dwca, geojson
from observations.exports.records import ExportFilters, export_filters


@dataclass(frozen=True)
class ExportFormat:
    name: str
    content_type: str
    extension: str
    chunks: Callable[..., Iterator[bytes]]

    def filename(self, day: date) -> str:
        return f"parkwatch-{self.name}-{day.isoformat()}.{self.extension}"


FORMATS = {
    "csv": ExportFormat("csv", csv.CONTENT_TYPE, csv.EXTENSION, csv.csv_chunks),
    "geojson": ExportFormat(
        "geojson", geojson.CONTENT_TYPE, geojson.EXTENSION, geojson.geojson_chunks
    ),
    "dwca": ExportFormat("dwca", dwca.CONTENT_TYPE, dwca.EXTENSION, dwca.dwca_chunks),
}

__all__ = ["FORMATS", "ExportFilters", "ExportFormat", "export_filters"]
