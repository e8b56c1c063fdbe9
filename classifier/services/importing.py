"""Importing trained classifiers into the registry: Keras files, DEEP-OC model folders, ONNX.

Each import loads the model once with the engine and runs it on a zero batch of the size its
preprocessing produces, so a broken or mismatched file is refused here, with a message saying
what is wrong, rather than failing later in an inference worker. Nothing is stored unless the
whole import succeeds.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from django.db import transaction

from classifier.engine.deepoc_format import DeepOCFormatError, DeepOCModel, read_deepoc_model
from classifier.engine.preprocessing import PreprocessSpec
from classifier.models import ClassifierVersion
from classifier.services.registry import RegistryError, version_activate, version_register
from observations.models import Campaign

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
ONNX_SUFFIXES = (".onnx",)
DEFAULT_IMAGE_SIZE = 299  # Xception's


# -- reading the files that come with a model --------------------------------------------------


def labels_read(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a labels file: one per line, in output order; blank lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"No labels file at {path}.", code="labels_missing", field="labels")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(
            f"Cannot read the labels file {path.name}: {exc}",
            code="labels_unreadable",
            field="labels",
        ) from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise RegistryError(
            f"The labels file {path.name} is empty.", code="labels_missing", field="labels"
        )
    repeated = sorted(label for label, count in Counter(labels).items() if count > 1)
    if repeated:
        raise RegistryError(
            f"The labels file {path.name} repeats {', '.join(repeated[:5])}.",
            code="labels_not_unique",
            field="labels",
        )
    return labels


def preprocessing_read(path: str | os.PathLike[str]) -> tuple[PreprocessSpec, list[str] | None]:
    """A preprocessing JSON file: a PreprocessSpec dict, plus an optional "labels" list.

    For example scivision's plankton model: `{"image_size": 256, "mode": "unit", "resize": "squash"}`.
    """
    path = Path(path)
    if not path.is_file():
        raise RegistryError(
            f"No preprocessing file at {path}.", code="preprocessing_missing", field="preprocessing"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(
            f"Cannot read {path.name} as JSON: {exc}",
            code="preprocessing_invalid",
            field="preprocessing",
        ) from None
    if not isinstance(data, dict):
        raise RegistryError(
            f"{path.name} must hold a JSON object such as "
            '{"image_size": 256, "mode": "unit", "resize": "squash"}.',
            code="preprocessing_invalid",
            field="preprocessing",
        )
    labels = data.pop("labels", None)
    if labels is not None and (
        not isinstance(labels, list)
        or not all(isinstance(label, str) and label.strip() for label in labels)
    ):
        raise RegistryError(
            f'{path.name}: "labels" must be a list of class names.',
            code="preprocessing_invalid",
            field="preprocessing",
        )
    try:
        spec = PreprocessSpec.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise RegistryError(
            f"{path.name}: {exc}", code="preprocessing_invalid", field="preprocessing"
        ) from None
    return spec, [label.strip() for label in labels] if labels is not None else None


# -- checking a model before it is registered -------------------------------------------------


def _check_tta(tta: str) -> None:
    if tta not in ClassifierVersion.TTA.values:
        raise RegistryError(
            f"Unknown test-time augmentation {tta!r}; expected one of {', '.join(ClassifierVersion.TTA.values)}.",
            code="invalid_tta",
            field="tta",
        )


def _check_file(path: Path, suffixes: Sequence[str], what: str) -> None:
    if not path.exists():
        raise RegistryError(f"No such file: {path}.", code="weights_missing", field="path")
    if not path.is_file():
        raise RegistryError(f"{path} is not a file.", code="weights_missing", field="path")
    if not path.name.lower().endswith(tuple(suffixes)):
        raise RegistryError(
            f"{path.name} is not {what} ({', '.join(suffixes)}).",
            code="unsupported_format",
            field="path",
        )


def _load(kind: str, path: Path):
    """The engine's backend for a model file; any failure becomes a RegistryError."""
    from classifier.engine.backends import load_backend

    try:
        return load_backend(kind, path)
    except Exception as exc:  # loaders raise many types (h5py, TensorFlow, onnxruntime)
        raise RegistryError(
            f"Cannot load {path.name} as a {kind} model: {exc}",
            code="model_unreadable",
            field="path",
        ) from None


def _fixed_input_size(backend) -> int | None:
    size = backend.input_size
    if size is None:
        return None
    height, width = size
    if height != width:
        raise RegistryError(
            f"The model expects {height}x{width} images; ParkWatch feeds square images.",
            code="input_size_mismatch",
            field="preprocessing",
        )
    return height


