#!/usr/bin/env python
"""Inference throughput of ParkWatch's worker against raw forward and DEEPaaS-style serving.

Run from the checkout: `.venv/bin/python bench/inference.py` (or `make bench-inference`).

Everything happens in a temporary folder (PARKWATCH_VAR_DIR): a fresh SQLite database is
migrated and seeded, a full Xception (299 px, random weights, never ImageNet's) is saved as
`.keras`, registered and activated through the registry, real-size photographic-like JPEGs
with GPS EXIF are submitted as sightings through `observation_submit`, and the real task code
(`classify_pending`) classifies them. Only DATABASE_URL is taken from the environment (with a
warning: the benchmark then writes into that database).

Figures are throughputs measured in one run on a shared machine, so what matters is the
ratios, compared with the targets of the issue:

- worker pipeline >= 0.8 x raw forward (the same model and serving function, best batch);
- worker pipeline >= 5 x DEEPaaS-style serving with ten random crops (DEEP-OC's default);
- worker pipeline >= 2 x DEEPaaS-style serving of one image per request without crops.

Each measurement is repeated and the best run is kept. Model loading and tracing are excluded
(a running worker has done both), as in a warm worker.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

TARGET_RAW = 0.8
TARGET_TEN_CROP = 5.0
TARGET_SINGLE = 2.0
IMAGE_SIZE = 299
PHOTO_SIZE = (1600, 1200)
PHOTO_QUALITY = 92
CPU_SIZES = (8, 16, 32)
GPU_EXTRA_SIZES = (64, 128)

# Environment variables the benchmark sets itself, so that it never writes into the user's
# media, model storage, broker or S3 bucket, and no running worker takes its sightings.
_FORCED_ENV = (
    "MEDIA_ROOT",
    "PRIVATE_MEDIA_ROOT",
    "MODELS_ROOT",
    "MODEL_CACHE_DIR",
    "STATIC_ROOT",
    "AWS_STORAGE_BUCKET_NAME",
    "REDIS_URL",
    "CELERY_BROKER_URL",
)


# -- command line and environment -----------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--images",
        type=int,
        default=None,
        help="sightings (one photo each) for the raw forward, the pipeline and the no-crop "
        "baseline [default: 64; on a GPU, at least twice the largest batch]",
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help="raw forward batch sizes to try, comma-separated [default: 8,16,32; "
        "on a GPU also 64,128]",
    )
    parser.add_argument(
        "--ten-crop-images",
        type=int,
        default=16,
        help="images for the ten-crop baseline (ten forward views each, so it is slow)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each measurement; the best is kept"
    )
    parser.add_argument(
        "--baseline-repeats", type=int, default=2, help="runs of each DEEPaaS-style baseline"
    )
    parser.add_argument(
        "--profile-stages",
        action="store_true",
        help="print where the pipeline's time goes (always printed when it misses 0.8 of raw)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 8 images, batches 4,8, 2 ten-crop images, one repeat",
    )
    parser.add_argument(
        "--float32-only",
        action="store_true",
        help="serve float32 only (by default the hardware's mixed precision is tried too: "
        "float16 on a GPU, bfloat16 on a CPU with bfloat16 units)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (database, photos, model)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.images = args.images or 8
        args.sizes = args.sizes or "4,8"
        args.ten_crop_images = min(args.ten_crop_images, 2)
        args.repeats = 1
        args.baseline_repeats = 1
    try:
        args.sizes_list = (
            sorted({int(s) for s in args.sizes.split(",") if s.strip()}) if args.sizes else None
        )
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if args.sizes_list is not None and (not args.sizes_list or min(args.sizes_list) < 1):
        parser.error("--sizes must list positive batch sizes")
    for name in ("images", "ten_crop_images", "repeats", "baseline_repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def prepare_environment(var_dir: Path, max_batch: int) -> str | None:
    """Set the environment before Django is imported; returns DATABASE_URL if the user set one."""
    os.environ["PARKWATCH_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
    for name in _FORCED_ENV:
        os.environ.pop(name, None)
        os.environ.pop(f"{name}_FILE", None)
    # The sightings' publish on commit goes to an in-process broker: no worker outside this
    # process can take them, and no broker has to run.
    os.environ["CELERY_BROKER_URL"] = "memory://localhost/"
    os.environ["ALLOW_ANONYMOUS_UPLOADS"] = "true"
    os.environ["DEBUG"] = "false"  # DEBUG would record every SQL query
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # One forward pass per claimed batch, even when the best batch exceeds the default 32.
    os.environ.setdefault("CLASSIFIER_MAX_BATCH_SIZE", str(max_batch))
    database_url = os.environ.get("DATABASE_URL") or None
    if database_url is None and os.environ.get("DATABASE_URL_FILE"):
        database_url = "(from DATABASE_URL_FILE)"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return database_url


# -- small helpers ---------------------------------------------------------------------------


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null (native libraries write there, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@dataclass(frozen=True)
class Sample:
    """One timed run: wall seconds, and how many cores this process and all others used."""

    seconds: float
    cores: float  # this process's CPU time / wall time (all its threads)
    others: float  # CPU time of every other process on the machine / wall time (Linux only)


def _cpu_now() -> tuple[float, float, float | None]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    busy = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:9]]
        busy = (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    return time.perf_counter(), usage.ru_utime + usage.ru_stime, busy


def measure(fn: Callable[[], Any]) -> Sample:
    wall0, own0, busy0 = _cpu_now()
    fn()
    wall1, own1, busy1 = _cpu_now()
    wall, own = wall1 - wall0, own1 - own0
    others = math.nan
    if busy0 is not None and busy1 is not None:
        others = max(0.0, (busy1 - busy0 - own) / wall)
    return Sample(wall, own / wall, others)


def interleaved(plan: dict[str, tuple[int, Callable[[], Any]]]) -> dict[str, Sample]:
    """{key: (runs, fn)} -> the fastest run of each, run round-robin so that a burst of load
    from other processes hits every path alike rather than whichever ran at that moment."""
    samples: dict[str, list[Sample]] = {key: [] for key in plan}
    for round_ in range(max(runs for runs, _ in plan.values())):
        for key, (runs, fn) in plan.items():
            if round_ < runs:
                samples[key].append(measure(fn))
    return {key: min(found, key=lambda s: s.seconds) for key, found in samples.items()}


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Row:
    name: str
    images: int
    batch: str
    sample: Sample
    note: str = ""

    @property
    def seconds(self) -> float:
        return self.sample.seconds

    @property
    def per_second(self) -> float:
        return self.images / self.seconds

    @property
    def ms_per_image(self) -> float:
        return 1000 * self.seconds / self.images


def print_rows(rows: Sequence[Row], mark: Row | None = None) -> None:
    width = max(len(r.name) for r in rows)
    print(f"  {'path':<{width}}  images  batch   best s    img/s   ms/img  cores  others")
    for r in rows:
        star = " *" if r is mark else ""
        print(
            f"  {r.name:<{width}}  {r.images:>6}  {r.batch:>5}  {r.seconds:>7.2f}  "
            f"{r.per_second:>7.2f}  {r.ms_per_image:>7.1f}  {r.sample.cores:>5.2f}  "
            f"{r.sample.others:>6.2f}{star}{'  ' + r.note if r.note else ''}"
        )


# -- photos ----------------------------------------------------------------------------------


def photographic_image(seed: int, size: tuple[int, int] = PHOTO_SIZE):
    """A picture with photo-like statistics: smooth colour fields, shapes, texture and grain.

    JPEG decode time depends on how much detail there is to code, so flat colours would make
    decoding look far cheaper than for a real photo; these compress like one (~0.5 MB at
    1600x1200, quality 92).
    """
    from PIL import Image, ImageDraw, ImageFilter

    width, height = size
    rng = np.random.default_rng(seed)
    quarter = (width // 4, height // 4)
    field_ = np.zeros((quarter[1], quarter[0], 3), np.float32)
    for cells, amplitude in ((3, 80.0), (9, 50.0), (27, 35.0), (81, 25.0)):
        rows = max(2, round(cells * height / width))
        small = rng.normal(0.0, 1.0, (rows, cells, 3))
        small = (small - small.min()) / (np.ptp(small) + 1e-6) * 255
        up = Image.fromarray(small.astype(np.uint8)).resize(quarter, Image.Resampling.BICUBIC)
        field_ += (np.asarray(up, np.float32) / 255 - 0.5) * amplitude
    field_ += np.array([70, 110, 50], np.float32) + rng.normal(0, 25, 3).astype(np.float32)
    image = Image.fromarray(np.clip(field_, 0, 255).astype(np.uint8)).resize(
        size, Image.Resampling.BICUBIC
    )
    draw = ImageDraw.Draw(image)
    for _ in range(30):  # leaves, flowers, stones
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(15, 150))
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        draw.ellipse((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.0))
    # Mid-frequency texture (foliage) and sensor grain.
    texture = Image.fromarray(rng.integers(0, 256, (height // 2, width // 2), np.uint8)).resize(
        size, Image.Resampling.BILINEAR
    )
    pixels = np.asarray(image, np.int16)
    pixels = pixels + ((np.asarray(texture, np.int16) - 128) // 6)[..., None]
    pixels = pixels + rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def photo_jpeg(seed: int, taken_at: datetime) -> bytes:
    from tests.images import make_exif

    # Inside the demo park (Ordesa y Monte Perdido), a few hundred metres apart.
    latitude = 42.64 + (seed % 10) * 0.001
    longitude = -0.01 + (seed // 10 % 10) * 0.001
    exif = make_exif(
        gps=(latitude, longitude),
        altitude=1400 + seed % 200,
        accuracy=8,
        taken_at=taken_at,
        offset="+02:00",
    )
    buffer = io.BytesIO()
    photographic_image(seed).save(buffer, "JPEG", quality=PHOTO_QUALITY, exif=exif)
    return buffer.getvalue()


def submit_sightings(campaign, count: int, first_seed: int) -> tuple[list[int], list[int]]:
    """`count` sightings of one photo each through `observation_submit`; (ids, photo sizes)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from observations.services.submission import observation_submit

    ids, sizes = [], []
    start = datetime(2025, 6, 14, 9, 0)
    seeds = range(first_seed, first_seed + count)
    # Making the pictures is numpy and Pillow work that releases the GIL: threads help.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        jpegs = list(
            pool.map(lambda seed: photo_jpeg(seed, start + timedelta(minutes=seed)), seeds)
        )
    for seed, data in zip(seeds, jpegs, strict=True):
        upload = SimpleUploadedFile(f"IMG_{seed:04d}.jpg", data, content_type="image/jpeg")
        result = observation_submit(photos=[upload], campaign=campaign)
        ids.append(result.observation.pk)
        sizes.append(len(data))
    return ids, sizes


