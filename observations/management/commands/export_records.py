"""`python manage.py export_records --format csv|geojson|dwca --out FILE|--to-storage [filters]`.

The same files and filters as `GET /api/v1/exports/<format>/`, written while they are read from
the database (memory stays flat). The file appears whole or not at all: it is written next to
FILE under a temporary name and renamed at the end. `--out -` writes to standard output.
`--to-storage` writes it into the private `models` storage (the bucket in production) as
`exports/<UTC time>-<format>.<ext>` (and `exports/latest-<format>.<ext>` with `--latest`) and
prints its name and, where the storage signs URLs, a link valid for AWS_QUERYSTRING_EXPIRE.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from observations.errors import ParkWatchError
from observations.exports import FORMATS, export_filters
from observations.exports.records import POSITIONS, PUBLIC, confirmed_sightings
from observations.exports.stored import export_store


class Command(BaseCommand):
    help = "Export confirmed records as CSV, GeoJSON or a Darwin Core Archive (zip) for GBIF."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, choices=sorted(FORMATS))
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--out", help="File to write; - for standard output.")
        target.add_argument(
            "--to-storage",
            action="store_true",
            help="Write it into the private storage under exports/ (the bucket in production).",
        )
        parser.add_argument(
            "--latest",
            action="store_true",
            help="With --to-storage: also replace exports/latest-<format>.<ext> (a stable name).",
        )
        parser.add_argument("--campaign", default="", help="Campaign slug.")
        parser.add_argument("--park", default="", help="Park slug.")
        parser.add_argument("--taxon", default="", help="Taxon id or scientific name.")
        parser.add_argument("--since", default="", help="Observed on or after (YYYY-MM-DD).")
        parser.add_argument("--until", default="", help="Observed on or before (YYYY-MM-DD).")
        parser.add_argument(
            "--invasive-only", action="store_true", help="Only taxa marked invasive."
        )
        parser.add_argument(
            "--gbif-only",
            action="store_true",
            help="Only CC0, CC BY and CC BY-NC records (always so for dwca).",
        )
        parser.add_argument(
            "--positions",
            default=PUBLIC,
            choices=POSITIONS,
            help="public: sensitive taxa generalised (for files to share); exact: as stored.",
        )
        parser.add_argument("--chunk-size", type=int, default=None, help=argparse.SUPPRESS)

    def handle(self, *args, **options) -> None:
        export = FORMATS[options["format"]]
        try:
            filters = export_filters(
                {
                    name: options[name]
                    for name in (
                        "campaign",
                        "park",
                        "taxon",
                        "since",
                        "until",
                        "invasive_only",
                        "gbif_only",
                        "positions",
                    )
                }
            )
        except ParkWatchError as error:
            raise CommandError(
                f"--{(error.field or '').replace('_', '-')}: {error.detail}"
            ) from None
        if export.name == "dwca":
            filters = dataclasses.replace(filters, gbif_only=True)
        if options["latest"] and not options["to_storage"]:
            raise CommandError("--latest goes with --to-storage.")
        if options["to_storage"]:
            self._to_storage(export.name, filters, options)
            return
        filters = filters.as_of_now()
        count = confirmed_sightings(filters).count()
        chunks = export.chunks(filters, chunk_size=options["chunk_size"])
        out = options["out"]
        if out == "-":
            stream = sys.stdout.buffer
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
            return
        target = Path(out)
        if target.is_dir():
            raise CommandError(f"--out: {target} is a folder; give a file name.")
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                for chunk in chunks:
                    file.write(chunk)
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        self.stderr.write(f"Wrote {count} records to {target} ({export.name}).")

    def _to_storage(self, export_format: str, filters, options) -> None:
        stored = export_store(
            export_format=export_format,
            filters=filters,
            latest=options["latest"],
            chunk_size=options["chunk_size"],
        )
        names = [stored.name] + ([stored.latest_name] if stored.latest_name else [])
        for name in names:
            self.stdout.write(name)
            url = stored.url(name)
            if url:
                self.stdout.write(url)
        where = stored.path() or "storage"
        self.stderr.write(
            f"Wrote {stored.records} records to {where} ({export_format}, {stored.size} bytes)."
        )