def _check_model(
    backend, *, labels: Sequence[str], spec: PreprocessSpec, labels_name: str, model_name: str
) -> None:
    """Class count and input size agree with the labels and the spec, and it predicts."""
    try:
        classes = backend.num_classes
    except RuntimeError:  # an ONNX model with a dynamic class axis: the zero batch tells
        classes = None

    def check_classes(count: int) -> None:
        if count != len(labels):
            raise RegistryError(
                f"The model outputs {count} classes but {labels_name} has {len(labels)} "
                f"{'line' if len(labels) == 1 else 'lines'}.",
                code="labels_mismatch",
                field="labels",
            )

    if classes is not None:
        check_classes(classes)
    size = _fixed_input_size(backend)
    if size is not None and size != spec.image_size:
        raise RegistryError(
            f"The model expects {size}x{size} images but the preprocessing says image_size "
            f"{spec.image_size}.",
            code="input_size_mismatch",
            field="preprocessing",
        )
    zeros = np.zeros((1, spec.image_size, spec.image_size, 3), dtype=np.float32)
    try:
        out = np.asarray(backend.predict(zeros))
    except Exception as exc:  # the model loads but cannot run: refuse it now, not in a worker
        raise RegistryError(
            f"{model_name} loads but fails on a {spec.image_size}x{spec.image_size} image: {exc}",
            code="model_unusable",
            field="path",
        ) from None
    if out.ndim != 2 or out.shape[0] != 1:
        raise RegistryError(
            f"{model_name} returned shape {out.shape} for one image; a classifier returns (1, classes).",
            code="model_unusable",
            field="path",
        )
    check_classes(out.shape[1])
    if not np.all(np.isfinite(out)):
        raise RegistryError(
            f"{model_name} returns NaN or infinite values for a blank image.",
            code="model_unusable",
            field="path",
        )


def _register(*, activate: bool, **fields: Any) -> ClassifierVersion:
    """version_register, then version_activate if asked, as one unit: all or nothing."""
    # Long file names and paths must not fail at the database (a traceback, not a message).
    fields["name"] = fields["name"][: ClassifierVersion._meta.get_field("name").max_length]
    fields["source"] = fields["source"][: ClassifierVersion._meta.get_field("source").max_length]
    with transaction.atomic():
        version = version_register(**fields)
        try:
            if activate:
                version = version_activate(version=version, reason="Activated on import.")
        except BaseException:
            version.weights.storage.delete(version.weights.name)
            raise
    return version


def _close(backend) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        close()


# -- one function per source ----------------------------------------------------------------


def classifier_import_keras(
    *,
    path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    campaign: Campaign,
    name: str | None = None,
    preprocessing: PreprocessSpec | None = None,
    tta: str = ClassifierVersion.TTA.NONE,
    activate: bool = False,
    architecture: str = "",
    licence: str = "",
    citation: str = "",
    description: str = "",
    create_missing_taxa: bool = False,
    created_by=None,
) -> ClassifierVersion:
    """Register a `.keras` / `.h5` classifier with its labels file (one class name per line).

    Without `preprocessing`, the Xception convention: centre crop, scaled to [-1, 1], at the
    model's own input size (299 px when the model accepts any size).
    """
    path = Path(path)
    _check_tta(tta)
    _check_file(path, KERAS_SUFFIXES, "a Keras model file")
    labels = labels_read(labels_path)
    backend = _load("keras", path)
    try:
        spec = preprocessing or PreprocessSpec.xception(
            _fixed_input_size(backend) or DEFAULT_IMAGE_SIZE
        )
        _check_model(
            backend,
            labels=labels,
            spec=spec,
            labels_name=Path(labels_path).name,
            model_name=path.name,
        )
        loaded_with = getattr(backend, "loaded_with", "keras")
    finally:
        _close(backend)
    return _register(
        activate=activate,
        name=name or path.stem,
        campaign=campaign,
        backend=ClassifierVersion.Backend.KERAS,
        weights_path=path,
        labels=labels,
        spec=spec,
        tta=tta,
        architecture=architecture[:100],
        source=str(path.resolve()),
        licence=licence,
        citation=citation,
        description=description,
        model_card={
            "format": "keras",
            "source": str(path.resolve()),
            "source_name": path.name,
            "labels_file": Path(labels_path).name,
            "loaded_with": loaded_with,
        },
        create_missing_taxa=create_missing_taxa,
        created_by=created_by,
    )


