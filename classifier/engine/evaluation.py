"""Measuring a classifier on a labelled split, calibrating it, and the promotion gate.

- `evaluate(model, samples, labels, spec)`: top-1, top-5, macro precision/recall/F1, per-class
  metrics, confusion matrix, NLL and calibration error, as an `Evaluation` (JSON with
  `to_dict`/`from_dict`). The model may be a `Classifier` (served exactly as in production:
  its TTA and temperature), a `Backend`, a Keras model, or a callable taking a preprocessed
  float32 batch; photos go through the serving preprocessing (`training.make_dataset`).
- `fit_temperature(probs_or_logits, labels)`: the calibration temperature minimising the
  negative log-likelihood on the validation split (stored with the version; serving applies it
  with `inference.apply_temperature`).
- `compare(candidate, active)`: promote only if the candidate's macro-F1 is higher and no
  class loses more than `max_recall_drop` of recall.

Macro averages are over the classes present in the evaluated labels (support > 0): a class
without test photos has no recall to average, and its false positives already lower the recall
of the classes they were taken from. Nothing here imports TensorFlow at module import.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .backends.base import Backend, looks_like_probabilities, softmax
from .inference import Classifier
from .preprocessing import PreprocessSpec

__all__ = [
    "ClassMetrics",
    "Evaluation",
    "GateDecision",
    "compare",
    "evaluate",
    "evaluation_from_probabilities",
    "expected_calibration_error",
    "fit_temperature",
    "nll",
    "predict_probabilities",
]

TOP_K = 5
ECE_BINS = 15
TEMPERATURE_BOUNDS = (0.05, 20.0)


# -- metrics -------------------------------------------------------------------------------


@dataclass
class ClassMetrics:
    index: int
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Evaluation:
    """Metrics of one model on one labelled split; see the module docstring.

    `confusion[i][j]` counts photos of class i predicted as class j (top-1). `top5` is the
    top-k accuracy with k = min(5, classes). `nll` is the mean negative log-likelihood and
    `ece` the expected calibration error (15 confidence bins) of the probabilities.
    """

    labels: list[str]
    n: int
    top1: float
    top5: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_f1: float
    nll: float
    ece: float
    per_class: list[ClassMetrics]
    confusion: list[list[int]]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def for_label(self, label: str) -> ClassMetrics:
        for item in self.per_class:
            if item.label == label:
                return item
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict that `from_dict` reads back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Rebuild from `to_dict` output; raises ValueError on a malformed dict."""
        if not isinstance(data, Mapping):
            raise ValueError(f"evaluation must be an object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        missing = sorted(known - set(data))
        unknown = sorted(set(data) - known)
        if missing or unknown:
            raise ValueError(
                "evaluation keys: "
                + "; ".join(
                    part
                    for part in (
                        f"missing {', '.join(missing)}" if missing else "",
                        f"unknown {', '.join(map(str, unknown))}" if unknown else "",
                    )
                    if part
                )
            )
        try:
            per_class = [ClassMetrics(**dict(item)) for item in data["per_class"]]
            values = dict(data)
            values["per_class"] = per_class
            values["labels"] = [str(x) for x in data["labels"]]
            values["confusion"] = [[int(v) for v in row] for row in data["confusion"]]
            evaluation = cls(**values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed evaluation: {exc}") from exc
        c = len(evaluation.labels)
        if len(per_class) != c or len(evaluation.confusion) != c:
            raise ValueError(f"malformed evaluation: expected {c} classes throughout")
        return evaluation


def _check_labels(labels: Sequence[int] | np.ndarray, n: int, classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"expected {n} labels, got shape {y.shape}")
    if n and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= classes):
        raise ValueError(f"labels must be class indices within 0..{classes - 1}")
    return y.astype(np.int64)


def _as_probabilities(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"expected (photos, classes) probabilities, got shape {p.shape}")
    return p


def nll(probs: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (natural log)."""
    p = _as_probabilities(probs)
    y = _check_labels(labels, len(p), p.shape[1])
    if not len(p):
        return float("nan")
    picked = np.clip(p[np.arange(len(p)), y], 1e-12, None)
    return float(-np.log(picked).mean())


def expected_calibration_error(
    probs: np.ndarray, labels: Sequence[int] | np.ndarray, bins: int = ECE_BINS
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    p = _as_probabilities(probs)
    y = _check_labels(labels, len(p), p.shape[1])
    if not len(p):
        return float("nan")
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / len(p))


def evaluation_from_probabilities(
    probs: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    label_names: Sequence[str] | None = None,
) -> Evaluation:
    """Metrics of (photos, classes) probabilities against the true class indices (at least
    one photo: every metric is a finite number, so the dict is strict JSON)."""
    p = _as_probabilities(probs)
    classes = p.shape[1]
    y = _check_labels(labels, len(p), classes)
    names = [str(i) for i in range(classes)] if label_names is None else list(label_names)
    if len(names) != classes:
        raise ValueError(f"{len(names)} label names for {classes} classes")
    n = len(p)
    if n == 0:
        raise ValueError("no photos to evaluate")
    predicted = p.argmax(axis=1)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    k = min(TOP_K, classes)
    # Rank of the true class; ties go to the lower index, as argmax and inference.top_k.
    true_p = p[np.arange(n), y][:, None]
    lower = np.arange(classes)[None, :] < y[:, None]
    rank = (p > true_p).sum(axis=1) + ((p == true_p) & lower).sum(axis=1)
    top1 = float((predicted == y).mean())
    topk = float((rank < k).mean())
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    precision = np.divide(tp, predicted_count, out=np.zeros(classes), where=predicted_count > 0)
    recall = np.divide(tp, support, out=np.zeros(classes), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(classes), where=denom > 0)
    present = support > 0  # at least one class, since n > 0
    macro_p = float(precision[present].mean())
    macro_r = float(recall[present].mean())
    macro_f1 = float(f1[present].mean())
    weighted_f1 = float((f1 * support).sum() / support.sum())
    per_class = [
        ClassMetrics(
            index=i,
            label=names[i],
            precision=float(precision[i]),
            recall=float(recall[i]),
            f1=float(f1[i]),
            support=int(support[i]),
        )
        for i in range(classes)
    ]
    return Evaluation(
        labels=names,
        n=n,
        top1=top1,
        top5=topk,
        macro_precision=macro_p,
        macro_recall=macro_r,
        macro_f1=macro_f1,
        weighted_f1=weighted_f1,
        nll=nll(p, y),
        ece=expected_calibration_error(p, y),
        per_class=per_class,
        confusion=confusion.tolist(),
    )


# -- prediction ----------------------------------------------------------------------------


def _is_keras_model(obj: Any) -> bool:
    if not any(c.__module__.startswith(("keras", "tf_keras")) for c in type(obj).__mro__):
        return False
    import keras

    return isinstance(obj, keras.Model)


def predict_probabilities(
    model: Classifier | Backend | Any | Callable[[np.ndarray], np.ndarray],
    samples: Sequence[Any],
    spec: PreprocessSpec,
    *,
    batch_size: int = 32,
) -> np.ndarray:
    """Probabilities (photos, classes) for photos (paths, bytes, or callables returning them).

    A `Classifier` decodes and predicts exactly as serving does (its spec, TTA and
    temperature; `spec` must be its spec). Anything else gets the serving preprocessing of
    `spec` through `training.make_dataset` (no augmentation): a Keras model runs through the
    keras backend's serving function, a `Backend` through `predict`, a plain callable is
    called with each float32 (B, S, S, 3) batch and must return probabilities or logits.
    """
    from .training import make_dataset

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    sources = list(samples)
    if isinstance(model, Classifier):
        if model.spec != spec:
            raise ValueError("spec differs from the classifier's own preprocessing spec")
        chunks = []
        for start in range(0, len(sources), batch_size):
            group = [s() if callable(s) else s for s in sources[start : start + batch_size]]
            chunks.append(model.predict_sources(group))
        if not chunks:
            return np.zeros((0, model.num_classes), dtype=np.float32)
        return np.concatenate(chunks)

    if _is_keras_model(model):
        from .backends.keras import KerasBackend

        model = KerasBackend(model)
    predict = model.predict if isinstance(model, Backend) else model
    if not callable(predict):
        raise TypeError(f"cannot evaluate a {type(model).__name__}")
    if not sources:
        raise ValueError("samples is empty")
    dataset = make_dataset([(s, 0) for s in sources], spec, batch_size=batch_size, training=False)
    outputs = []
    for x, _ in dataset:
        y = np.asarray(predict(x.numpy()), dtype=np.float64)
        if y.ndim != 2 or len(y) != x.shape[0]:
            raise RuntimeError(f"the model returned shape {y.shape} for {x.shape[0]} photos")
        outputs.append(y)
    probs = np.concatenate(outputs)
    if not looks_like_probabilities(probs):
        probs = softmax(probs)
    return probs.astype(np.float32)


def evaluate(
    model: Classifier | Backend | Any | Callable[[np.ndarray], np.ndarray],
    samples: Sequence[Any],
    labels: Sequence[int],
    spec: PreprocessSpec,
    *,
    batch_size: int = 32,
    label_names: Sequence[str] | None = None,
) -> Evaluation:
    """Predict `samples` (see `predict_probabilities`) and score them against `labels`.

    `label_names` (default: the classifier's labels, else "0", "1", ...) name the classes in
    the result; `compare` matches classes by these names.
    """
    if len(samples) != len(labels):
        raise ValueError(f"{len(samples)} photos but {len(labels)} labels")
    probs = predict_probabilities(model, samples, spec, batch_size=batch_size)
    if label_names is None and isinstance(model, Classifier):
        label_names = model.labels
    return evaluation_from_probabilities(probs, labels, label_names=label_names)


# -- calibration ---------------------------------------------------------------------------


def _logits(values: np.ndarray, kind: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"expected (photos, classes) logits or probabilities, got {x.shape}")
    if kind not in ("auto", "probabilities", "logits"):
        raise ValueError(f"kind must be auto, probabilities or logits; got {kind!r}")
    if kind == "probabilities" or (kind == "auto" and looks_like_probabilities(x)):
        # apply_temperature scales log-probabilities: the same thing for a softmax model.
        return np.log(np.clip(x, 1e-12, None))
    return x


def _nll_at(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float((log_norm - z[np.arange(len(z)), y]).mean())


def fit_temperature(
    logits_or_probs: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    kind: str = "auto",
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    tolerance: float = 1e-4,
) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) on a validation split.

    Probabilities (detected with `kind="auto"`: rows in [0, 1] summing to 1) are turned into
    log-probabilities, matching `inference.apply_temperature`. Golden-section search on log T
    within `bounds` (the NLL is unimodal in T). T > 1 softens an over-confident model.
    """
    x = _logits(logits_or_probs, kind)
    y = _check_labels(labels, len(x), x.shape[1])
    if not len(x):
        raise ValueError("fit_temperature needs at least one labelled prediction")
    low, high = bounds
    if not 0 < low < high:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = _nll_at(x, y, math.exp(c)), _nll_at(x, y, math.exp(d))
    while b - a > tolerance:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = _nll_at(x, y, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = _nll_at(x, y, math.exp(d))
    return float(math.exp((a + b) / 2))


# -- promotion gate ------------------------------------------------------------------------


@dataclass
class GateDecision:
    """Whether a candidate may replace the active model, and why (sentences for curators).

    `recall_drops` lists every class whose recall fell by more than the limit:
    {"label", "active_recall", "candidate_recall", "drop"}.
    """

    promote: bool
    reasons: list[str]
    recall_drops: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    candidate: Evaluation, active: Evaluation, *, max_recall_drop: float = 0.05
) -> GateDecision:
    """Promote only if the candidate's macro-F1 is higher than the active model's AND no class
    (matched by label name, present in both test splits) loses more than `max_recall_drop` of
    recall. Both should be evaluated on the same frozen test split."""
    if not 0 <= max_recall_drop <= 1:
        raise ValueError(f"max_recall_drop must be within [0, 1], got {max_recall_drop}")
    reasons: list[str] = []
    better = candidate.macro_f1 > active.macro_f1
    if better:
        reasons.append(
            f"macro-F1 {candidate.macro_f1:.3f} is higher than the active model's "
            f"{active.macro_f1:.3f}"
        )
    else:
        reasons.append(
            f"macro-F1 {candidate.macro_f1:.3f} is not higher than the active model's "
            f"{active.macro_f1:.3f}"
        )
    drops: list[dict[str, Any]] = []
    active_by_label = {m.label: m for m in active.per_class if m.support > 0}
    for metric in candidate.per_class:
        before = active_by_label.get(metric.label)
        if before is None or metric.support == 0:
            continue
        drop = before.recall - metric.recall
        if drop > max_recall_drop + 1e-9:
            drops.append(
                {
                    "label": metric.label,
                    "active_recall": before.recall,
                    "candidate_recall": metric.recall,
                    "drop": drop,
                }
            )
            reasons.append(
                f"recall of {metric.label!r} drops from {before.recall:.3f} to "
                f"{metric.recall:.3f} ({drop * 100:.1f} points, more than the "
                f"{max_recall_drop * 100:.1f} allowed)"
            )
    new = [m.label for m in candidate.per_class if m.support > 0 and m.label not in active_by_label]
    if new:
        reasons.append(f"classes without an active-model recall to compare: {', '.join(new)}")
    if candidate.n != active.n:
        reasons.append(
            f"the evaluations cover different numbers of photos ({candidate.n} and {active.n}): "
            "compare on the same test split"
        )
    return GateDecision(promote=better and not drops, reasons=reasons, recall_drops=drops)
