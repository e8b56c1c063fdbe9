"""Turning photos into calibrated class probabilities with any backend.

`Classifier` ties a backend to the preprocessing spec, labels, TTA policy and calibration
temperature that a classifier version was registered with. The functions below it (top_k,
merge, entropy, renormalise, apply_temperature) work on plain probability arrays.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from .backends.base import Backend, softmax
from .preprocessing import TTA_VIEWS, ImageSource, PreprocessSpec, decode_image, preprocess

__all__ = [
    "Classifier",
    "ModelCache",
    "apply_temperature",
    "configure_tensorflow",
    "entropy",
    "merge",
    "renormalise",
    "softmax",
    "top_k",
]

DEFAULT_MAX_BATCH_SIZE = 32


# -- probability helpers -------------------------------------------------------------------


def apply_temperature(probs: np.ndarray, temperature: float | None) -> np.ndarray:
    """Temperature scaling of probabilities: softmax(log(p) / T) along the last axis.

    T > 1 softens over-confident outputs, T < 1 sharpens; None or 1 leaves them unchanged.
    Working from probabilities (not logits) is equivalent for a softmax model, since
    log(softmax(z)) = z - const per row, and works for every backend.
    """
    p = np.asarray(probs, dtype=np.float64)
    if temperature is None or temperature == 1:
        return p.astype(np.float32)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logp = np.log(np.clip(p, np.finfo(np.float64).tiny, None))
    return softmax(logp / float(temperature)).astype(np.float32)


def top_k(probs: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
    """The k most probable classes of one probability vector as (index, probability), best
    first; ties go to the lower index so the order is deterministic."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"top_k takes one probability vector, got shape {p.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    order = np.argsort(-p, kind="stable")[:k]
    return [(int(i), float(p[i])) for i in order]


def merge(probs_per_photo: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """One observation's probabilities from its photos' probabilities: their mean."""
    p = np.asarray(probs_per_photo, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"expected (photos, classes) probabilities, got shape {p.shape}")
    return p.mean(axis=0).astype(np.float32)


def entropy(probs: np.ndarray, *, normalised: bool = False) -> float | np.ndarray:
    """Shannon entropy in nats of a probability vector (a float) or of each row (an array).

    With `normalised`, divided by log(classes) so 0 is certain and 1 is uniform.
    """
    p = np.asarray(probs, dtype=np.float64)
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = terms.sum(axis=-1)
    if normalised:
        n = p.shape[-1]
        h = h / np.log(n) if n > 1 else np.zeros_like(h)
    return float(h) if np.ndim(h) == 0 else h


def renormalise(probs: np.ndarray, keep_indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Restrict probabilities to a subset of classes (e.g. a campaign's or park's checklist).

    Returns the same shape with zeros outside `keep_indices` and each row summing to 1 over the
    kept classes, so indices still mean the same labels. A row with no mass on any kept class
    becomes uniform over them.
    """
    p = np.asarray(probs, dtype=np.float64)
    keep = np.unique(np.asarray(keep_indices, dtype=np.int64))
    n = p.shape[-1]
    if keep.size == 0:
        raise ValueError("keep_indices is empty")
    if keep[0] < 0 or keep[-1] >= n:
        raise ValueError(f"keep_indices must be within 0..{n - 1}")
    mask = np.zeros(n, dtype=bool)
    mask[keep] = True
    kept = np.where(mask, p, 0.0)
    total = kept.sum(axis=-1, keepdims=True)
    uniform = np.where(mask, 1.0 / keep.size, 0.0)
    safe = np.where(total > 0, total, 1.0)
    out = np.where(total > 0, kept / safe, uniform)
    return out.astype(np.float32)


# -- classifier ----------------------------------------------------------------------------


class Classifier:
    """A backend plus everything a classifier version fixes about serving it.

    `predict_images` preprocesses all images with the version's spec and TTA policy, runs the
    backend over the views in chunks of at most `max_batch_size`, averages each image's views,
    then applies the calibration temperature (fitted on these averaged outputs).
    """

    def __init__(
        self,
        backend: Backend,
        spec: PreprocessSpec,
        labels: Sequence[str],
        tta: str = "none",
        temperature: float | None = None,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    ) -> None:
        if tta not in TTA_VIEWS:
            raise ValueError(f"tta must be one of {', '.join(TTA_VIEWS)}; got {tta!r}")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        try:
            n = backend.num_classes
        except RuntimeError:  # an ONNX model with a dynamic class axis
            n = None
        if n is not None and n != len(labels):
            raise ValueError(f"the model outputs {n} classes but {len(labels)} labels were given")
        size = backend.input_size
        if size is not None and size != (spec.image_size, spec.image_size):
            raise ValueError(
                f"the model expects {size[0]}x{size[1]} images but the preprocessing spec "
                f"produces {spec.image_size}x{spec.image_size}"
            )
        self.backend = backend
        self.spec = spec
        self.labels = list(labels)
        self.tta = tta
        self.temperature = temperature
        self.max_batch_size = max_batch_size

    @classmethod
    def from_deepoc(
        cls,
        path: str | os.PathLike[str],
        *,
        tta: str = "none",
        temperature: float | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    ) -> Classifier:
        """A classifier for a DEEP-OC model folder or tarball, with its own spec and labels."""
        from .backends.deepoc import DeepOCBackend

        backend = DeepOCBackend.load(path)
        return cls(
            backend,
            backend.spec,
            backend.labels,
            tta=tta,
            temperature=temperature,
            max_batch_size=max_batch_size,
        )

    @property
    def views(self) -> int:
        return TTA_VIEWS[self.tta]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def decode(self, source: ImageSource) -> Image.Image:
        """Decode a photo at the smallest scale this classifier's views need."""
        return decode_image(source, target_size=self.spec.min_source_side(self.tta))

    def predict_images(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Per-image probabilities, float32 (len(images), classes)."""
        images = [Image.fromarray(im) if isinstance(im, np.ndarray) else im for im in images]
        views = self.views
        # Whole images per chunk, so a chunk's views never straddle two forward passes and
        # memory stays bounded (10 views of 299 px are 10 MB of float32).
        per_chunk = max(1, self.max_batch_size // views)
        out: list[np.ndarray] = []
        for start in range(0, len(images), per_chunk):
            group = images[start : start + per_chunk]
            x = preprocess(group, self.spec, self.tta)
            y = self.backend.predict(x)
            if y.shape != (len(x), self.num_classes):
                raise RuntimeError(
                    f"backend returned shape {y.shape} for {len(x)} views of "
                    f"{self.num_classes} classes"
                )
            out.append(y.reshape(len(group), views, -1).mean(axis=1))
        if not out:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        return apply_temperature(np.concatenate(out), self.temperature)

    def predict_sources(self, sources: Sequence[ImageSource]) -> np.ndarray:
        """Decode (bytes, paths or files) and classify; see `predict_images`."""
        return self.predict_images([self.decode(s) for s in sources])

    def labelled_top_k(self, probs: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """top_k with label names instead of indices."""
        return [(self.labels[i], p) for i, p in top_k(probs, k)]

    top_k = staticmethod(top_k)
    merge = staticmethod(merge)
    entropy = staticmethod(entropy)
    renormalise = staticmethod(renormalise)

    def close(self) -> None:
        self.backend.close()


# -- process-level helpers -----------------------------------------------------------------


class ModelCache:
    """A small per-process LRU of loaded models, keyed e.g. by (version id, sha256).

    A new key (a promoted version, or replaced weights) loads a new model on first use; the
    least recently used one beyond `maxsize` is closed. Loading holds a lock so two threads
    asking for the same key load it once.
    """

    def __init__(self, maxsize: int = 2) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: Hashable, loader: Callable[[], Any]) -> Any:
        """The cached value for `key`, calling `loader()` to create it on a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = loader()
            self._items[key] = value
            while len(self._items) > self.maxsize:
                _, old = self._items.popitem(last=False)
                _close(old)
            return value

    def discard(self, key: Hashable) -> None:
        with self._lock:
            value = self._items.pop(key, None)
        if value is not None:
            _close(value)

    def clear(self) -> None:
        with self._lock:
            values = list(self._items.values())
            self._items.clear()
        for value in values:
            _close(value)

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _close(value: Any) -> None:
    close = getattr(value, "close", None)
    if callable(close):
        close()


def configure_tensorflow(
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
    memory_growth: bool = True,
    mixed_precision: bool = False,
) -> dict[str, Any]:
    """Set TensorFlow's process-wide options; call in the worker child before the first op.

    Several CPU workers on one machine should split the cores (intra_op_threads = cores //
    processes, inter_op_threads = 1) rather than each using all of them. Memory growth lets
    a GPU be shared instead of one process mapping all its memory. Mixed precision
    (float16 compute) applies to models built afterwards (training); loaded models keep the
    dtype policy they were saved with. Options TensorFlow refuses because it is already
    initialised are reported with a warning, not an error. Returns what was applied.
    """
    import tensorflow as tf

    applied: dict[str, Any] = {}

    def attempt(name: str, value: Any, fn: Callable[[], None]) -> None:
        try:
            fn()
        except (RuntimeError, ValueError) as exc:
            warnings.warn(f"could not set TensorFlow {name}: {exc}", stacklevel=3)
        else:
            applied[name] = value

    if intra_op_threads is not None:
        attempt(
            "intra_op_threads",
            intra_op_threads,
            lambda: tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads),
        )
    if inter_op_threads is not None:
        attempt(
            "inter_op_threads",
            inter_op_threads,
            lambda: tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads),
        )
    gpus = tf.config.list_physical_devices("GPU")
    applied["gpus"] = len(gpus)
    if memory_growth and gpus:

        def grow() -> None:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)

        attempt("memory_growth", True, grow)
    if mixed_precision:
        import keras

        attempt(
            "mixed_precision",
            "mixed_float16",
            lambda: keras.mixed_precision.set_global_policy("mixed_float16"),
        )
    return applied
