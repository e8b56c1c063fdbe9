"""Training a classifier version: configuration, model, tf.data input pipeline and the loop.

The contract with the Django side (a training task):

1. Validate the run's parameters with `TrainingConfig.from_dict(params)` (ValueError on bad
   input) and take the preprocessing spec from `config.preprocess_spec()`; store
   `spec.to_dict()` with the resulting version so serving uses exactly what training used.
   When `config.weights` is the active model's `.keras` file, pass that version's spec instead.
2. Build the splits as sequences of `(source, label)`: `source` is a local path (preferred),
   the encoded bytes, or a zero-argument callable returning either (called from tf.data worker
   threads: it must be thread-safe and must not touch the database); `label` is the class index
   0..num_classes-1 in the order of the version's label list.
3. Call `train(config, train_samples, val_samples, spec, workdir=..., num_classes=...,
   on_progress=..., should_stop=...)`. It returns a `TrainingResult`: `model_path` is a
   float32 `.keras` file with no optimizer state that `KerasBackend.load` serves, `history`
   the per-epoch curves (`plots.training_curves_png(history)`), `warnings` what the run page
   should show.
4. A worker killed mid-run resumes with `latest_checkpoint(workdir)` and
   `train(..., resume_from_checkpoint=checkpoint.path)`: it continues at the epoch after the
   last completed one, with the optimizer state, the early-stopping state and the history.

Preprocessing parity: `make_dataset` decodes with `decode_image(source,
target_size=spec.min_source_side())` and preprocesses with `preprocess_array` (evaluation) or
`image_views` + augmentation + `normalize_pixels` (training), the functions serving calls, so an
evaluation array is bit-for-bit the serving array of the same file.

TensorFlow and Keras are imported inside functions only: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
import warnings as _warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .preprocessing import (
    ImageSource,
    PreprocessSpec,
    decode_image,
    image_views,
    normalize_pixels,
    preprocess_array,
)

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_AUGMENTATION",
    "Checkpoint",
    "TrainingConfig",
    "TrainingError",
    "TrainingResult",
    "build_model",
    "compile_model",
    "compute_class_weights",
    "latest_checkpoint",
    "make_dataset",
    "train",
]

# A photo for training or evaluation: a path, encoded bytes, or a callable returning either.
SampleSource = ImageSource | Callable[[], ImageSource]
Sample = tuple[SampleSource, int]


@dataclass(frozen=True)
class _Architecture:
    min_size: int
    # The normalisation the backbone's ImageNet weights expect, as a PreprocessSpec mode.
    mode: str
    mean_rgb: tuple[float, float, float] | None
    # Keras' file name for the no-top ImageNet weights (looked up locally, never downloaded).
    weights_file: str | None


# keras.applications.imagenet_utils "caffe" mean, in RGB order.
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)

_ARCHITECTURES: dict[str, _Architecture] = {
    "xception": _Architecture(
        71, "xception", None, "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ),
    "mobilenet_v3_small": _Architecture(
        32, "xception", None, "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    ),
    # EfficientNet normalises inside the model (from [0, 255]); build_model adds a rescaling
    # from [-1, 1] so its spec is the same as Xception's.
    "efficientnet_b0": _Architecture(32, "xception", None, "efficientnetb0_notop.h5"),
    "resnet50": _Architecture(
        32, "caffe", IMAGENET_MEAN_RGB, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ),
    # A few convolutions, for tests and CPU-only parks with small datasets.
    "small_cnn": _Architecture(16, "xception", None, None),
}
ARCHITECTURES = tuple(_ARCHITECTURES)

# Probabilities (flips) and ranges of the training augmentation; see `make_dataset`.
DEFAULT_AUGMENTATION: dict[str, float] = {
    "h_flip": 0.5,  # probability of a horizontal mirror
    "v_flip": 0.0,  # probability of a vertical flip (plants have an up)
    "rotation": 20.0,  # maximum rotation, degrees either way
    "zoom": 0.2,  # maximum fraction of the view's side cropped away, at a random position
    "brightness": 0.1,  # maximum brightness shift, as a fraction of 255
    "contrast": 0.1,  # contrast factor within [1 - c, 1 + c]
    "saturation": 0.1,  # saturation factor within [1 - s, 1 + s]
}
_AUGMENTATION_LIMITS: dict[str, tuple[float, float]] = {
    "h_flip": (0.0, 1.0),
    "v_flip": (0.0, 1.0),
    "rotation": (0.0, 180.0),
    "zoom": (0.0, 0.5),
    "brightness": (0.0, 1.0),
    "contrast": (0.0, 1.0),
    "saturation": (0.0, 1.0),
}

CHECKPOINT_PATTERN = "checkpoint-epoch-{epoch:02d}.keras"
_CHECKPOINT_RE = re.compile(r"checkpoint-epoch-(\d+)\.keras$")
LATEST_FILE = "latest.json"
MODEL_FILE = "model.keras"
HEAD_DROPOUT = "head_dropout"
HEAD_CLASSES = "head_classes"


class TrainingError(Exception):
    """A run that cannot go on: an unreadable photo, a diverging loss, an unusable checkpoint."""


class _Cancelled(Exception):
    """Raised from the Keras callback when `should_stop()` answers True."""


# -- configuration -------------------------------------------------------------------------


def _check_number(name: str, value: Any, low: float, high: float, *, integer: bool = False):
    kind = "an integer" if integer else "a number"
    ok_type = int | np.integer if integer else int | float | np.integer | np.floating
    if isinstance(value, bool) or not isinstance(value, ok_type):
        raise ValueError(f"{name} must be {kind} between {low:g} and {high:g}, got {value!r}")
    if not (math.isfinite(float(value)) and low <= value <= high):
        raise ValueError(f"{name} must be {kind} between {low:g} and {high:g}, got {value!r}")
    return int(value) if integer else float(value)


def resolve_augmentation(augmentation: Mapping[str, Any] | None) -> dict[str, float] | None:
    """A complete, validated augmentation dict: missing keys take `DEFAULT_AUGMENTATION`'s
    values; None means no augmentation at all."""
    if augmentation is None:
        return None
    if not isinstance(augmentation, Mapping):
        raise ValueError(f"augmentation must be an object or null, got {augmentation!r}")
    unknown = sorted(set(augmentation) - set(DEFAULT_AUGMENTATION))
    if unknown:
        raise ValueError(
            f"unknown augmentation keys: {', '.join(map(str, unknown))} "
            f"(known: {', '.join(DEFAULT_AUGMENTATION)})"
        )
    out = dict(DEFAULT_AUGMENTATION)
    for key, value in augmentation.items():
        low, high = _AUGMENTATION_LIMITS[key]
        out[key] = _check_number(f"augmentation.{key}", value, low, high)
    return out


@dataclass
class TrainingConfig:
    """The parameters of a training run, JSON round-trippable with `to_dict`/`from_dict`.

    - `architecture`: one of `ARCHITECTURES`. The model's input is the tensor of
      `preprocess_spec()` (Xception, MobileNetV3, EfficientNet, small_cnn: [-1, 1];
      ResNet-50: Caffe BGR minus the ImageNet mean).
    - `learning_rate` is the head's (and the schedule's base); `backbone_learning_rate` the
      backbone's, None meaning 0.1 x learning_rate when starting from pretrained weights (as
      DEEP-OC's LR multiplier) and learning_rate when training from scratch. Both are decayed by
      `lr_decay_factor` at each fraction of `epochs` in `lr_decay_at` (DEEP: 0.1 at 70%, 90%).
    - `augmentation`: see `DEFAULT_AUGMENTATION`; missing keys take the defaults, None turns
      augmentation off.
    - `class_weights`: weight each class's loss by N / count (DEEP-OC's rule), divided by the
      number of classes so a balanced set has weights 1.
    - `early_stopping_patience`: epochs without a lower validation loss before stopping (the
      best epoch's weights are kept); None turns early stopping off.
    - `weights`: "imagenet" (loaded from `imagenet_weights_path`, a file or a folder holding
      Keras' file name, else from the Keras cache folder; never downloaded: without a local
      file the backbone starts from random weights and the run gets a warning), None (random
      initialisation), or the path of a `.keras` model to fine-tune (e.g. the active version's;
      its classifier head is replaced when the class list differs, see `build_model`).
    - `mixed_precision`: None = on when a GPU is visible; True/False force it.
    - `seed`: Python, NumPy and TensorFlow seeds, the shuffle and the augmentation.
    """

    architecture: str = "xception"
    image_size: int = 299
    epochs: int = 15
    batch_size: int = 16
    learning_rate: float = 1e-3
    backbone_learning_rate: float | None = None
    dropout: float = 0.2
    augmentation: dict[str, float] | None = field(
        default_factory=lambda: dict(DEFAULT_AUGMENTATION)
    )
    class_weights: bool = True
    early_stopping_patience: int | None = 3
    lr_decay_at: tuple[float, ...] = (0.7, 0.9)
    lr_decay_factor: float = 0.1
    weights: str | None = "imagenet"
    imagenet_weights_path: str | None = None
    mixed_precision: bool | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in _ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {', '.join(ARCHITECTURES)}; got {self.architecture!r}"
            )
        arch = _ARCHITECTURES[self.architecture]
        self.image_size = _check_number("image_size", self.image_size, 1, 1024, integer=True)
        if self.image_size < arch.min_size:
            raise ValueError(
                f"image_size must be at least {arch.min_size} for {self.architecture}, "
                f"got {self.image_size}"
            )
        self.epochs = _check_number("epochs", self.epochs, 1, 1000, integer=True)
        self.batch_size = _check_number("batch_size", self.batch_size, 1, 1024, integer=True)
        self.learning_rate = _check_number("learning_rate", self.learning_rate, 1e-7, 1.0)
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be positive")
        if self.backbone_learning_rate is not None:
            self.backbone_learning_rate = _check_number(
                "backbone_learning_rate", self.backbone_learning_rate, 0.0, 1.0
            )
        self.dropout = _check_number("dropout", self.dropout, 0.0, 0.9)
        self.augmentation = resolve_augmentation(self.augmentation)
        if not isinstance(self.class_weights, bool):
            raise ValueError(f"class_weights must be true or false, got {self.class_weights!r}")
        if self.early_stopping_patience is not None:
            self.early_stopping_patience = _check_number(
                "early_stopping_patience", self.early_stopping_patience, 1, 1000, integer=True
            )
        if isinstance(self.lr_decay_at, str | bytes) or not isinstance(self.lr_decay_at, Sequence):
            raise ValueError(
                f"lr_decay_at must be a list of fractions of the epochs, got {self.lr_decay_at!r}"
            )
        self.lr_decay_at = tuple(
            sorted(_check_number("lr_decay_at", f, 0.0, 1.0) for f in self.lr_decay_at)
        )
        self.lr_decay_factor = _check_number("lr_decay_factor", self.lr_decay_factor, 0.0, 1.0)
        if self.lr_decay_factor <= 0:
            raise ValueError("lr_decay_factor must be positive")
        if self.weights is not None:
            if not isinstance(self.weights, str) or not self.weights:
                raise ValueError(
                    f'weights must be "imagenet", null or a .keras file path, got {self.weights!r}'
                )
            if self.weights != "imagenet" and not self.weights.lower().endswith(".keras"):
                raise ValueError(
                    f'weights must be "imagenet", null or a .keras file path, got {self.weights!r}'
                )
        if self.imagenet_weights_path is not None and (
            not isinstance(self.imagenet_weights_path, str) or not self.imagenet_weights_path
        ):
            raise ValueError(
                f"imagenet_weights_path must be a path or null, got {self.imagenet_weights_path!r}"
            )
        if self.mixed_precision is not None and not isinstance(self.mixed_precision, bool):
            raise ValueError(
                f"mixed_precision must be true, false or null (auto), got {self.mixed_precision!r}"
            )
        self.seed = _check_number("seed", self.seed, 0, 2**31 - 1, integer=True)

    # -- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict that `from_dict` reads back to an equal config."""
        data = asdict(self)
        data["lr_decay_at"] = list(self.lr_decay_at)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        """Build and validate a config; missing keys take the defaults. Raises ValueError."""
        if not isinstance(data, Mapping):
            raise ValueError(f"training config must be an object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {', '.join(map(str, unknown))}")
        return cls(**dict(data))

    # -- derived values --------------------------------------------------------------------

    def preprocess_spec(self) -> PreprocessSpec:
        """The spec a model built from this config expects: the architecture's normalisation
        at `image_size`, centre crop (see PreprocessSpec)."""
        arch = _ARCHITECTURES[self.architecture]
        return PreprocessSpec(image_size=self.image_size, mode=arch.mode, mean_rgb=arch.mean_rgb)

    def backbone_rate(self, *, pretrained: bool) -> float:
        """The backbone's learning rate once `backbone_learning_rate`'s default is resolved."""
        if self.backbone_learning_rate is not None:
            return self.backbone_learning_rate
        return self.learning_rate * 0.1 if pretrained else self.learning_rate

    def learning_rate_at(self, epoch: int) -> float:
        """The head's learning rate for 0-based `epoch` under the step schedule."""
        drops = sum(1 for f in self.lr_decay_at if epoch >= int(f * self.epochs))
        return self.learning_rate * self.lr_decay_factor**drops

    @property
    def starts_from_model(self) -> bool:
        return self.weights not in (None, "imagenet")


# -- model ---------------------------------------------------------------------------------


def _imagenet_file(config: TrainingConfig) -> tuple[str | None, str | None]:
    """(local weights file, or None with the reason) for weights="imagenet"."""
    arch = _ARCHITECTURES[config.architecture]
    if arch.weights_file is None:
        return None, f"{config.architecture} has no ImageNet weights"
    candidates: list[Path] = []
    if config.imagenet_weights_path:
        given = Path(config.imagenet_weights_path).expanduser()
        candidates.append(given / arch.weights_file if given.is_dir() else given)
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    candidates.append(Path(keras_home) / "models" / arch.weights_file)
    for path in candidates:
        if path.is_file():
            return os.fspath(path), None
    where = " or ".join(os.fspath(p) for p in candidates)
    return None, f"no local ImageNet weights file ({where})"


def _backbone(config: TrainingConfig, weights: str | None) -> Any:
    import keras

    size = config.image_size
    shape = (size, size, 3)
    name = config.architecture
    if name == "xception":
        return keras.applications.Xception(
            include_top=False, weights=weights, input_shape=shape, pooling="avg"
        )
    if name == "mobilenet_v3_small":
        with _warnings.catch_warnings():
            # Its "input shape is not 224" warning is about ImageNet's own top, not ours.
            _warnings.simplefilter("ignore", UserWarning)
            return keras.applications.MobileNetV3Small(
                include_top=False,
                weights=weights,
                input_shape=shape,
                pooling="avg",
                include_preprocessing=False,  # it expects [-1, 1] then
            )
    if name == "efficientnet_b0":
        backbone = keras.applications.EfficientNetB0(
            include_top=False, weights=weights, input_shape=shape, pooling="avg"
        )
        if weights is not None:
            _match_efficientnet_imagenet_normalisation(backbone)
        return backbone
    if name == "resnet50":
        return keras.applications.ResNet50(
            include_top=False, weights=weights, input_shape=shape, pooling="avg"
        )
    if name == "small_cnn":
        inputs = keras.Input(shape)
        x = inputs
        for i, filters in enumerate((16, 32, 64)):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
            # Fast-moving statistics: a small dataset gives few steps per run.
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
            x = keras.layers.ReLU(name=f"relu{i}")(x)
            x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return keras.Model(inputs, x, name="small_cnn")
    raise AssertionError(name)  # TrainingConfig validated it


def _match_efficientnet_imagenet_normalisation(backbone: Any) -> None:
    """Keras' EfficientNet adds a Rescaling by 1/sqrt(ImageNet std) after its Normalization
    only when weights == "imagenet" (keras-team/keras, TF issue 49930); with a weights *path*
    it is missing. Folding it into the Normalization's variance gives the same function."""
    from keras.src.applications.efficientnet import IMAGENET_STDDEV_RGB

    for layer in backbone.layers:
        if type(layer).__name__ == "Normalization":
            variance = np.asarray(layer.adapt_variance.numpy(), dtype=np.float32)
            layer.adapt_variance.assign(variance * np.asarray(IMAGENET_STDDEV_RGB, np.float32))
            layer.finalize_state()
            return
    raise TrainingError("EfficientNetB0 has no Normalization layer to match ImageNet's input")


def _head(features: Any, num_classes: int, dropout: float) -> Any:
    import keras

    x = keras.layers.Dropout(dropout, name=HEAD_DROPOUT)(features)
    # float32 output: softmax in float16 under mixed precision loses small probabilities.
    return keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name=HEAD_CLASSES
    )(x)


