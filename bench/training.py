#!/usr/bin/env python
"""Training throughput: an Xception fine-tuning step against the tf.data input pipeline.

Run from the checkout: `.venv/bin/python bench/training.py` (`--quick` for a smoke run).

Photographic-like JPEGs (1200x900, quality 90) are written to a temporary folder and read
through `classifier.engine.training.make_dataset` with the default training augmentation, as a
run does. Measured, after warm-up (tracing excluded, as in a long run):

- input pipeline alone: images per second out of the dataset, nothing training;
- training step: `train_on_batch` on a batch already in memory, Xception at 299 px with random
  weights (never ImageNet's), compiled as `train` compiles it (two-rate Adam);
- end to end: `model.fit` on the dataset, the pipeline and the steps sharing the machine.

Target: the input pipeline must not be the bottleneck: it delivers at least 3 times the
training step's images per second. Figures come from one run on a possibly shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 3.0
PHOTO_SIZE = (1200, 900)
PHOTO_QUALITY = 90


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--batch-size", type=int, default=8, help="photos per training step")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps")
    parser.add_argument("--photos", type=int, default=48, help="distinct JPEGs written")
    parser.add_argument(
        "--pipeline-batches", type=int, default=12, help="timed batches of the pipeline alone"
    )
    parser.add_argument("--image-size", type=int, default=299, help="network input side")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 16 photos, 2 steps, 4 pipeline batches"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.photos, args.steps, args.pipeline_batches = 16, 2, 4
    return args


def photographic_jpeg(path: Path, seed: int, size: tuple[int, int] = PHOTO_SIZE) -> None:
    """Smooth colour fields, shapes, foliage-like texture and grain: decoding costs about what
    a real photo costs (flat colours would make JPEG decoding look far cheaper)."""
    from PIL import Image, ImageDraw, ImageFilter

    width, height = size
    rng = np.random.default_rng(seed)
    field = np.zeros((height // 4, width // 4, 3), np.float32)
    for cells, amplitude in ((3, 80.0), (9, 50.0), (27, 35.0)):
        rows = max(2, round(cells * height / width))
        small = rng.normal(0.0, 1.0, (rows, cells, 3))
        small = (small - small.min()) / (np.ptp(small) + 1e-6) * 255
        up = Image.fromarray(small.astype(np.uint8)).resize(
            (width // 4, height // 4), Image.Resampling.BICUBIC
        )
        field += (np.asarray(up, np.float32) / 255 - 0.5) * amplitude
    field += np.array([70, 110, 50], np.float32)
    image = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).resize(
        size, Image.Resampling.BICUBIC
    )
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x, y, r = (
            int(rng.integers(0, width)),
            int(rng.integers(0, height)),
            int(rng.integers(15, 120)),
        )
        draw.ellipse(
            (x - r, y - r // 2, x + r, y + r // 2),
            fill=tuple(int(c) for c in rng.integers(20, 235, 3)),
        )
    image = image.filter(ImageFilter.GaussianBlur(1.0))
    texture = Image.fromarray(rng.integers(0, 256, (height // 2, width // 2), np.uint8)).resize(
        size, Image.Resampling.BILINEAR
    )
    pixels = np.asarray(image, np.int16) + ((np.asarray(texture, np.int16) - 128) // 6)[..., None]
    pixels = pixels + rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        path, "JPEG", quality=PHOTO_QUALITY
    )


def machine_description(tf, keras) -> list[str]:
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
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 1024**2:.0f} GiB RAM"
                break
    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return [
        f"machine: {platform.system()} {platform.machine()}, {cores} CPU cores ({usable} usable), "
        f"{model or 'unknown CPU'}{memory}; Python {platform.python_version()}",
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; oneDNN "
        f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default (on for x86)')}",
        f"GPU: {len(gpus)} x {', '.join(names)}" if gpus else "GPU: none (CPU figures)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="parkwatch-bench-training-"))
    try:
        return run(args, folder, started)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, folder: Path, started: float) -> int:
    import keras
    import tensorflow as tf

    from classifier.engine.training import TrainingConfig, build_model, compile_model, make_dataset

    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    print("ParkWatch training benchmark (bench/training.py)")
    for line in machine_description(tf, keras):
        print(line)

    paths = []
    for i in range(args.photos):
        path = folder / f"photo-{i:03d}.jpg"
        photographic_jpeg(path, seed=i)
        paths.append(path)
    mean_kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024
    print(
        f"photos: {len(paths)} JPEG {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} q{PHOTO_QUALITY} "
        f"({mean_kb:.0f} KB each); batch {args.batch_size}; input {args.image_size} px"
    )

    config = TrainingConfig(
        architecture="xception",
        image_size=args.image_size,
        batch_size=args.batch_size,
        weights=None,
    )
    spec = config.preprocess_spec()
    samples = [(str(p), i % 10) for i, p in enumerate(paths)]
    dataset = make_dataset(
        samples,
        spec,
        batch_size=args.batch_size,
        training=True,
        augmentation=config.augmentation,
        seed=0,
    ).repeat()
    print(f"augmentation: {config.augmentation}")

    # -- input pipeline alone ----------------------------------------------------------------
    iterator = iter(dataset)
    for _ in range(2):  # warm-up: graph building, thread pools, AUTOTUNE's first guesses
        next(iterator)
    best_pipeline = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        for _ in range(args.pipeline_batches):
            x, _ = next(iterator)
        _ = x.numpy()
        rate = args.pipeline_batches * args.batch_size / (time.perf_counter() - t0)
        best_pipeline = max(best_pipeline, rate)
    del iterator

    # -- training step on an in-memory batch ------------------------------------------------
    # As `train` builds and compiles it (mixed precision on a GPU), from random weights.
    model = build_model(config, 10)
    compile_model(model, config, pretrained=True)
    precision = (
        "mixed_float16"
        if any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers)
        else "float32"
    )
    x, y = next(iter(dataset))
    t0 = time.perf_counter()
    model.train_on_batch(x, y)
    trace_s = time.perf_counter() - t0
    model.train_on_batch(x, y)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        logs = model.train_on_batch(x, y, return_dict=True)
    step_s = (time.perf_counter() - t0) / args.steps
    step_rate = args.batch_size / step_s

    # -- end to end: fit on the dataset -----------------------------------------------------
    model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)  # warm fit's own machinery
    t0 = time.perf_counter()
    model.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0)
    fit_rate = args.steps * args.batch_size / (time.perf_counter() - t0)

    ratio = best_pipeline / step_rate
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    parameters = model.count_params()
    print()
    print(
        f"model: Xception backbone + head, {parameters / 1e6:.1f} M parameters, random weights, "
        f"{precision}; first step (tracing) "
        f"{trace_s:.1f} s; loss after the timed steps {float(logs['loss']):.3f}"
    )
    print(f"  {'measurement':<52} {'img/s':>8} {'ms/img':>8}")
    for label, rate in (
        ("input pipeline alone (decode, augment, normalise)", best_pipeline),
        ("training step (train_on_batch, batch in memory)", step_rate),
        ("end to end (fit on the dataset)", fit_rate),
    ):
        print(f"  {label:<52} {rate:>8.1f} {1000 / rate:>8.1f}")
    print()
    print(
        f"input pipeline / training step = {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x): {verdict}"
    )
    print(
        f"end to end / training step = {fit_rate / step_rate:.2f} (1.0: the pipeline costs the "
        "steps nothing; below, it competes with them for the cores)"
    )
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