def public_derivatives(ids: Sequence[int]) -> list[bytes]:
    """The bytes the worker decodes for each sighting: its photo's public derivative."""
    from observations.models import Photo

    by_observation = {
        p.observation_id: p for p in Photo.objects.filter(observation_id__in=ids, position=0)
    }
    out = []
    for pk in ids:
        with by_observation[pk].image.open("rb") as handle:
            out.append(handle.read())
    return out


# -- the model -------------------------------------------------------------------------------


def build_xception(path: Path, num_classes: int) -> Path:
    """Full Xception with random weights (weights=None: nothing is downloaded), saved .keras."""
    import keras

    model = keras.applications.Xception(weights=None, classes=num_classes)
    model.save(path)
    del model
    keras.backend.clear_session()
    return path


def register(campaign, path: Path, labels: list[str], name: str, *, activate: bool):
    from classifier.engine.preprocessing import PreprocessSpec
    from classifier.models import ClassifierVersion
    from classifier.services.registry import version_activate, version_register

    version = version_register(
        name=name,
        campaign=campaign,
        backend=ClassifierVersion.Backend.KERAS,
        weights_path=path,
        labels=labels,
        spec=PreprocessSpec.xception(IMAGE_SIZE),
        architecture="Xception",
        description="Benchmark model: random weights, not a classifier.",
    )
    return version_activate(version=version, reason="benchmark") if activate else version


