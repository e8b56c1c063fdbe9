"""Model backends behind one contract (`base.Backend`): keras, deepoc, onnx.

Importing this package does not import TensorFlow or ONNX Runtime; `load_backend` does, for the
backend it loads.
"""

from __future__ import annotations

import os
from typing import Any

from .base import Backend, BackendLoadError, OutputKind

BACKEND_KINDS = ("keras", "deepoc", "onnx")

__all__ = ["BACKEND_KINDS", "Backend", "BackendLoadError", "OutputKind", "load_backend"]


def load_backend(kind: str, path: str | os.PathLike[str], **options: Any) -> Backend:
    """Load a model file with the backend a ClassifierVersion names ("keras", "deepoc", "onnx")."""
    if kind == "keras":
        from .keras import KerasBackend

        return KerasBackend.load(path, **options)
    if kind == "deepoc":
        from .deepoc import DeepOCBackend

        return DeepOCBackend.load(path, **options)
    if kind == "onnx":
        from .onnx import OnnxBackend

        return OnnxBackend.load(path, **options)
    raise ValueError(f"unknown backend {kind!r}; expected one of {', '.join(BACKEND_KINDS)}")
