"""ONNX models through ONNX Runtime (e.g. scivision's PyTorch ResNet-50 plankton classifier).

onnxruntime is imported inside functions only, like TensorFlow in the Keras backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import Backend, BackendLoadError, OutputResolver, check_batch, check_output_kind

LAYOUTS = ("auto", "NHWC", "NCHW")
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def detect_layout(shape: Sequence[Any]) -> str:
    """ "NCHW" when the second dimension is 3 channels and the last is not, else "NHWC"."""
    if len(shape) != 4:
        raise BackendLoadError(f"model input must be 4-D (an image batch), got shape {shape}")
    if _dim(shape[1]) == 3 and _dim(shape[3]) != 3:
        return "NCHW"
    return "NHWC"


class OnnxBackend(Backend):
    """An ONNX image classifier; takes NHWC batches and converts to NCHW if the model needs it.

    The input layout is read from the model's input shape (`layout="auto"`): (N, 3, H, W) is
    NCHW (PyTorch exports), anything else NHWC. Outputs that are not rows in [0, 1] summing to 1
    are treated as logits and get a softmax (`output="auto"`), decided once on the first batch.
    """

    kind = "onnx"

    def __init__(self, session: Any, *, layout: str = "auto", output: str = "auto") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
        check_output_kind(output)
        self._session = session
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1:
            raise BackendLoadError(
                f"model has {len(inputs)} inputs; a classifier needs exactly one"
            )
        self._input = inputs[0]
        self._output_name = outputs[0].name
        shape = list(self._input.shape)
        self.layout = detect_layout(shape) if layout == "auto" else layout
        if self.layout == "NCHW":
            h, w, c = _dim(shape[2]), _dim(shape[3]), _dim(shape[1])
        else:
            h, w, c = _dim(shape[1]), _dim(shape[2]), _dim(shape[3])
        if c not in (3, None):
            raise BackendLoadError(f"model input must have 3 channels, got shape {shape}")
        self._input_size = (h, w) if h is not None and w is not None else None
        # A model exported with a fixed batch size (often 1) is fed in chunks of that size.
        self._fixed_batch = _dim(shape[0])
        self._dtype = _DTYPES.get(self._input.type, np.float32)
        out_shape = list(outputs[0].shape)
        classes = _dim(out_shape[-1]) if out_shape else None
        self._num_classes = classes
        self._resolver = OutputResolver(output)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        layout: str = "auto",
        output: str = "auto",
        providers: Sequence[str] | None = None,
        intra_op_threads: int | None = None,
    ) -> OnnxBackend:
        """Open an .onnx file; CUDA is used when onnxruntime-gpu offers it, else the CPU."""
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise BackendLoadError(f"model file not found: {path}")
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider",) if p in available]
            providers.append("CPUExecutionProvider")
        options = ort.SessionOptions()
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        try:
            session = ort.InferenceSession(
                os.fspath(path), sess_options=options, providers=list(providers)
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendLoadError(f"could not load {path.name}: {exc}") from exc
        return cls(session, layout=layout, output=output)

    @property
    def num_classes(self) -> int:
        if self._num_classes is None:
            raise RuntimeError("the model's class count is dynamic; run predict once first")
        return self._num_classes

    @property
    def input_size(self) -> tuple[int, int] | None:
        return self._input_size

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self._session is None:
            raise RuntimeError("backend is closed")
        x = check_batch(batch, self._input_size)
        n = x.shape[0]
        if n == 0:
            return np.zeros((0, self._num_classes or 0), dtype=np.float32)
        if self.layout == "NCHW":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        x = x.astype(self._dtype, copy=False)
        step = self._fixed_batch or n
        if n % step:
            # Pad the last chunk to the fixed batch size; the padding rows are dropped below.
            pad = step - n % step
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), dtype=x.dtype)])
        chunks = [
            np.asarray(
                self._session.run([self._output_name], {self._input.name: x[i : i + step]})[0]
            )
            for i in range(0, len(x), step)
        ]
        raw = np.concatenate(chunks)[:n]
        raw = raw.reshape(n, -1)
        if self._num_classes is None:
            self._num_classes = raw.shape[1]
        return self._resolver(raw)

    def close(self) -> None:
        self._session = None