# -- measurements ----------------------------------------------------------------------------


def forward_all(predict: Callable[[np.ndarray], Any], x: np.ndarray, batch: int) -> None:
    for start in range(0, len(x), batch):
        predict(x[start : start + batch])


def reset_sightings(ids: Sequence[int]) -> None:
    """Put classified sightings back in the queue, as if just received (between repeats)."""
    from classifier.models import Prediction
    from observations.models import Observation

    Prediction.objects.filter(observation_id__in=ids).delete()
    Observation.objects.filter(pk__in=ids).update(
        status=Observation.Status.RECEIVED,
        status_detail="",
        ai_taxon=None,
        ai_label="",
        ai_score=None,
        ai_entropy=None,
        classified_at=None,
        classification_claimed_until=None,
        classification_attempts=0,
    )


def run_worker(ids: Sequence[int], batch: int) -> list[int]:
    """What inference workers do with these sightings: classify_pending until none is left.

    Each call is one Celery task `classify_observations(ids)` for the next `batch` sightings
    (the hinted ids); it claims, decodes, runs one forward pass and writes the results.
    """
    from classifier.services.inference import classify_pending

    classified: list[int] = []
    pending = list(ids)
    while True:
        outcome = classify_pending(hint_ids=pending[:batch], batch_size=batch)
        if outcome.failed or outcome.retry:
            raise RuntimeError(f"classification failed: {outcome.errors}")
        if not outcome.classified:
            break
        classified += outcome.classified
        done = set(outcome.classified)
        pending = [pk for pk in pending if pk not in done]
    return classified


