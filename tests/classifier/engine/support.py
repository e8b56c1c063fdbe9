"""Helpers shared by the engine tests: tiny images and a DEEP-OC model folder writer."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

DEEPOC_SIZE = 32
DEEPOC_CLASSES = ["Ailanthus altissima", "Buddleja davidii", "Reynoutria japonica"]
DEEPOC_INFO = ["516 images in DB ", "40 images in DB ", "7 images in DB "]
DEEPOC_MEAN = [120.5, 115.25, 100.0]
DEEPOC_STD = [60.0, 58.5, 57.0]
DEEPOC_TIMESTAMP = "2019-02-18_112233"


def rgb_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def deepoc_conf(num_classes: int | None = len(DEEPOC_CLASSES)) -> dict:
    """A conf.json as image-classification-tf writes it (every group, resolved values)."""
    return {
        "augmentation": {
            "train_mode": {"blur": 0.3, "crop": 1.0, "h_flip": 0.5, "rot": 0.7, "zoom": 0.2},
            "val_mode": {"blur": 0.1, "crop": 0.9, "h_flip": 0.5, "rot": 0.5, "zoom": 0.1},
        },
        "dataset": {"mean_RGB": DEEPOC_MEAN, "std_RGB": DEEPOC_STD},
        "general": {"base_directory": ".", "images_directory": "data/images"},
        "model": {
            "image_size": DEEPOC_SIZE,
            "modelname": "Xception",
            "num_classes": num_classes,
            "preprocess_mode": "tf",
        },
        "monitor": {"use_remote": False, "use_tensorboard": True},
        "testing": {"ckpt_name": "final_model.h5", "timestamp": None},
        "training": {"batch_size": 16, "epochs": 2, "initial_lr": 0.001, "l2_reg": 0.0001},
    }


def write_deepoc_model(root: Path, h5: Path, *, conf: dict | None = None) -> Path:
    (root / "ckpts").mkdir(parents=True)
    shutil.copyfile(h5, root / "ckpts" / "final_model.h5")
    (root / "conf").mkdir()
    (root / "conf" / "conf.json").write_text(
        json.dumps(conf or deepoc_conf(), sort_keys=True, indent=4)
    )
    (root / "conf" / "conf.txt").write_text("group  key  value\n")
    files = root / "dataset_files"
    files.mkdir()
    (files / "classes.txt").write_text("".join(f"{c}\n" for c in DEEPOC_CLASSES))
    (files / "info.txt").write_text("".join(f"{i}\n" for i in DEEPOC_INFO))
    (files / "train.txt").write_text("a/1.jpg 0\nb/2.jpg 1\nc/3.jpg 2\n")
    (root / "stats").mkdir()
    stats = {
        "epoch": [0, 1],
        "training time (s)": 12.5,
        "timestamp": DEEPOC_TIMESTAMP,
        "acc": [0.5, 0.75],
        "loss": [1.1, 0.6],
        "val_acc": [0.4, 0.7],
        "val_loss": [1.2, 0.8],
        "lr": [0.001, 0.001],
    }
    (root / "stats" / "stats.json").write_text(json.dumps(stats, sort_keys=True, indent=4))
    (root / "logs").mkdir()
    return root