def classifier_import_deepoc(
    *,
    path: str | os.PathLike[str],
    campaign: Campaign,
    name: str | None = None,
    tta: str = ClassifierVersion.TTA.NONE,
    activate: bool = False,
    create_missing_taxa: bool = True,
    ckpt_name: str | None = None,
    licence: str = "",
    citation: str = "",
    description: str = "",
    created_by=None,
) -> ClassifierVersion:
    """Register a DEEP-OC image-classification-tf model, from its folder or a .tar.gz/.tar.xz.

    Its `ckpts/final_model.h5` is stored; the preprocessing comes from `conf/conf.json` (squash
    to its image_size, its preprocess_mode with the dataset mean/std RGB), the labels from
    `dataset_files/classes.txt` (taxa missing from the database are created unless told not
    to), the metrics from `stats/stats.json`; the rest is kept as the model card.
    """
    path = Path(path)
    _check_tta(tta)
    if not path.exists():
        raise RegistryError(
            f"No such file or folder: {path}.", code="weights_missing", field="path"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            deepoc = read_deepoc_model(path, ckpt_name=ckpt_name)
        except DeepOCFormatError as exc:
            raise RegistryError(str(exc), code="deepoc_invalid", field="path") from None
    notes = [str(warning.message) for warning in caught]
    try:
        backend = _load("keras", deepoc.weights_path)  # as version_load will load it
        try:
            _check_model(
                backend,
                labels=deepoc.labels,
                spec=deepoc.spec,
                labels_name="dataset_files/classes.txt",
                model_name=f"ckpts/{deepoc.weights_path.name}",
            )
        finally:
            _close(backend)
        source_name = _source_name(path)
        return _register(
            activate=activate,
            name=name or f"{source_name} ({deepoc.architecture})",
            campaign=campaign,
            backend=ClassifierVersion.Backend.DEEPOC,
            weights_path=deepoc.weights_path,
            labels=deepoc.labels,
            spec=deepoc.spec,
            tta=tta,
            architecture=deepoc.architecture[:100],
            metrics=deepoc.metrics,
            source=str(path.resolve()),
            licence=licence,
            citation=citation,
            description=description
            or f"Imported from the DEEP-OC image-classification-tf model {deepoc.root.name}.",
            model_card=_deepoc_card(deepoc, path, notes),
            create_missing_taxa=create_missing_taxa,
            created_by=created_by,
        )
    finally:
        deepoc.cleanup()


def classifier_import_onnx(
    *,
    path: str | os.PathLike[str],
    preprocessing_path: str | os.PathLike[str],
    campaign: Campaign,
    labels_path: str | os.PathLike[str] | None = None,
    name: str | None = None,
    tta: str = ClassifierVersion.TTA.NONE,
    activate: bool = False,
    architecture: str = "",
    licence: str = "",
    citation: str = "",
    description: str = "",
    create_missing_taxa: bool = False,
    created_by=None,
) -> ClassifierVersion:
    """Register an `.onnx` classifier with its preprocessing JSON (a PreprocessSpec dict).

    The labels come from `labels_path`, else from the JSON's "labels" list.
    """
    path = Path(path)
    _check_tta(tta)
    _check_file(path, ONNX_SUFFIXES, "an ONNX model file")
    spec, json_labels = preprocessing_read(preprocessing_path)
    if labels_path is not None:
        labels, labels_name = labels_read(labels_path), Path(labels_path).name
    elif json_labels:
        labels, labels_name = json_labels, f'{Path(preprocessing_path).name} "labels"'
    else:
        raise RegistryError(
            'An ONNX model needs its class names: a labels file, or a "labels" list in '
            f"{Path(preprocessing_path).name}.",
            code="labels_missing",
            field="labels",
        )
    backend = _load("onnx", path)
    try:
        _check_model(
            backend, labels=labels, spec=spec, labels_name=labels_name, model_name=path.name
        )
        layout = getattr(backend, "layout", "")
    finally:
        _close(backend)
    return _register(
        activate=activate,
        name=name or path.stem,
        campaign=campaign,
        backend=ClassifierVersion.Backend.ONNX,
        weights_path=path,
        labels=labels,
        spec=spec,
        tta=tta,
        architecture=architecture[:100],
        source=str(path.resolve()),
        licence=licence,
        citation=citation,
        description=description,
        model_card={
            "format": "onnx",
            "source": str(path.resolve()),
            "source_name": path.name,
            "preprocessing_file": Path(preprocessing_path).name,
            "input_layout": layout,
        },
        create_missing_taxa=create_missing_taxa,
        created_by=created_by,
    )


def _source_name(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tar.xz", ".tgz", ".txz", ".tar"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _deepoc_card(deepoc: DeepOCModel, path: Path, notes: list[str]) -> dict[str, Any]:
    card: dict[str, Any] = {
        "format": "DEEP-OC image-classification-tf",
        "source": str(path.resolve()),
        "source_name": path.name,
        "model_folder": deepoc.root.name,
        "architecture": deepoc.architecture,
        "weights_file": f"ckpts/{deepoc.weights_path.name}",
        "conf": deepoc.conf,
        "info": deepoc.info,
    }
    timestamp = deepoc.stats.get("timestamp")
    if timestamp:
        card["trained_at"] = timestamp
    if notes:
        card["import_warnings"] = notes
    return card