def check_classified(ids: Sequence[int], classified: Sequence[int]) -> None:
    from classifier.models import Prediction
    from observations.models import Observation

    missing = set(ids) - set(classified)
    extra = set(classified) - set(ids)
    if missing:
        raise RuntimeError(f"{len(missing)} sighting(s) were not classified: {sorted(missing)}")
    if extra:
        print(f"  warning: the worker also classified {len(extra)} other waiting sighting(s)")
    done = Observation.objects.filter(pk__in=ids, status=Observation.Status.CLASSIFIED).count()
    rows = Prediction.objects.filter(observation_id__in=ids).count()
    if done != len(ids) or rows < len(ids) * 2:
        raise RuntimeError(f"expected {len(ids)} classified sightings, found {done} ({rows} rows)")


def deepaas_single(model, photos: Sequence[bytes]) -> None:
    """One request per image, as DEEPaaS serves image-classification-tf, without crops:
    full-size decode, the whole photo squashed to 299 px, `model.predict` on a batch of one."""
    from classifier.engine.preprocessing import PreprocessSpec, decode_image, preprocess

    spec = PreprocessSpec(image_size=IMAGE_SIZE, mode="xception", resize="squash")
    for data in photos:
        x = preprocess([decode_image(data)], spec)
        model.predict(x, verbose=0)


def deepaas_ten_crop(model, photos: Sequence[bytes], rng: np.random.Generator) -> None:
    """One request per image with DEEP-OC's test-time augmentation: ten random crops.

    As image-classification-tf's `k_crop_data_sequence` with its default `val_mode`: each crop
    is a random square of (0.9 - U(0, 0.1)) x the short side at a random place, mirrored with
    probability 0.5, squashed to 299 px; the ten views go through `model.predict` as one
    batch and their softmax outputs are averaged. (Rotation, blur and colour jitter, applied
    with probability 0.5 / 0.1, are left out: they only add preprocessing time.)
    """
    from PIL import Image

    from classifier.engine.preprocessing import PreprocessSpec, decode_image, normalize_pixels

    spec = PreprocessSpec.xception(IMAGE_SIZE)
    for data in photos:
        image = decode_image(data)
        width, height = image.size
        views = []
        for _ in range(10):
            side = (0.9 - rng.uniform(0, 0.1)) * min(width, height)
            left = rng.uniform(0, width - side)
            top = rng.uniform(0, height - side)
            view = image.resize(
                (IMAGE_SIZE, IMAGE_SIZE),
                Image.Resampling.BILINEAR,
                box=(left, top, left + side, top + side),
            )
            if rng.uniform() < 0.5:
                view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            views.append(np.asarray(view, np.uint8))
        probabilities = model.predict(normalize_pixels(np.stack(views), spec), verbose=0)
        probabilities.mean(axis=0)


# -- stage profile ---------------------------------------------------------------------------


@dataclass
class StageTimer:
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


@contextlib.contextmanager
def instrumented(classifier) -> Iterator[StageTimer]:
    """Time the stages inside the real task code by wrapping (not replacing) what it calls."""
    import classifier.engine.inference as engine_inference
    import classifier.services.inference as service

    timer = StageTimer()
    saved = {
        (service, "observations_claim"): service.observations_claim,
        (service, "_write"): service._write,
        (engine_inference, "preprocess"): engine_inference.preprocess,
    }
    service.observations_claim = timer.wrap("claim", service.observations_claim)
    service._write = timer.wrap("write", service._write)
    engine_inference.preprocess = timer.wrap("preprocess", engine_inference.preprocess)
    classifier.decode = timer.wrap("decode", classifier.decode)
    classifier.backend.predict = timer.wrap("forward", classifier.backend.predict)
    try:
        yield timer
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)
        del classifier.decode
        del classifier.backend.predict


