"""Keras models (.keras, and legacy .h5 from Keras 2 / tf.keras) served through a tf.function.

TensorFlow and Keras are imported inside functions only: importing this module is cheap and
safe before a Celery worker forks; the model is loaded in the child process.
"""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .base import Backend, BackendLoadError, OutputResolver, check_batch, check_output_kind

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
# What a loaded float32 model may be served in: float32 as saved, or mixed precision (16-bit
# compute, float32 weights and output layer). "auto" picks from the hardware at load time.
COMPUTE_DTYPES = ("float32", "mixed_float16", "mixed_bfloat16", "auto")


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


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16; Linux only)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_compute_dtype(compute_dtype: str) -> str:
    """"auto" -> mixed_float16 on a GPU, mixed_bfloat16 on a CPU with bfloat16 units, else
    float32; any other value of COMPUTE_DTYPES is returned as it is."""
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(
            f"unknown compute dtype {compute_dtype!r}; expected one of {', '.join(COMPUTE_DTYPES)}"
        )
    if compute_dtype != "auto":
        return compute_dtype
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def with_compute_dtype(model: Any, policy_name: str) -> Any:
    """A copy of a Keras 3 model whose layers compute in `policy_name` (a mixed policy), with
    the same weights; the output layer stays float32, so the softmax never saturates in 16 bits.

    Weights stay float32 (a mixed policy keeps variables in float32), so the copy predicts what
    the original does to within 16-bit rounding of the activations.
    """
    import keras

    output_layer = _output_layer(model)

    def clone(layer: Any) -> Any:
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        config = layer.get_config()
        if layer is not output_layer:
            config["dtype"] = policy_name
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except TypeError:  # Keras before 3.4: no `recursive`; nested models keep their policy
        copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


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

    def __init__(
        self,
        model: Any,
        *,
        output: str = "auto",
        loaded_with: str = "keras",
        compute_dtype: str = "float32",
    ) -> None:
        import tensorflow as tf

        check_output_kind(output)
        self.loaded_with = loaded_with
        self.compute_dtype = self._apply_compute_dtype_choice(model, compute_dtype, loaded_with)
        if self.compute_dtype.startswith("mixed_") and self._saved_policy(model) == "float32":
            model = with_compute_dtype(model, self.compute_dtype)
        self._model = model
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

    @staticmethod
    def _saved_policy(model: Any) -> str:
        """The policy most layers were saved with ("float32" for a plain model)."""
        names = [
            getattr(getattr(layer, "dtype_policy", None), "name", "float32")
            for layer in getattr(model, "layers", [])
            if type(layer).__name__ != "InputLayer"
        ]
        return max(set(names), key=names.count) if names else "float32"

    @classmethod
    def _apply_compute_dtype_choice(cls, model: Any, requested: str, loaded_with: str) -> str:
        """The compute dtype this model will actually be served in.

        A model saved with a mixed policy keeps it; a float32 model gets the requested one,
        except a legacy file that only tf_keras could load (served as saved, float32).
        """
        requested = resolve_compute_dtype(requested)
        saved = cls._saved_policy(model)
        if saved != "float32":
            return saved
        if requested != "float32" and loaded_with != "keras":
            warnings.warn(
                f"{requested} needs a model Keras 3 can load; this one ({loaded_with}) is "
                "served in float32",
                stacklevel=3,
            )
            return "float32"
        return requested

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        output: str = "auto",
        custom_objects: dict[str, Any] | None = None,
        safe_mode: bool = True,
        compute_dtype: str = "float32",
    ) -> KerasBackend:
        """Load a `.keras` file, or a legacy `.h5` (Keras 3 first, then tf_keras for Keras 2).

        `compute_dtype` serves a float32 model in mixed precision (see `with_compute_dtype`):
        "mixed_float16" on GPUs, "mixed_bfloat16" on CPUs with bfloat16 units, "auto" to
        choose from the hardware.
        """
        model, loaded_with = load_keras_model(
            path, custom_objects=custom_objects, safe_mode=safe_mode
        )
        return cls(model, output=output, loaded_with=loaded_with, compute_dtype=compute_dtype)

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