def _freeze_batch_norm(model: Any) -> None:
    """Pretrained BatchNormalization layers keep their statistics (inference mode).

    With batches of 8-16 photos, updating ImageNet's moving means and variances damages the
    features more than fine-tuning their scale and shift gains (the Keras transfer-learning
    guide does the same). Layers with trainable=False run in inference mode in Keras 3.
    """
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _output_layer(model: Any) -> Any:
    history = getattr(model.outputs[0], "_keras_history", None)
    layer = getattr(history, "operation", None)
    return layer if layer is not None else model.layers[-1]


@dataclass
class _Built:
    model: Any
    pretrained: bool
    head_layers: list[str]
    mixed_precision: bool
    warnings: list[str]


def _build(
    config: TrainingConfig, num_classes: int, *, reuse_head: bool, mixed_precision: bool
) -> _Built:
    import keras

    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    notes: list[str] = []
    if config.starts_from_model:
        if mixed_precision:
            notes.append("mixed precision not applied: a saved model keeps its float32 layers")
        return _build_from_model(config, num_classes, reuse_head=reuse_head, notes=notes)

    weights: str | None = None
    if config.weights == "imagenet":
        weights, reason = _imagenet_file(config)
        if weights is None:
            notes.append(
                f"ImageNet weights not used: {reason}; the backbone starts from random weights "
                "(expect much lower accuracy on small datasets)"
            )
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(config.seed)
        size = config.image_size
        inputs = keras.Input((size, size, 3), name="image")
        x = inputs
        if config.architecture == "efficientnet_b0":
            # The spec gives [-1, 1]; EfficientNet's own normalisation starts from [0, 255].
            x = keras.layers.Rescaling(127.5, offset=127.5, name="to_0_255")(x)
        try:
            backbone = _backbone(config, weights)
        except (ValueError, OSError) as exc:
            if weights is None:
                raise
            raise ValueError(
                f"ImageNet weights file {weights} does not fit {config.architecture}: {exc}"
            ) from exc
        outputs = _head(backbone(x), num_classes, config.dropout)
        model = keras.Model(inputs, outputs, name=f"parkwatch_{config.architecture}")
    finally:
        keras.config.set_dtype_policy(previous)
    if weights is not None:
        _freeze_batch_norm(backbone)
    return _Built(model, weights is not None, [HEAD_DROPOUT, HEAD_CLASSES], mixed_precision, notes)