def profile_stages(classifier, model, ids, photos, batch, raw_row: Row, pipeline_row: Row, repeats):
    """Where the pipeline's time goes: inside the real task code, then stage by stage.

    `model` is the baseline's (float32) Keras model, for the parts of the single-image baseline.
    """
    from classifier.engine.preprocessing import PreprocessSpec, decode_image, preprocess

    n = len(ids)
    spec, backend = classifier.spec, classifier.backend
    groups = list(chunks(photos, batch))
    stage_runs: list[tuple[float, StageTimer]] = []

    def pipeline_instrumented() -> None:
        reset_sightings(ids)
        with instrumented(classifier) as timer:
            start = time.perf_counter()
            classified = run_worker(ids, batch)
            stage_runs.append((time.perf_counter() - start, timer))
        check_classified(ids, classified)

    def prepare(group: Sequence[bytes]) -> np.ndarray:
        return preprocess([classifier.decode(d) for d in group], spec)

    def decode_only() -> None:
        for data in photos:
            classifier.decode(data)

    def serial() -> None:
        for group in groups:
            backend.predict(prepare(group))

    def overlapped() -> None:
        # What _classify_group would do if it decoded the next batch in a thread while the
        # forward pass of this one runs.
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(prepare, groups[0])
            for following in [*groups[1:], None]:
                x = future.result()
                if following is not None:
                    future = pool.submit(prepare, following)
                backend.predict(x)

    xs = [prepare(g) for g in groups]
    # The single-image baseline's parts, on fewer images (each costs a batch-1 forward pass).
    few = photos[: min(16, n)]
    squash = PreprocessSpec(image_size=spec.image_size, mode=spec.mode, resize="squash")
    full_images = [decode_image(d) for d in few]
    singles = [preprocess([image], squash) for image in full_images]
    plan = {
        "pipeline": ("worker pipeline, instrumented", n, pipeline_instrumented),
        "decode": ("decode only", n, decode_only),
        "prepare": ("decode + preprocess", n, lambda: [prepare(g) for g in groups]),
        "forward": ("forward only (same batches)", n, lambda: [backend.predict(x) for x in xs]),
        "serial": ("decode + preprocess + forward, serial", n, serial),
        "overlap": ("same, decode overlapped in a thread", n, overlapped),
        "b_decode": (
            "baseline: full-size decode",
            len(few),
            lambda: [decode_image(d) for d in few],
        ),
        "b_squash": (
            "baseline: squash to 299 + normalise",
            len(few),
            lambda: [preprocess([image], squash) for image in full_images],
        ),
        "b_predict": (
            "baseline: model.predict, batch 1",
            len(few),
            lambda: [model.predict(x, verbose=0) for x in singles],
        ),
        "b_serve": (
            "KerasBackend.predict, batch 1 (for comparison)",
            len(few),
            lambda: [backend.predict(x) for x in singles],
        ),
    }
    best = interleaved({key: (repeats, fn) for key, (_, _, fn) in plan.items()})
    total, timer = min(stage_runs, key=lambda run: run[0])
    stages = [
        ("claim (lease UPDATE)", "claim"),
        ("JPEG decode (draft) + EXIF transpose", "decode"),
        ("preprocess (crop, resize, normalise)", "preprocess"),
        ("forward (KerasBackend.predict)", "forward"),
        ("DB writes (AI fields + 10 Prediction rows)", "write"),
    ]
    print()
    print(
        f"Pipeline stage breakdown: the fastest of {repeats} instrumented classify_pending "
        f"runs ({n} images, batch {batch})"
    )
    print(f"  {'stage':<44} {'s':>7} {'ms/img':>8} {'share':>6}")
    for label, key in stages:
        s = timer.seconds.get(key, 0.0)
        print(f"  {label:<44} {s:>7.2f} {1000 * s / n:>8.1f} {100 * s / total:>5.1f}%")
    other = total - sum(timer.seconds.values())
    print(
        f"  {'other (queries, file reads, bookkeeping)':<44} {other:>7.2f} "
        f"{1000 * other / n:>8.1f} {100 * other / total:>5.1f}%"
    )
    print(f"  {'total':<44} {total:>7.2f} {1000 * total / n:>8.1f}")
    forward = timer.seconds.get("forward", 0.0)
    overhead = (total - forward) / n
    print(
        f"  outside the forward pass: {1000 * overhead:.1f} ms/img, so with this run's forward "
        f"({1000 * forward / n:.1f} ms/img) the ceiling is {forward / total:.2f} of raw"
    )

    print()
    print(f"Same work outside the task, interleaved, best of {repeats} (batch {batch})")
    print(
        f"  {'path':<46} {'images':>6} {'s':>6} {'ms/img':>7} {'/raw':>5} {'cores':>5} "
        f"{'others':>6}"
    )
    for key, (label, images, _) in plan.items():
        sample = best[key]
        ratio = (images / sample.seconds) / raw_row.per_second
        print(
            f"  {label:<46} {images:>6} {sample.seconds:>6.2f} "
            f"{1000 * sample.seconds / images:>7.1f} {ratio:>5.2f} {sample.cores:>5.2f} "
            f"{sample.others:>6.2f}"
        )
    print(
        f"  (/raw: throughput against the raw forward of the comparison above, "
        f"{raw_row.ms_per_image:.1f} ms/img; worker pipeline there: "
        f"{pipeline_row.ms_per_image:.1f} ms/img)"
    )


