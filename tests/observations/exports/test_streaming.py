"""Exports stream in flat memory: chunk by chunk, each chunk freed as soon as it is written.

The 2,000 / 20,000 record comparison is `bench/export_memory.py`; these tests keep the two
properties it rests on.
"""

from __future__ import annotations

import gc

import pytest

from observations.exports import FORMATS, ExportFilters, csv, dwca, geojson
from observations.models import Observation, Photo

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_the_file_leaves_in_many_chunks_as_records_are_read(fmt, confirmed, monkeypatch):
    monkeypatch.setattr(csv, "ROWS_PER_CHUNK", 1)
    monkeypatch.setattr(geojson, "FEATURES_PER_CHUNK", 1)
    monkeypatch.setattr(dwca, "LINES_PER_CHUNK", 1)
    for _ in range(4):
        confirmed()

    chunks = list(FORMATS[fmt].chunks(ExportFilters(), chunk_size=2))

    assert len(chunks) >= 4  # one per record at least: nothing waits for the whole file
    assert all(isinstance(chunk, bytes) and chunk for chunk in chunks)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_written_chunk_needs_no_garbage_collection_to_be_freed(fmt, confirmed, taxa):
    """Sightings caught in reference cycles would pile up between collections, and memory would
    grow with the export; freed by reference counting, they never do."""
    confirmed(photos=2)
    confirmed(taxon=taxa[3])
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in FORMATS[fmt].chunks(ExportFilters(), chunk_size=1):
            pass
        gc.collect()
        left_for_the_collector = [
            type(thing).__name__ for thing in gc.garbage if isinstance(thing, Observation | Photo)
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()

    assert left_for_the_collector == []