def _build_from_model(
    config: TrainingConfig, num_classes: int, *, reuse_head: bool, notes: list[str]
) -> _Built:
    import keras

    from .backends.keras import load_keras_model

    path = Path(config.weights or "")
    if not path.is_file():
        raise ValueError(f"base model not found: {path}")
    base, loaded_with = load_keras_model(path)
    if loaded_with != "keras":
        raise ValueError(f"{path.name} loads only with tf_keras (Keras 2); it cannot be trained")
    shape = tuple(base.inputs[0].shape)
    if len(shape) != 4 or shape[1:3] != (config.image_size, config.image_size):
        raise ValueError(
            f"base model {path.name} takes {shape[1]}x{shape[2]} images but image_size is "
            f"{config.image_size}"
        )
    head = _output_layer(base)
    outputs = int(base.outputs[0].shape[-1])
    if reuse_head and outputs == num_classes:
        model = base
        head_layers = [head.name]
    else:
        if reuse_head:
            notes.append(
                f"base model has {outputs} classes, this run {num_classes}: its head is replaced"
            )
        keras.utils.set_random_seed(config.seed)
        features = head.input
        # The old head's dropout goes too, so the new head is the same as build_model's.
        producer = getattr(getattr(features, "_keras_history", None), "operation", None)
        if isinstance(producer, keras.layers.Dropout):
            features = producer.input
        model = keras.Model(base.inputs, _head(features, num_classes, config.dropout))
        head_layers = [HEAD_DROPOUT, HEAD_CLASSES]
    _freeze_batch_norm(model)
    return _Built(model, True, head_layers, False, notes)