# -- main ------------------------------------------------------------------------------------


def machine_description(tf, keras, gpus) -> list[str]:
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86)")
    intra = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    inter = tf.config.threading.get_inter_op_parallelism_threads() or "default"
    lines = [
        f"machine: {platform.system()} {platform.machine()}, {cores} CPU cores "
        f"({usable} usable), {model or 'unknown CPU'}; Python {platform.python_version()}",
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; oneDNN {onednn}; "
        f"intra-op threads {intra}, inter-op threads {inter}",
    ]
    if gpus:
        names = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        lines.append(f"GPU: {len(gpus)} x {', '.join(names)}")
    else:
        lines.append("GPU: none (CPU figures)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    # Ctrl-C and `kill` both unwind through the `finally` below, removing the temporary folder.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    var_dir = Path(tempfile.mkdtemp(prefix="parkwatch-bench-")).resolve()
    max_requested = max(args.sizes_list) if args.sizes_list else max(CPU_SIZES + GPU_EXTRA_SIZES)
    database_url = prepare_environment(var_dir, max_requested)
    try:
        return run(args, var_dir, database_url, started)
    finally:
        if args.keep:
            print(f"\nkept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)


def run(args: argparse.Namespace, var_dir: Path, database_url: str | None, started: float) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from classifier.services.inference import (
        classifier_for,
        classify_pending,
        configure_tensorflow_once,
    )
    from observations.services.demo import demo_seed

    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    print("ParkWatch inference benchmark (bench/inference.py)")
    if database_url:
        print(
            f"WARNING: DATABASE_URL is set: this benchmark migrates it and writes sightings, "
            f"a classifier version (activated for the demo campaign, retiring the active one) "
            f"and predictions into it ({connection.vendor}). Unset it to use a throwaway SQLite."
        )
    call_command("migrate", verbosity=0, interactive=False)
    seed = demo_seed(with_users=False)
    campaign = seed.campaign
    labels = list(
        campaign.taxa.order_by("scientific_name").values_list("scientific_name", flat=True)
    )

    # The worker's TensorFlow settings (threads, GPU memory growth), before the first op.
    # TensorFlow's C++ start-up chatter (oneDNN, CUDA stubs) goes to fd 2 before Python can
    # filter it: silenced for the import only.
    with native_stderr_silenced(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import keras
        import tensorflow as tf

        configure_tensorflow_once()
        gpus = tf.config.list_physical_devices("GPU")
    for warning in caught:
        if issubclass(warning.category, UserWarning) and "TensorFlow" in str(warning.message):
            print(f"warning: {warning.message}")
    sizes = args.sizes_list or (sorted(CPU_SIZES + GPU_EXTRA_SIZES) if gpus else list(CPU_SIZES))
    n_images = args.images or (max(64, 2 * max(sizes)) if gpus else 64)
    for line in machine_description(tf, keras, gpus):
        print(line)
    db = "temporary SQLite" if not database_url else f"DATABASE_URL ({connection.vendor})"
    print(f"database: {db}; files under {var_dir}")

    # -- model(s): registered and activated through the registry, loaded as a worker does.
    t = time.perf_counter()
    fp32_path = build_xception(var_dir / "xception-random.keras", len(labels))
    versions = {"float32": register(campaign, fp32_path, labels, "Bench Xception", activate=True)}
    # The hardware's mixed precision (CLASSIFIER_COMPUTE_DTYPE=auto: float16 on a GPU, bfloat16
    # on a CPU with bfloat16 units), served from the same float32 file as a worker would.
    from classifier.engine.backends.keras import resolve_compute_dtype

    mixed = "float32" if args.float32_only else resolve_compute_dtype("auto")
    if mixed != "float32":
        versions[mixed] = register(
            campaign, fp32_path, labels, f"Bench Xception ({mixed})", activate=False
        )
    build_s = time.perf_counter() - t
    classifiers, load_s = {}, {}
    for precision, version in versions.items():
        t = time.perf_counter()
        settings.CLASSIFIER_COMPUTE_DTYPE = precision  # what the worker's environment says
        classifiers[precision] = classifier_for(version)  # the worker's per-process cache
        load_s[precision] = time.perf_counter() - t
    settings.CLASSIFIER_COMPUTE_DTYPE = "float32"
    params = classifiers["float32"].backend.model.count_params()
    print(
        f"model: Xception, random weights, {IMAGE_SIZE} px, {len(labels)} classes, "
        f"{params / 1e6:.1f} M parameters, {fp32_path.stat().st_size / 2**20:.0f} MiB .keras; "
        f"built+saved {build_s:.0f} s, loaded {sum(load_s.values()):.1f} s (excluded)"
    )

    # -- photos, submitted as sightings (the Celery publish on commit goes to memory://).
    t = time.perf_counter()
    ids, original_sizes = submit_sightings(campaign, n_images, first_seed=0)
    photos = public_derivatives(ids)
    print(
        f"photos: {n_images} JPEG {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} q{PHOTO_QUALITY} with GPS EXIF, "
        f"mean {np.mean(original_sizes) / 1024:.0f} KB (public derivative the worker decodes: "
        f"mean {np.mean([len(p) for p in photos]) / 1024:.0f} KB); one per sighting through "
        f"observation_submit in {time.perf_counter() - t:.0f} s"
    )
    print(
        f"repeats: best of {args.repeats} (baselines: best of {args.baseline_repeats}); "
        f"model load and tracing excluded (warm worker)"
    )

    # -- raw forward: preprocessed tensors through KerasBackend.predict, batch sizes tried.
    reference = classifiers["float32"]
    x = np.concatenate([reference_input(reference, g) for g in chunks(photos, 16)])
    if len(x) < max(sizes):
        x = np.concatenate([x] * math.ceil(max(sizes) / len(x)))
    for clf in classifiers.values():
        for size in sizes:  # every shape the sweep uses, once (oneDNN builds its kernels)
            clf.backend.predict(x[:size])
            if len(x) % size:
                clf.backend.predict(x[: len(x) % size])
    sweep = interleaved(
        {
            # Two runs each to pick the batch; the comparison below measures it again.
            f"{precision}/{size}": (
                min(args.repeats, 2),
                lambda clf=clf, size=size: forward_all(clf.backend.predict, x, size),
            )
            for precision, clf in classifiers.items()
            for size in sizes
        }
    )
    raw_rows = {}
    for key, sample in sweep.items():
        precision, size = key.split("/")
        name = f"raw forward, {compute_policy(classifiers[precision])}"
        raw_rows[precision, int(size)] = Row(name, len(x), size, sample)
    best_key = min(raw_rows, key=lambda k: raw_rows[k].ms_per_image)
    print()
    print(f"Raw forward: KerasBackend.predict on preprocessed float32 tensors ({len(x)} images)")
    print_rows(list(raw_rows.values()), mark=raw_rows[best_key])
    precision, batch = best_key
    for other in classifiers:
        if other != "float32":
            # Mixed precision changes the probabilities by 16-bit rounding only: how much here.
            p32 = classifiers["float32"].backend.predict(x[:32])
            p16 = classifiers[other].backend.predict(x[:32])
            agree = np.mean(p32.argmax(axis=1) == p16.argmax(axis=1))
            print(
                f"  {other} against float32 on {len(p32)} images: max |dp| "
                f"{np.abs(p16 - p32).max():.2g}, top-1 agreement {agree:.0%} (random weights)"
            )
    if precision != "float32":
        probe = classifiers[precision].backend.predict(x[:batch])
        if np.isfinite(probe).all():
            from classifier.services.registry import version_activate

            version_activate(version=versions[precision], reason="benchmark: fastest")
        else:
            print("  mixed precision gives non-finite outputs with random weights: using float32")
            precision = "float32"
            batch = min(
                (k for k in raw_rows if k[0] == precision), key=lambda k: raw_rows[k].ms_per_image
            )[1]
    clf = classifiers[precision]
    pipeline_batch = min(batch, n_images)
    print(
        f"  best: batch {batch}, {compute_policy(clf)}; the worker claims {pipeline_batch} per task"
    )
    if pipeline_batch > settings.CLASSIFIER_MAX_BATCH_SIZE:
        print(
            f"  note: CLASSIFIER_MAX_BATCH_SIZE={settings.CLASSIFIER_MAX_BATCH_SIZE} splits each "
            f"task's forward pass into smaller batches than the raw forward's"
        )

    # -- worker pipeline: one warm-up batch on other sightings, as a running worker has done.
    warm_ids, _ = submit_sightings(campaign, pipeline_batch, first_seed=10_000)
    warm = classify_pending(hint_ids=warm_ids, batch_size=pipeline_batch)
    if sorted(warm.classified) != sorted(warm_ids):
        raise RuntimeError(f"the warm-up batch was not classified as expected: {warm}")

    def pipeline_timed() -> None:
        reset_sightings(ids)
        start = time.perf_counter()
        classified = run_worker(ids, pipeline_batch)
        pipeline_seconds.append(time.perf_counter() - start)
        check_classified(ids, classified)

    pipeline_seconds: list[float] = []

    # -- DEEPaaS-style baselines: one image per request through model.predict, with the
    # float32 model loaded plainly (as DEEP-OC does), whatever options the worker serves with.
    model = keras.saving.load_model(fp32_path, compile=False)
    ten_photos = photos[: args.ten_crop_images]
    deepaas_single(model, photos[:1])  # builds and traces model.predict's function (batch 1)
    deepaas_ten_crop(model, photos[:1], np.random.default_rng(1))  # and for batch 10
    rng = np.random.default_rng(0)

    # -- the comparison, interleaved round by round; the fastest run of each path is kept.
    before = _cpu_now()
    best = interleaved(
        {
            "raw": (args.repeats, lambda: forward_all(clf.backend.predict, x, batch)),
            "pipeline": (args.repeats, pipeline_timed),
            "single": (args.baseline_repeats, lambda: deepaas_single(model, photos)),
            "ten": (args.baseline_repeats, lambda: deepaas_ten_crop(model, ten_photos, rng)),
        }
    )
    after = _cpu_now()
    # The pipeline's clock starts after the reset of the sightings (a benchmark artefact).
    pipeline_sample = best["pipeline"]
    pipeline_sample = Sample(min(pipeline_seconds), pipeline_sample.cores, pipeline_sample.others)
    raw_row = Row(
        f"raw forward (KerasBackend.predict, {compute_policy(clf)})",
        len(x),
        str(batch),
        best["raw"],
    )
    pipeline_row = Row(
        "worker pipeline (classify_pending)", n_images, str(pipeline_batch), pipeline_sample
    )
    single_row = Row("DEEPaaS-style, 1 image/request, no crops", n_images, "1", best["single"])
    ten_row = Row(
        "DEEPaaS-style, 1 image/request, 10 random crops",
        len(ten_photos),
        "10",
        best["ten"],
        note="(fewer images: 10 views each)" if len(ten_photos) < n_images else "",
    )

    print()
    print(
        f"Results (interleaved: best of {args.repeats} for raw and pipeline, "
        f"{args.baseline_repeats} for the baselines)"
    )
    print_rows([raw_row, pipeline_row, single_row, ten_row])
    print(
        "  pipeline = claim + read public derivative + decode (DCT-scaled) + preprocess + forward"
        "\n             + AI fields and Prediction rows written, one task per batch;"
        "\n  baselines = full-size decode + preprocess + model.predict (float32 model), one image"
        " per request;"
        "\n  cores = CPU time of this process / wall time; others = the same for all other "
        "processes"
    )
    wall = after[0] - before[0]
    if before[2] is not None and after[2] is not None:
        others = max(0.0, (after[2] - before[2] - (after[1] - before[1])) / wall)
        cores = os.cpu_count() or 1
        print(
            f"  other processes used {others:.2f} of {cores} cores on average during the "
            f"comparison ({wall:.0f} s)"
        )
        if others > 0.25 * cores:
            print(
                "  CAUTION: the machine was busy; batched forward passes, which need every "
                "core, lose most to contention, so the ratios to the baselines are pessimistic"
            )

    ratios = [
        ("pipeline / raw forward", pipeline_row.per_second / raw_row.per_second, TARGET_RAW),
        (
            "pipeline / ten-crop baseline",
            pipeline_row.per_second / ten_row.per_second,
            TARGET_TEN_CROP,
        ),
        (
            "pipeline / single-image baseline",
            pipeline_row.per_second / single_row.per_second,
            TARGET_SINGLE,
        ),
    ]
    print()
    print("Ratios (throughput, same run)       target  measured")
    for label, value, target in ratios:
        verdict = "PASS" if value >= target else "FAIL"
        print(f"  {label:<33} >= {target:<4g} {value:>7.2f}  {verdict}")

    if args.profile_stages or ratios[0][1] < TARGET_RAW:
        if not args.profile_stages:
            print("\npipeline / raw forward is under target: profiling the stages")
        profile_stages(
            clf, model, ids, photos, pipeline_batch, raw_row, pipeline_row, min(args.repeats, 2)
        )

    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0


def compute_policy(classifier) -> str:
    """The dtype policy most of the served model's layers compute in (float32, mixed_...)."""
    policies = Counter(
        getattr(getattr(layer, "dtype_policy", None), "name", "float32")
        for layer in classifier.backend.model.layers
    )
    return policies.most_common(1)[0][0] if policies else "float32"


def reference_input(classifier, group: Sequence[bytes]) -> np.ndarray:
    """The network input the worker builds for these photos (decode + preprocess)."""
    from classifier.engine.preprocessing import preprocess

    return preprocess([classifier.decode(d) for d in group], classifier.spec, classifier.tta)


if __name__ == "__main__":
    sys.exit(main())
