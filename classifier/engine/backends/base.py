"""The contract every model backend meets, and helpers they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np

# What a model's output is: "probabilities" (rows sum to 1), "logits" (softmax is applied by
# the backend) or "auto" (decided from the model, or from its first outputs when it says
# nothing).
OutputKind = Literal["auto", "probabilities", "logits"]
OUTPUT_KINDS = ("auto", "probabilities", "logits")


class BackendLoadError(Exception):
    """A model file could not be loaded by any of the loaders tried."""


class Backend(ABC):
    """One loaded model: a preprocessed float32 batch in, class probabilities out.

    `predict` takes (N, H, W, 3) float32 already normalised by the version's PreprocessSpec
    and returns float32 (N, num_classes) probabilities (rows sum to 1), whatever the model's
    own layout (NCHW) or output (logits).
    """

    kind: str = ""

    @property
    @abstractmethod
    def num_classes(self) -> int:
        """Number of classes the model outputs."""

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(height, width) the model requires, or None if it accepts any size."""
        return None

    @abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, num_classes) for a preprocessed NHWC float32 batch."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release the model; the backend is unusable afterwards."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_output_kind(output: str) -> str:
    if output not in OUTPUT_KINDS:
        raise ValueError(f"output must be one of {', '.join(OUTPUT_KINDS)}; got {output!r}")
    return output


def check_batch(batch: np.ndarray, input_size: tuple[int, int] | None) -> np.ndarray:
    """Validate a preprocessed batch and return it as contiguous float32."""
    batch = np.asarray(batch)
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected a batch of shape (N, H, W, 3), got {batch.shape}")
    if input_size is not None and tuple(batch.shape[1:3]) != tuple(input_size):
        raise ValueError(
            f"model expects {input_size[0]}x{input_size[1]} images, got "
            f"{batch.shape[1]}x{batch.shape[2]}: check the version's preprocessing image_size"
        )
    return np.ascontiguousarray(batch, dtype=np.float32)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax."""
    x = np.asarray(x, dtype=np.float64)
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def looks_like_probabilities(y: np.ndarray, atol: float = 1e-3) -> bool:
    """True if every row is in [0, 1] and sums to 1 (a softmax output, not logits)."""
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return False
    return bool(
        np.all(y >= -atol) and np.all(y <= 1 + atol) and np.allclose(y.sum(axis=-1), 1, atol=atol)
    )


class OutputResolver:
    """Turns raw model outputs into probabilities according to an OutputKind.

    In "auto" mode without a decision from the model, the first non-empty batch decides once
    (rows in [0, 1] summing to 1 -> probabilities, anything else -> logits) so that every
    later batch is treated the same way.
    """

    def __init__(self, output: str) -> None:
        self.output = check_output_kind(output)

    @property
    def decided(self) -> bool:
        return self.output != "auto"

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float32)
        if raw.ndim != 2:
            raw = raw.reshape(raw.shape[0], -1)
        if self.output == "auto" and raw.shape[0]:
            self.output = "probabilities" if looks_like_probabilities(raw) else "logits"
        if self.output == "logits":
            return softmax(raw).astype(np.float32)
        return raw
