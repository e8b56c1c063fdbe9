"""A small demo classifier, so a fresh install runs the whole flow without real weights.

It is NOT trained on photos: a fixed random projection of colour statistics, sharpened so the
top 5 differ from photo to photo. Pages mark it "demo model, not trained on real photos".
"""

from __future__ import annotations

import os

import numpy as np

DEMO_INPUT_SIZE = 96


def build_demo_model(num_classes: int, *, size: int = DEMO_INPUT_SIZE, seed: int = 2026):
    """A Keras model over [-1, 1] inputs: pooled colour features -> dense softmax."""
    import keras

    rng = np.random.default_rng(seed)
    inputs = keras.Input((size, size, 3), name="image")
    coarse = keras.layers.AveragePooling2D(pool_size=size // 4, name="coarse_colour")(inputs)
    features = keras.layers.Flatten(name="features")(coarse)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="taxa")(features)
    model = keras.Model(inputs, outputs, name="parkwatch_demo")
    dense = model.get_layer("taxa")
    kernel = rng.normal(0, 2.5, size=dense.kernel.shape).astype("float32")
    bias = rng.normal(0, 0.5, size=dense.bias.shape).astype("float32")
    dense.set_weights([kernel, bias])
    return model


def write_demo_model(path: str | os.PathLike, num_classes: int) -> None:
    build_demo_model(num_classes).save(os.fspath(path))
