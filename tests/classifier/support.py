"""Tiny classifiers registered through the real registry, for tests of the Django side."""

from __future__ import annotations

from pathlib import Path

from classifier.engine.preprocessing import PreprocessSpec
from classifier.models import ClassifierVersion
from classifier.services.registry import version_activate, version_register

TINY_SIZE = 32


def tiny_keras_file(path: Path, num_classes: int, *, seed: int = 0) -> Path:
    """A small Keras model whose output depends on the photo (mean colours of four quadrants)."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    inputs = keras.Input((TINY_SIZE, TINY_SIZE, 3))
    pooled = keras.layers.AveragePooling2D(TINY_SIZE // 2)(inputs)
    flat = keras.layers.Flatten()(pooled)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(flat)
    model = keras.Model(inputs, outputs)
    dense = model.layers[-1]
    dense.set_weights(
        [
            rng.normal(0, 3, dense.kernel.shape).astype("float32"),
            rng.normal(0, 0.3, dense.bias.shape).astype("float32"),
        ]
    )
    model.save(path)
    return path


def register_tiny_classifier(
    campaign, tmp_path: Path, *, activate: bool = True, seed: int = 0, tta: str = "none"
):
    labels = list(
        campaign.taxa.order_by("scientific_name").values_list("scientific_name", flat=True)
    )
    path = tiny_keras_file(tmp_path / f"tiny-{seed}.keras", len(labels), seed=seed)
    version = version_register(
        name=f"Tiny test model {seed}",
        campaign=campaign,
        backend=ClassifierVersion.Backend.KERAS,
        weights_path=path,
        labels=labels,
        spec=PreprocessSpec.xception(TINY_SIZE),
        tta=tta,
        architecture="tiny",
    )
    if activate:
        version = version_activate(version=version)
    return version
