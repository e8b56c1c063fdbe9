"""Tiny models and images built in the tests; nothing is downloaded.

Model fixtures are session-scoped: TensorFlow is imported once and each model is built once.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from .support import DEEPOC_CLASSES, DEEPOC_SIZE, DEEPOC_TIMESTAMP, write_deepoc_model


@pytest.fixture(scope="session")
def keras_model():
    """Keras 3: 32x32x3 -> Conv2D -> GAP -> Dense(3, softmax)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    init = keras.initializers.RandomNormal(stddev=2.0, seed=1)
    outputs = keras.layers.Dense(3, activation="softmax", kernel_initializer=init)(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="session")
def keras_logits_model():
    """Keras 3 model whose last Dense has no activation (logits)."""
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(4, kernel_initializer=keras.initializers.RandomNormal(2.0))(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="session")
def keras_files(keras_model, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keras")
    files = {"keras": folder / "model.keras", "h5": folder / "model.h5"}
    keras_model.save(files["keras"])
    keras_model.save(files["h5"])
    return files


@pytest.fixture(scope="session")
def tf_keras_h5(tmp_path_factory) -> Path:
    """A Keras 2 model as image-classification-tf saves it: tf_keras, HDF5, no optimizer."""
    import tf_keras

    tf_keras.utils.set_random_seed(2)
    inputs = tf_keras.Input((DEEPOC_SIZE, DEEPOC_SIZE, 3))
    x = tf_keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    x = tf_keras.layers.Dense(8, activation="relu")(x)
    init = tf_keras.initializers.RandomNormal(stddev=2.0, seed=3)
    outputs = tf_keras.layers.Dense(
        len(DEEPOC_CLASSES), activation="softmax", kernel_initializer=init
    )(x)
    model = tf_keras.Model(inputs, outputs)
    path = tmp_path_factory.mktemp("tf_keras") / "final_model.h5"
    model.save(path, include_optimizer=False)
    return path


@pytest.fixture(scope="session")
def deepoc_models(tf_keras_h5, tmp_path_factory) -> dict[str, Path]:
    """The same DEEP-OC model as a folder, a .tar.gz and a .tar.xz (timestamped top folder)."""
    base = tmp_path_factory.mktemp("deepoc")
    folder = write_deepoc_model(base / DEEPOC_TIMESTAMP, tf_keras_h5)
    out = {"folder": folder}
    for key, mode in (("tar.gz", "w:gz"), ("tar.xz", "w:xz")):
        archive = base / f"invasoras.{key}"
        with tarfile.open(archive, mode) as tar:
            tar.add(folder, arcname=DEEPOC_TIMESTAMP)
        out[key] = archive
    return out


@pytest.fixture
def deepoc_copy(deepoc_models, tmp_path) -> Path:
    """A writable copy of the DEEP-OC model folder, for breaking it."""
    return Path(shutil.copytree(deepoc_models["folder"], tmp_path / DEEPOC_TIMESTAMP))
