"""Keras models (.keras, and legacy .h5 from Keras 2 / tf.keras) served through a tf.function.

TensorFlow and Keras are imported inside functions only: importing this module is cheap and
safe before a Celery worker forks; the model is loaded in the child process.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import numpy as np

from .base import Backend, BackendLoadError, OutputResolver, check_batch, check_output_kind

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _output_layer(model: Any) -> Any:
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) > 1:
        raise BackendLoadError(f"model has {len(outputs)} outputs; a classifier needs exactly one")
    if outputs:
        history = getattr(outputs[0], "_keras_history", None)
        # Keras 3 names the producing layer `operation`, tf.keras names it `layer`.
        layer = getattr(history, "operation", None) or getattr(history, "layer", None)
        if layer is not None:
            return layer
    layers = getattr(model, "layers", None)
    return layers[-1] if layers else None


def detect_output_kind(model: Any) -> str:
    """ "probabilities" or "logits" from the model's output layer, "auto" if it cannot tell.

    A `Softmax` layer or a layer whose activation is softmax gives probabilities; a layer with
    a linear activation (Dense without activation) gives logits. Anything else (sigmoid, custom
    layers) is left to the run-time check on the first outputs.
    """
    layer = _output_layer(model)
    for _ in range(8):  # a nested model as the last layer: look at its own output layer
        if layer is None or not hasattr(layer, "layers") or not getattr(layer, "outputs", None):
            break
        layer = _output_layer(layer)
    if layer is None:
        return "auto"
    if type(layer).__name__ == "Softmax":
        return "probabilities"
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    if name is None and isinstance(activation, str):
        name = activation
    if name == "softmax":
        return "probabilities"
    if name == "linear":
        return "logits"
    return "auto"


def _input_hw(model: Any) -> tuple[int | None, int | None, int]:
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise BackendLoadError(f"model has {len(inputs)} inputs; a classifier needs exactly one")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4:
        raise BackendLoadError(f"model input must be (N, H, W, C), got {shape}")
    channels = shape[3]
    if channels not in (3, None):
        raise BackendLoadError(f"model input must have 3 channels (NHWC), got shape {shape}")
    h, w = shape[1], shape[2]
    return (int(h) if h is not None else None, int(w) if w is not None else None, 3)


def _load_keras3(path: Path, custom_objects: dict[str, Any] | None, safe_mode: bool) -> Any:
    import keras

    return keras.saving.load_model(
        path, custom_objects=custom_objects, compile=False, safe_mode=safe_mode
    )


def _load_tf_keras(path: Path, custom_objects: dict[str, Any] | None, safe_mode: bool) -> Any:
    import tf_keras

    return tf_keras.models.load_model(path, custom_objects=custom_objects, compile=False)


def load_keras_model(
    path: str | os.PathLike[str],
    *,
    custom_objects: dict[str, Any] | None = None,
    safe_mode: bool = True,
) -> tuple[Any, str]:
    """(model, "keras" | "tf_keras"): a `.keras` file with Keras 3; a legacy `.h5` with Keras 3,
    or with tf_keras when Keras 3 cannot rebuild a Keras 2 model."""
    path = Path(path)
    if not path.is_file():
        raise BackendLoadError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in KERAS_SUFFIXES:
        raise BackendLoadError(
            f"{path.name}: expected a {', '.join(KERAS_SUFFIXES)} file for the keras backend"
        )
    loaders = [("keras", _load_keras3)]
    if suffix != ".keras":
        # Keras 3 reads most legacy HDF5 files; models saved by Keras 2 with layers or configs
        # it no longer understands still load with tf_keras (Keras 2 on TF 2.x).
        loaders.append(("tf_keras", _load_tf_keras))
    errors = []
    for name, loader in loaders:
        try:
            return loader(path, custom_objects, safe_mode), name
        except ImportError as exc:
            errors.append(f"{name}: not installed ({exc})")
        except Exception as exc:  # loaders raise many types; report them all below
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    raise BackendLoadError(f"could not load {path.name}: " + " | ".join(errors))


class KerasBackend(Backend):
    """A Keras classifier called as `model(x, training=False)` inside one traced tf.function.

    The tf.function has the input signature [None, H, W, 3], so batches of any size reuse one
    trace. Outputs are probabilities if the output layer is a softmax; logits (linear output
    layer) get a softmax here; see `detect_output_kind`. `output` overrides the detection.
    """

    kind = "keras"

    def __init__(self, model: Any, *, output: str = "auto", loaded_with: str = "keras") -> None:
        import tensorflow as tf

        check_output_kind(output)
        self._model = model
        self.loaded_with = loaded_with
        h, w, c = _input_hw(model)
        self._input_size = (h, w) if h is not None and w is not None else None
        out_shape = tuple(model.outputs[0].shape)
        if len(out_shape) != 2 or out_shape[1] is None:
            raise BackendLoadError(f"model output must be (N, classes), got {out_shape}")
        self._num_classes = int(out_shape[1])
        self.detected_output = detect_output_kind(model)
        self._resolver = OutputResolver(self.detected_output if output == "auto" else output)

        signature = [tf.TensorSpec(shape=[None, h, w, c], dtype=tf.float32, name="images")]

        def serve(x: Any) -> Any:
            # Inference mode (dropout off, batch-norm moving statistics); float32 out even
            # under a mixed-precision policy.
            return tf.cast(model(x, training=False), tf.float32)

        self._serve = tf.function(serve, input_signature=signature)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        output: str = "auto",
        custom_objects: dict[str, Any] | None = None,
        safe_mode: bool = True,
    ) -> KerasBackend:
        """Load a `.keras` file, or a legacy `.h5` (Keras 3 first, then tf_keras for Keras 2)."""
        model, loaded_with = load_keras_model(
            path, custom_objects=custom_objects, safe_mode=safe_mode
        )
        return cls(model, output=output, loaded_with=loaded_with)

    @property
    def model(self) -> Any:
        if self._model is None:
            raise RuntimeError("backend is closed")
        return self._model

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def input_size(self) -> tuple[int, int] | None:
        return self._input_size

    @property
    def output_kind(self) -> str:
        """ "probabilities", "logits", or "auto" until the first batch decides."""
        return self._resolver.output

    @property
    def tracing_count(self) -> int:
        """How many times the serving function was traced (1 after any number of batches)."""
        return int(self._serve.experimental_get_tracing_count())

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("backend is closed")
        x = check_batch(batch, self._input_size)
        if x.shape[0] == 0:
            return np.zeros((0, self._num_classes), dtype=np.float32)
        raw = self._serve(x).numpy()
        return self._resolver(raw)

    def close(self) -> None:
        self._model = None
        self._serve = None
        gc.collect()
