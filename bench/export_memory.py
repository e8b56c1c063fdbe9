#!/usr/bin/env python
"""Peak memory of the exports (CSV, GeoJSON, Darwin Core Archive): flat in the record count.

Run from the checkout: `.venv/bin/python bench/export_memory.py`.

Everything happens in a temporary folder (PARKWATCH_VAR_DIR): a fresh SQLite database is
migrated, 2,000 confirmed sightings are bulk-created (each with a photo row, a confirming review
and the AI's top 5 from a registered classifier version; no image files: exports only write the
photos' URLs), every format is exported through the same generators the API and the command
stream, and the peak of Python's allocations (tracemalloc) is measured while the bytes are
consumed. Then 18,000 more make 20,000 and the exports run again. One sighting in ten is of a
sensitive taxon, so public positions are generalised along the way.

Target: the peak for 20,000 records is under 1.5 x the peak for 2,000 (a file built in memory
would be about 10 x). Exit status 1 when a format misses it.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5
FORMATS = ("csv", "geojson", "dwca")
# Environment variables the benchmark sets itself, so it never writes into the user's database,
# media, broker or bucket.
_FORCED_ENV = (
    "DATABASE_URL",
    "MEDIA_ROOT",
    "PRIVATE_MEDIA_ROOT",
    "MODELS_ROOT",
    "MODEL_CACHE_DIR",
    "STATIC_ROOT",
    "AWS_STORAGE_BUCKET_NAME",
    "REDIS_URL",
    "CELERY_BROKER_URL",
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--small", type=int, default=2_000, help="records of the first run")
    parser.add_argument("--large", type=int, default=20_000, help="records of the second run")
    parser.add_argument("--chunk-size", type=int, default=None, help="EXPORT_CHUNK_SIZE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if not 0 < args.small < args.large:
        parser.error("--small must be positive and below --large")
    return args


def prepare_environment(var_dir: Path, chunk_size: int | None) -> None:
    os.environ["PARKWATCH_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
    for name in _FORCED_ENV:
        os.environ.pop(name, None)
        os.environ.pop(f"{name}_FILE", None)
    os.environ["CELERY_BROKER_URL"] = "memory://localhost/"
    os.environ["DEBUG"] = "false"  # DEBUG would record every SQL query
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if chunk_size:
        os.environ["EXPORT_CHUNK_SIZE"] = str(chunk_size)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def seed_world():
    """A park, a campaign with four taxa (one sensitive), a curator and a classifier version."""
    from django.contrib.auth import get_user_model

    from classifier.models import ClassifierVersion
    from observations.models import Campaign, Park, Taxon

    park = Park.objects.create(
        name="Ordesa y Monte Perdido",
        slug="ordesa",
        boundary={
            "type": "Polygon",
            "coordinates": [[[-0.15, 42.55], [0.05, 42.55], [0.05, 42.75], [-0.15, 42.75]]],
        },
        timezone="Europe/Madrid",
        country_code="ES",
    )
    campaign = Campaign.objects.create(name="Invasive plants", slug="invasives", is_default=True)
    campaign.parks.add(park)
    taxa = [
        Taxon.objects.create(
            scientific_name=name, family=family, is_invasive=invasive, is_sensitive=sensitive
        )
        for name, family, invasive, sensitive in (
            ("Buddleja davidii", "Scrophulariaceae", True, False),
            ("Reynoutria japonica", "Polygonaceae", True, False),
            ("Ailanthus altissima", "Simaroubaceae", True, False),
            ("Cypripedium calceolus", "Orchidaceae", False, True),
        )
    ]
    campaign.taxa.add(*taxa)
    curator = get_user_model().objects.create(
        username="curator", first_name="Lucía", last_name="Pérez"
    )
    version = ClassifierVersion.objects.create(
        name="Bench model",
        campaign=campaign,
        backend=ClassifierVersion.Backend.KERAS,
        input_size=299,
        preprocessing={},
        weights="classifiers/bench.keras",
        weights_sha256="0" * 64,
        state=ClassifierVersion.State.ACTIVE,
    )
    return park, campaign, taxa, curator, version


def add_records(world, start: int, count: int, batch: int = 2_000) -> None:
    """Bulk-create `count` confirmed sightings, each with a photo, a review and a top 5."""
    from classifier.models import Prediction
    from observations.models import Observation, Photo, Review

    park, campaign, taxa, curator, version = world
    base = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    for offset in range(start, start + count, batch):
        numbers = range(offset, min(offset + batch, start + count))
        observations = []
        for n in numbers:
            taxon = taxa[3] if n % 10 == 0 else taxa[n % 3]
            observations.append(
                Observation(
                    observer_credit=f"Visitor {n}" if n % 2 else "",
                    campaign=campaign,
                    park=park,
                    latitude=42.60 + (n % 997) * 0.0001,
                    longitude=-0.10 + (n % 991) * 0.0001,
                    accuracy_m=5 + n % 20,
                    position_source=Observation.PositionSource.EXIF,
                    observed_at=base + timedelta(minutes=n),
                    licence=Observation.Licence.values[n % 3],
                    status=Observation.Status.CONFIRMED,
                    ai_taxon=taxon,
                    ai_score=0.8,
                    final_taxon=taxon,
                    decided_at=base + timedelta(minutes=n, hours=2),
                )
            )
        Observation.objects.bulk_create(observations)
        # SQLite and PostgreSQL both return the new primary keys from bulk_create.
        photos, reviews, predictions = [], [], []
        for n, observation in zip(numbers, observations, strict=True):
            photos.append(
                Photo(
                    observation=observation,
                    position=0,
                    original=f"originals/2026/06/{n}.jpg",
                    image=f"photos/2026/06/{n}.jpg",
                    thumbnail=f"thumbnails/2026/06/{n}.jpg",
                    sha256=f"{n:064x}",
                    phash=f"{n:016x}",
                    phash_band0=n % 65536,
                    phash_band1=0,
                    phash_band2=0,
                    phash_band3=0,
                    width=4000,
                    height=3000,
                    format="JPEG",
                    size_bytes=3_000_000,
                )
            )
            reviews.append(
                Review(
                    observation=observation,
                    curator=curator,
                    decision=Review.Decision.CONFIRM,
                    taxon=observation.final_taxon,
                )
            )
            for rank, taxon in enumerate([observation.final_taxon, *taxa[:4]][:5], start=1):
                predictions.append(
                    Prediction(
                        observation=observation,
                        version=version,
                        rank=rank,
                        taxon=taxon,
                        label=taxon.scientific_name,
                        probability=round(0.8 / rank, 3),
                        tta="none",
                    )
                )
        Photo.objects.bulk_create(photos)
        Review.objects.bulk_create(reviews)
        Prediction.objects.bulk_create(predictions)


def measure(fmt: str) -> tuple[int, float, int]:
    """(peak bytes of Python allocations, seconds, bytes written) of one export."""
    from observations.exports import FORMATS as EXPORTS
    from observations.exports import ExportFilters

    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    written = 0
    for chunk in EXPORTS[fmt].chunks(ExportFilters()):
        written += len(chunk)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    return peak, seconds, written


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    var_dir = Path(tempfile.mkdtemp(prefix="parkwatch-bench-exports-"))
    prepare_environment(var_dir, args.chunk_size)
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        world = seed_world()
        add_records(world, 0, 20)
        for fmt in FORMATS:  # warm up: imports, URL resolver, first queries
            measure(fmt)
        from observations.models import Observation

        Observation.objects.all().delete()

        print(
            f"Export memory: peak of Python allocations (tracemalloc) while streaming, SQLite, "
            f"EXPORT_CHUNK_SIZE={settings.EXPORT_CHUNK_SIZE}"
        )
        print(f"{'format':<8} {'records':>8} {'peak MiB':>9} {'seconds':>8} {'file MiB':>9}")
        peaks: dict[tuple[str, int], int] = {}
        created = 0
        for size in (args.small, args.large):
            add_records(world, created, size - created)
            created = size
            for fmt in FORMATS:
                peak, seconds, written = measure(fmt)
                peaks[fmt, size] = peak
                print(
                    f"{fmt:<8} {size:>8,} {peak / 2**20:>9.2f} {seconds:>8.1f} "
                    f"{written / 2**20:>9.2f}"
                )
        print(
            f"\nratio of peaks, {args.large:,} / {args.small:,} records (target < {TARGET_RATIO}x)"
        )
        missed = False
        for fmt in FORMATS:
            ratio = peaks[fmt, args.large] / peaks[fmt, args.small]
            verdict = "PASS" if ratio < TARGET_RATIO else "FAIL"
            missed |= ratio >= TARGET_RATIO
            print(f"  {fmt:<8} {ratio:>5.2f}x  {verdict}")
        print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
        return 1 if missed else 0
    finally:
        if args.keep:
            print(f"kept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