def build_model(config: TrainingConfig, num_classes: int, *, reuse_head: bool = True) -> Any:
    """The Keras model a run trains (uncompiled).

    Architectures: input (image_size, image_size, 3) holding `config.preprocess_spec()`'s
    tensors (Xception: centre crop at 299 px scaled to [-1, 1]) -> backbone without its top,
    global average pooling -> Dropout(config.dropout) -> Dense(num_classes, softmax, float32
    even under mixed precision). ImageNet-pretrained BatchNormalization layers are frozen.

    With `config.weights` a `.keras` path: that model, keeping its head when `reuse_head` and
    its class count equals `num_classes`, otherwise with its output layer replaced by a fresh
    Dropout + Dense on the same features. Pass reuse_head=False when the class list changed
    even if its length did not. Mixed precision as `config.mixed_precision` says (None: when a
    GPU is visible). Warnings (e.g. ImageNet weights missing) are issued with `warnings.warn`;
    `train` returns them instead.
    """
    import tensorflow as tf

    mixed, _ = _mixed_precision(config, _configure_devices(tf))
    built = _build(config, num_classes, reuse_head=reuse_head, mixed_precision=mixed)
    for note in built.warnings:
        _warnings.warn(note, stacklevel=2)
    return built.model


@cache
def _two_rate_adam() -> type:
    """Adam with a learning-rate multiplier on every variable outside the head layers.

    Keras 3 has no per-variable learning rate; DEEP-OC's custom Adam did the same (its code
    found the multiplier better than freezing then unfreezing the backbone). The head is named
    by layer: a variable's path starts with its layer's name ("head_classes/kernel").
    """
    import keras

    @keras.saving.register_keras_serializable(package="parkwatch")
    class TwoRateAdam(keras.optimizers.Adam):
        def __init__(
            self,
            backbone_multiplier: float = 0.1,
            head_layers: Sequence[str] = (),
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.backbone_multiplier = float(backbone_multiplier)
            self.head_layers = list(head_layers)

        def is_head(self, variable: Any) -> bool:
            return variable.path.split("/")[0] in self.head_layers

        def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
            # The TF backend passes the tf.Variable; the index maps it back to the Keras one.
            keras_variable = self._trainable_variables[self._get_variable_index(variable)]
            if self.backbone_multiplier != 1.0 and not self.is_head(keras_variable):
                learning_rate = learning_rate * self.backbone_multiplier
            super().update_step(gradient, variable, learning_rate)

        def get_config(self) -> dict[str, Any]:
            config = super().get_config()
            config.update(
                backbone_multiplier=self.backbone_multiplier, head_layers=self.head_layers
            )
            return config

    return TwoRateAdam


def compile_model(
    model: Any,
    config: TrainingConfig,
    *,
    head_layers: Sequence[str] = (HEAD_DROPOUT, HEAD_CLASSES),
    pretrained: bool = True,
) -> None:
    """Compile for training: sparse categorical cross-entropy, accuracy, and Adam with the
    head at `config.learning_rate` and the rest at `config.backbone_rate(pretrained=...)`."""
    head = set(head_layers)
    if not any(v.path.split("/")[0] in head for v in model.trainable_variables):
        raise TrainingError(f"no trainable variable belongs to the head layers {sorted(head)}")
    import keras

    multiplier = config.backbone_rate(pretrained=pretrained) / config.learning_rate
    optimizer = _two_rate_adam()(
        learning_rate=config.learning_rate,
        backbone_multiplier=multiplier,
        head_layers=list(head_layers),
    )
    if _is_mixed(model):
        # Keras would wrap it too, but only an explicit wrapper is in the compile config, so a
        # checkpoint reloads with the same optimizer variables (loss scale included).
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def _is_mixed(model: Any) -> bool:
    return any(
        getattr(layer.dtype_policy, "name", "") == "mixed_float16"
        for layer in model._flatten_layers(include_self=True, recursive=True)
    )


def _walk_policies(config: Any, name: str) -> None:
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
            config["config"]["name"] = name
        for value in config.values():
            _walk_policies(value, name)
    elif isinstance(config, list):
        for value in config:
            _walk_policies(value, name)


def _serving_copy(model: Any) -> Any:
    """An uncompiled float32 copy with the same weights: no optimizer state in the file (a
    third of the size for Adam), and no float16 compute on a CPU serving worker."""
    config = model.get_config()
    _walk_policies(config, "float32")
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    for layer in copy._flatten_layers(include_self=False, recursive=True):
        # Normalization derives its mean/variance tensors from the copied variables here.
        finalize = getattr(layer, "finalize_state", None)
        if callable(finalize):
            finalize()
    return copy


# -- data ----------------------------------------------------------------------------------


def _read(source: SampleSource) -> ImageSource:
    if callable(source):
        source = source()
    return source


def _describe(source: SampleSource) -> str:
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return repr(source)


def _decode(sources: Sequence[SampleSource], index: int, spec: PreprocessSpec):
    source = sources[index]
    try:
        # Exactly serving's call (Classifier.decode with tta="none").
        return decode_image(_read(source), target_size=spec.min_source_side("none"))
    except Exception as exc:
        raise TrainingError(
            f"photo {index} ({_describe(source)}) could not be read: {type(exc).__name__}: {exc}"
        ) from exc


def _check_samples(samples: Sequence[Sample], name: str) -> tuple[list[SampleSource], list[int]]:
    sources: list[SampleSource] = []
    labels: list[int] = []
    for i, item in enumerate(samples):
        try:
            source, label = item
        except (TypeError, ValueError):
            raise ValueError(f"{name}[{i}] must be a (source, label) pair, got {item!r}") from None
        if isinstance(label, bool) or not isinstance(label, int | np.integer) or label < 0:
            raise ValueError(f"{name}[{i}] label must be a class index >= 0, got {label!r}")
        sources.append(source)
        labels.append(int(label))
    return sources, labels


def _augment(image: Any, seed: Any, aug: Mapping[str, float], size: int) -> Any:
    """Random flips, rotation + zoom (one bilinear resampling, reflected borders) and colour
    jitter on one float32 (size, size, 3) view with RGB values in [0, 255]."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(tf.stack([seed, tf.constant(7, tf.int64)]), 8)

    def uniform(i: int, low: float, high: float) -> Any:
        return tf.random.stateless_uniform([], seed=seeds[i], minval=low, maxval=high)

    if aug["h_flip"] > 0:
        image = tf.where(uniform(0, 0, 1) < aug["h_flip"], tf.reverse(image, [1]), image)
    if aug["v_flip"] > 0:
        image = tf.where(uniform(1, 0, 1) < aug["v_flip"], tf.reverse(image, [0]), image)
    if aug["rotation"] > 0 or aug["zoom"] > 0:
        limit = aug["rotation"] * math.pi / 180
        angle = uniform(2, -limit, limit) if limit > 0 else tf.constant(0.0)
        scale = 1.0 - uniform(3, 0, aug["zoom"]) if aug["zoom"] > 0 else tf.constant(1.0)
        shift = (1.0 - scale) * size / 2
        tx = uniform(4, -1, 1) * shift
        ty = uniform(5, -1, 1) * shift
        c = (size - 1) / 2
        cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
        # Output pixel (x, y) samples the input at c + scale * R(angle) (p - c) + (tx, ty).
        transform = tf.stack(
            [cos, -sin, c - cos * c + sin * c + tx, sin, cos, c - sin * c - cos * c + ty, 0, 0]
        )
        image = tf.raw_ops.ImageProjectiveTransformV3(
            images=image[None],
            transforms=tf.cast(transform[None], tf.float32),
            output_shape=[size, size],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )[0]
    if aug["brightness"] > 0:
        image = image + uniform(6, -aug["brightness"], aug["brightness"]) * 255.0
    if aug["contrast"] > 0 or aug["saturation"] > 0:
        factors = tf.random.stateless_uniform([2], seed=seeds[7], minval=-1, maxval=1)
        if aug["contrast"] > 0:
            mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
            image = (image - mean) * (1.0 + factors[0] * aug["contrast"]) + mean
        if aug["saturation"] > 0:
            grey = tf.reduce_sum(image * [0.299, 0.587, 0.114], axis=-1, keepdims=True)
            image = grey + (image - grey) * (1.0 + factors[1] * aug["saturation"])
    return tf.clip_by_value(image, 0.0, 255.0)


def make_dataset(
    samples: Sequence[Sample],
    spec: PreprocessSpec,
    *,
    batch_size: int,
    training: bool,
    augmentation: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Any:
    """A tf.data.Dataset of (float32 images (B, S, S, 3), int32 labels (B,)) batches.

    Each photo is decoded with serving's `decode_image(source,
    target_size=spec.min_source_side())` inside `tf.numpy_function`, in parallel
    (`num_parallel_calls=AUTOTUNE`; Pillow releases the GIL while decoding and resizing).

    - training=False: in the given order, `preprocess_array` of the decoded photo, i.e. the
      serving input bit for bit; `augmentation` must be None.
    - training=True: reshuffled every epoch (seeded), serving's uint8 view (`image_views`),
      then `augmentation` (see `DEFAULT_AUGMENTATION`; None for none) as TensorFlow ops on RGB
      values in [0, 255], then serving's `normalize_pixels`. Without augmentation the arrays
      equal the evaluation arrays.

    Both are prefetched (`prefetch(AUTOTUNE)`); the last batch may be smaller.
    """
    import tensorflow as tf

    sources, labels = _check_samples(samples, "samples")
    if not sources:
        raise ValueError("samples is empty")
    batch_size = _check_number("batch_size", batch_size, 1, 1024, integer=True)
    aug = resolve_augmentation(augmentation)
    if not training and aug is not None:
        raise ValueError("augmentation applies to training datasets only")
    if aug is not None and not any(aug.values()):
        aug = None
    size = spec.image_size
    label_table = tf.constant(labels, dtype=tf.int32)

    def load_eval(index: np.int64) -> np.ndarray:
        image = _decode(sources, int(index), spec)
        return preprocess_array(np.asarray(image), spec)

    def load_view(index: np.int64) -> np.ndarray:
        return image_views(_decode(sources, int(index), spec), spec, "none")[0]

    def normalise(view: np.ndarray) -> np.ndarray:
        return normalize_pixels(view, spec)

    # No tensor-dependent Python control flow here: skipping AutoGraph's source conversion
    # saves seconds per dataset.
    @tf.autograph.experimental.do_not_convert
    def eval_item(index: Any) -> tuple[Any, Any]:
        x = tf.numpy_function(load_eval, [index], tf.float32, stateful=False)
        x.set_shape([size, size, 3])
        return x, label_table[index]

    @tf.autograph.experimental.do_not_convert
    def train_item(index: Any, seed_value: Any) -> tuple[Any, Any]:
        view = tf.numpy_function(load_view, [index], tf.uint8, stateful=False)
        view.set_shape([size, size, 3])
        if aug is None:
            x = tf.numpy_function(normalise, [view], tf.float32, stateful=False)
        else:
            pixels = _augment(tf.cast(view, tf.float32), seed_value, aug, size)
            x = tf.numpy_function(normalise, [pixels], tf.float32, stateful=False)
        x.set_shape([size, size, 3])
        return x, label_table[index]

    autotune = tf.data.AUTOTUNE
    indices = tf.data.Dataset.range(len(sources))
    if training:
        indices = indices.shuffle(len(sources), seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(indices, seeds).map(train_item, num_parallel_calls=autotune)
    else:
        dataset = indices.map(eval_item, num_parallel_calls=autotune)
    return dataset.batch(batch_size).prefetch(autotune)


def compute_class_weights(labels: Sequence[int], num_classes: int) -> dict[int, float]:
    """DEEP-OC's class weights: N / count for each class present in `labels` (N = len(labels)).

    A class without examples gets no entry (Keras then weighs it 1).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    total = int(counts.sum())
    return {c: total / int(n) for c, n in enumerate(counts) if n > 0}


# -- checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A resumable checkpoint: `path` holds the model and optimizer after `epoch` epochs."""

    path: str
    epoch: int


def _read_state(workdir: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((workdir / LATEST_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{workdir / LATEST_FILE} is unreadable: {exc}") from exc
    return state if isinstance(state, dict) else None


def latest_checkpoint(workdir: str | os.PathLike[str]) -> Checkpoint | None:
    """The last completed epoch's checkpoint recorded in `workdir/latest.json`, if any."""
    workdir = Path(workdir)
    state = _read_state(workdir)
    if not state or not state.get("checkpoint"):
        return None
    path = workdir / state["checkpoint"]
    if not path.is_file():
        return None
    return Checkpoint(os.fspath(path), int(state["epoch"]))


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


# -- the run -------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """What a run produced.

    `model_path`: the trained `.keras` file (float32, no optimizer; the best validation-loss
    epoch's weights), None when cancelled. `history`: per-epoch lists ("loss", "accuracy",
    "val_loss", "val_accuracy", "lr", "seconds", "images_per_second"), all epochs including
    those before a resume. `best_epoch` is 1-based. `checkpoint_path`: the last epoch
    checkpoint (to resume a cancelled run). `backbone_learning_rate`: the resolved rate.
    """

    model_path: str | None
    history: dict[str, list[float | None]]
    best_epoch: int | None
    stopped_early: bool
    cancelled: bool
    warnings: list[str]
    epochs_completed: int = 0
    checkpoint_path: str | None = None
    num_classes: int = 0
    class_weights: dict[int, float] | None = None
    backbone_learning_rate: float | None = None
    mixed_precision: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.class_weights is not None:
            data["class_weights"] = {str(k): v for k, v in self.class_weights.items()}
        return data


HISTORY_KEYS = (
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
    "images_per_second",
)


@cache
def _monitor_class() -> type:
    import keras

    class Monitor(keras.callbacks.Callback):
        """Progress, cancellation, NaN guard, step LR schedule, early stopping, checkpoints."""

        def __init__(self, run: _Run) -> None:
            super().__init__()
            self.run = run

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.run.epoch_begin(self.model, epoch)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.run.step_end(batch, logs or {})

        def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
            self.run.check_stop()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.run.epoch_end(self.model, epoch, logs or {})

    return Monitor


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class _Run:
    """The state of one `train` call that the Keras callback reads and updates."""

    def __init__(
        self,
        *,
        config: TrainingConfig,
        workdir: Path,
        steps: int,
        train_count: int,
        num_classes: int,
        has_validation: bool,
        on_progress: Callable[[dict[str, Any]], None] | None,
        should_stop: Callable[[], bool] | None,
        progress_every: int,
        keep_checkpoints: int,
        state: Mapping[str, Any] | None,
    ) -> None:
        self.config = config
        self.workdir = workdir
        self.steps = steps
        self.train_count = train_count
        self.num_classes = num_classes
        self.monitor = "val_loss" if has_validation else "loss"
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.progress_every = progress_every
        self.keep_checkpoints = keep_checkpoints
        state = state or {}
        self.history: dict[str, list[float | None]] = {
            k: list(state.get("history", {}).get(k, [])) for k in HISTORY_KEYS
        }
        self.best_value: float | None = state.get("best_value")
        self.best_epoch: int | None = state.get("best_epoch")
        self.best_weights: str | None = state.get("best_weights")
        self.wait: int = int(state.get("wait", 0))
        self.stopped_early: bool = bool(state.get("stopped_early", False))
        self.epochs_completed: int = int(state.get("epoch", 0))
        self.checkpoint: str | None = state.get("checkpoint")
        self.cancelled = False
        self.lr = config.learning_rate
        self._epoch = 0
        self._epoch_start = 0.0
        self._train_seconds = 0.0
        self._mark_time = 0.0
        self._mark_images = 0

    # -- callback hooks --------------------------------------------------------------------

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            self.cancelled = True
            raise _Cancelled()

    def epoch_begin(self, model: Any, epoch: int) -> None:
        self.check_stop()
        self._epoch = epoch
        self.lr = self.config.learning_rate_at(epoch)
        model.optimizer.learning_rate = self.lr
        now = time.perf_counter()
        self._epoch_start = self._mark_time = now
        self._mark_images = 0

    def _images_after(self, step: int) -> int:
        return min(step * self.config.batch_size, self.train_count)

    def step_end(self, batch: int, logs: Mapping[str, Any]) -> None:
        step = batch + 1
        loss = _float(logs.get("loss"))
        if loss is not None and not math.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss} at epoch {self._epoch + 1}, step {step}: "
                "lower the learning rate"
            )
        self._train_seconds = time.perf_counter() - self._epoch_start
        if self.on_progress is not None and (step % self.progress_every == 0 and step < self.steps):
            now = time.perf_counter()
            images = self._images_after(step)
            rate = (images - self._mark_images) / max(now - self._mark_time, 1e-9)
            self._mark_time, self._mark_images = now, images
            self._report("step", step, loss, _float(logs.get("accuracy")), None, None, rate)
        self.check_stop()

    def epoch_end(self, model: Any, epoch: int, logs: Mapping[str, Any]) -> None:
        completed = epoch + 1
        seconds = time.perf_counter() - self._epoch_start
        rate = self.train_count / max(self._train_seconds, 1e-9)
        values = {
            "loss": _float(logs.get("loss")),
            "accuracy": _float(logs.get("accuracy")),
            "val_loss": _float(logs.get("val_loss")),
            "val_accuracy": _float(logs.get("val_accuracy")),
            "lr": self.lr,
            "seconds": seconds,
            "images_per_second": rate,
        }
        for key in HISTORY_KEYS:
            self.history[key].append(values[key])
        current = values[self.monitor]
        improved = current is not None and (self.best_value is None or current < self.best_value)
        files_to_drop: list[Path] = []
        if improved:
            best_name = f"best-epoch-{completed:02d}.weights.h5"
            model.save_weights(self.workdir / best_name)
            if self.best_weights and self.best_weights != best_name:
                files_to_drop.append(self.workdir / self.best_weights)
            self.best_value, self.best_epoch, self.best_weights = current, completed, best_name
            self.wait = 0
        else:
            self.wait += 1
        patience = self.config.early_stopping_patience
        if patience is not None and self.wait >= patience and completed < self.config.epochs:
            self.stopped_early = True
            model.stop_training = True
        checkpoint = CHECKPOINT_PATTERN.format(epoch=completed)
        model.save(self.workdir / checkpoint)
        self.checkpoint = checkpoint
        self.epochs_completed = completed
        _write_json_atomic(self.workdir / LATEST_FILE, self.state())
        # Only once latest.json names the new files: a run killed before this line resumes
        # from the previous checkpoint, which is still there.
        for path in files_to_drop:
            path.unlink(missing_ok=True)
        self._prune_checkpoints()
        self._report(
            "epoch",
            self.steps,
            values["loss"],
            values["accuracy"],
            values["val_loss"],
            values["val_accuracy"],
            rate,
        )

    # -- helpers ---------------------------------------------------------------------------

    def _prune_checkpoints(self) -> None:
        found = []
        for path in self.workdir.glob("checkpoint-epoch-*.keras"):
            match = _CHECKPOINT_RE.search(path.name)
            if match:
                found.append((int(match.group(1)), path))
        found.sort()
        for _, path in found[: max(0, len(found) - self.keep_checkpoints)]:
            if path.name != self.checkpoint:
                path.unlink(missing_ok=True)

    def _report(
        self,
        event: str,
        step: int,
        loss: float | None,
        accuracy: float | None,
        val_loss: float | None,
        val_accuracy: float | None,
        rate: float,
    ) -> None:
        if self.on_progress is None:
            return
        self.on_progress(
            {
                "event": event,
                "epoch": self._epoch + 1,
                "epochs": self.config.epochs,
                "step": step,
                "steps": self.steps,
                "loss": loss,
                "accuracy": accuracy,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "images_per_second": rate,
                "lr": self.lr,
            }
        )

    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.epochs_completed,
            "epochs": self.config.epochs,
            "checkpoint": self.checkpoint,
            "monitor": self.monitor,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_weights": self.best_weights,
            "wait": self.wait,
            "stopped_early": self.stopped_early,
            "num_classes": self.num_classes,
            "history": self.history,
            "config": self.config.to_dict(),
        }


def _op_error_cause(exc: Exception) -> str:
    """The useful line of a TensorFlow error: ours from inside tf.numpy_function (TF wraps it
    in "Graph execution error: ... TrainingError: photo 3 (...) could not be read"), else the
    last line of the message."""
    message = getattr(exc, "message", None) or str(exc)
    found = re.search(r"TrainingError: (.+)", message)
    if found:
        return found.group(1).strip()
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return f"training failed: {lines[-1] if lines else type(exc).__name__}"


def _check_spec(config: TrainingConfig, spec: PreprocessSpec) -> None:
    if spec.image_size != config.image_size:
        raise ValueError(
            f"the preprocessing spec gives {spec.image_size} px images but image_size is "
            f"{config.image_size}"
        )
    if config.starts_from_model:
        return  # the base version's own spec
    expected = config.preprocess_spec()
    if (spec.mode, spec.mean_rgb, spec.std_rgb) != (
        expected.mode,
        expected.mean_rgb,
        expected.std_rgb,
    ):
        raise ValueError(
            f"{config.architecture} expects preprocessing mode {expected.mode!r}"
            + (f" with mean_rgb {list(expected.mean_rgb)}" if expected.mean_rgb else "")
            + f", got {spec.mode!r}: use config.preprocess_spec()"
        )


def _configure_devices(tf: Any) -> bool:
    """Memory growth on every GPU (where TensorFlow still allows it); True if a GPU exists."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # Refused once TensorFlow has initialised the GPU (an earlier run in this process).
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)
    return bool(gpus)


def _mixed_precision(config: TrainingConfig, has_gpu: bool) -> tuple[bool, str | None]:
    mixed = has_gpu if config.mixed_precision is None else config.mixed_precision
    if mixed and not has_gpu:
        return True, "mixed precision without a GPU is slower than float32"
    return mixed, None


def _resolve_checkpoint(
    resume: str | os.PathLike[str], workdir: Path, initial_epoch: int | None
) -> tuple[Path, int, dict[str, Any] | None, list[str]]:
    notes: list[str] = []
    path = Path(resume)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise TrainingError(f"no checkpoint recorded in {path / LATEST_FILE}")
        path = Path(found.path)
    if not path.is_file():
        raise TrainingError(f"checkpoint not found: {path}")
    state = _read_state(workdir)
    if state is not None and state.get("checkpoint") != path.name:
        state = None
    if state is not None:
        epoch = int(state["epoch"])
    else:
        match = _CHECKPOINT_RE.search(path.name)
        if match is None and initial_epoch is None:
            raise TrainingError(f"{path.name}: pass initial_epoch (the epochs it completed)")
        epoch = int(match.group(1)) if match else int(initial_epoch or 0)
        notes.append(
            f"{path.name} is not the checkpoint in {workdir / LATEST_FILE}: the history and "
            "early-stopping state before it are not known"
        )
    if initial_epoch is not None and initial_epoch != epoch:
        notes.append(f"resuming at epoch {initial_epoch + 1} as asked ({path.name}: {epoch})")
        epoch = initial_epoch
    return path, epoch, state, notes


def train(
    config: TrainingConfig,
    train_samples: Sequence[Sample],
    val_samples: Sequence[Sample],
    spec: PreprocessSpec,
    *,
    workdir: str | os.PathLike[str],
    num_classes: int | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume_from_checkpoint: str | os.PathLike[str] | None = None,
    initial_epoch: int | None = None,
    reuse_head: bool = True,
    progress_every: int = 10,
    keep_checkpoints: int = 1,
) -> TrainingResult:
    """Train a classifier; see the module docstring for the contract.

    - `num_classes`: the version's label count (default: the largest label + 1).
    - `on_progress(dict)`: every `progress_every` steps (event "step": running epoch means of
      loss/accuracy, val_* None) and after each epoch (event "epoch", with val_* and the
      epoch's training images per second). Keys: event, epoch (1-based), epochs, step, steps,
      loss, accuracy, val_loss, val_accuracy, images_per_second, lr.
    - `should_stop()`: polled before each epoch and after every training and validation step;
      True stops at once and returns `cancelled=True` (no model; the last epoch checkpoint
      stays in `workdir`).
    - Two learning rates: one Adam whose updates outside the head are scaled by
      backbone_rate / learning_rate (DEEP-OC's LR multiplier), with the step decay schedule.
    - Early stopping on the validation loss (training loss without a validation split); the
      returned model has the best epoch's weights.
    - After each epoch: `checkpoint-epoch-NN.keras` (model + optimizer; the last
      `keep_checkpoints` kept), `best-epoch-NN.weights.h5` and `latest.json` in `workdir`.
    - `workdir`: one folder per run (a fresh run refuses a folder holding a `latest.json`).
    - `resume_from_checkpoint`: a checkpoint file or the workdir; continues at
      `initial_epoch` (default: the epochs the checkpoint completed) with the state recorded
      in `latest.json`.
    - Mixed precision and GPU memory growth when a GPU is visible (`config.mixed_precision`).
    Raises ValueError for bad arguments, TrainingError when the run cannot go on.
    """
    started = time.perf_counter()
    train_sources, train_labels = _check_samples(train_samples, "train_samples")
    _, val_labels = _check_samples(val_samples, "val_samples")
    if not train_sources:
        raise ValueError("train_samples is empty")
    largest = max(train_labels + val_labels)
    if num_classes is None:
        num_classes = largest + 1
    if largest >= num_classes:
        raise ValueError(f"label {largest} is out of range for {num_classes} classes")
    _check_spec(config, spec)
    if progress_every < 1 or keep_checkpoints < 1:
        raise ValueError("progress_every and keep_checkpoints must be at least 1")
    if resume_from_checkpoint is None and initial_epoch not in (None, 0):
        raise ValueError("initial_epoch needs resume_from_checkpoint")
    workdir = Path(workdir)
    if resume_from_checkpoint is None and (workdir / LATEST_FILE).exists():
        raise ValueError(
            f"{workdir} holds another run's checkpoints: resume it or use an empty folder"
        )
    workdir.mkdir(parents=True, exist_ok=True)

    notes: list[str] = []
    missing = sorted(set(range(num_classes)) - set(train_labels))
    if missing:
        notes.append(f"classes without training photos: {', '.join(map(str, missing))}")
    if not val_samples:
        notes.append("no validation photos: early stopping and the best epoch use training loss")

    result = TrainingResult(
        model_path=None,
        history={k: [] for k in HISTORY_KEYS},
        best_epoch=None,
        stopped_early=False,
        cancelled=False,
        warnings=notes,
        num_classes=num_classes,
    )
    if should_stop is not None and should_stop():
        result.cancelled = True
        return result

    import keras
    import tensorflow as tf

    mixed, note = _mixed_precision(config, _configure_devices(tf))
    if note:
        notes.append(note)
    keras.utils.set_random_seed(config.seed)

    state: dict[str, Any] | None = None
    start_epoch = 0
    if resume_from_checkpoint is not None:
        _two_rate_adam()  # registers the optimizer class the checkpoint names
        path, start_epoch, state, resume_notes = _resolve_checkpoint(
            resume_from_checkpoint, workdir, initial_epoch
        )
        notes.extend(resume_notes)
        if state is not None and state.get("config") not in (None, config.to_dict()):
            notes.append("the configuration differs from the one the checkpoint was trained with")
        try:
            model = keras.saving.load_model(path, compile=True)
        except Exception as exc:
            raise TrainingError(f"checkpoint {path.name} could not be loaded: {exc}") from exc
        if int(model.outputs[0].shape[-1]) != num_classes:
            raise TrainingError(
                f"checkpoint {path.name} has {model.outputs[0].shape[-1]} classes, "
                f"this run {num_classes}"
            )
        optimizer = getattr(model, "optimizer", None)
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        if not hasattr(inner, "backbone_multiplier"):
            raise TrainingError(f"checkpoint {path.name} was not written by train()")
        if start_epoch and int(optimizer.iterations) == 0:
            notes.append(
                f"the optimizer state in {path.name} could not be restored: Adam starts afresh"
            )
        backbone_rate = inner.backbone_multiplier * config.learning_rate
        mixed = _is_mixed(model)
    else:
        built = _build(config, num_classes, reuse_head=reuse_head, mixed_precision=mixed)
        notes.extend(built.warnings)
        model, mixed = built.model, built.mixed_precision
        compile_model(model, config, head_layers=built.head_layers, pretrained=built.pretrained)
        backbone_rate = config.backbone_rate(pretrained=built.pretrained)
    result.mixed_precision = mixed
    result.backbone_learning_rate = backbone_rate

    weights = None
    if config.class_weights:
        # DEEP-OC's N / count, divided by the number of classes so that the weighted training
        # loss stays on the validation loss's scale (Adam does not see the constant).
        deep = compute_class_weights(train_labels, num_classes)
        weights = {c: w / len(deep) for c, w in deep.items()}
    result.class_weights = weights
    train_ds = make_dataset(
        train_samples,
        spec,
        batch_size=config.batch_size,
        training=True,
        augmentation=config.augmentation,
        seed=config.seed,
    )
    val_ds = (
        make_dataset(val_samples, spec, batch_size=config.batch_size, training=False)
        if val_samples
        else None
    )
    steps = math.ceil(len(train_sources) / config.batch_size)
    run = _Run(
        config=config,
        workdir=workdir,
        steps=steps,
        train_count=len(train_sources),
        num_classes=num_classes,
        has_validation=bool(val_samples),
        on_progress=on_progress,
        should_stop=should_stop,
        progress_every=progress_every,
        keep_checkpoints=keep_checkpoints,
        state=state,
    )
    if state is None and start_epoch:
        run.epochs_completed = start_epoch

    if start_epoch < config.epochs and not run.stopped_early:
        try:
            model.fit(
                train_ds,
                shuffle=False,  # make_dataset shuffles
                validation_data=val_ds,
                epochs=config.epochs,
                initial_epoch=start_epoch,
                class_weight=weights,
                callbacks=[_monitor_class()(run)],
                verbose=0,
            )
        except _Cancelled:
            pass
        except tf.errors.OpError as exc:
            raise TrainingError(_op_error_cause(exc)) from exc

    result.history = run.history
    result.best_epoch = run.best_epoch
    result.stopped_early = run.stopped_early
    result.cancelled = run.cancelled
    result.epochs_completed = run.epochs_completed
    result.checkpoint_path = os.fspath(workdir / run.checkpoint) if run.checkpoint else None
    if not run.cancelled:
        if run.best_weights and run.best_epoch != run.epochs_completed:
            model.load_weights(workdir / run.best_weights)
        model_path = workdir / MODEL_FILE
        _serving_copy(model).save(model_path)
        result.model_path = os.fspath(model_path)
    result.seconds = time.perf_counter() - started
    return result
