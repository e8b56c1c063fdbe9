"""DEEP-OC (image-classification-tf) model folders and dataset layouts.

A trained model, as image-classification-tf writes it under `models/<YYYY-MM-DD_HHMMSS>/`:

    ckpts/final_model.h5          full Keras 2 model, saved without optimizer state
    conf/conf.json                the resolved config: {"model": {"modelname", "image_size",
                                  "num_classes", "preprocess_mode"}, "dataset": {"mean_RGB",
                                  "std_RGB"}, "training": ..., "augmentation": ..., ...}
    dataset_files/classes.txt     one class name per line (required)
    dataset_files/info.txt        one free-text line per class (optional)
    stats/stats.json              {"epoch": [...], "training time (s)", "timestamp",
                                  + the Keras history: "loss", "acc", "val_acc", "lr", ...}

Its published tarballs (`phytoplankton.tar.xz`, ...) hold that folder, usually under one top
folder. The dataset layout is `images/` plus `dataset_files/{train,val,test}.txt` with lines
`relative/path.jpg <label index>` (test may omit labels), `classes.txt` and `info.txt`.

Reading these needs no TensorFlow: the model file is inspected with h5py only.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from .preprocessing import PreprocessSpec

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar")
DEFAULT_CKPT = "final_model.h5"
SPLITS = ("train", "val", "test")
# Extraction limits: a model tarball is a few hundred MB; these only stop runaway archives.
MAX_ARCHIVE_BYTES = 8 * 1024**3
MAX_ARCHIVE_MEMBERS = 200_000


class DeepOCFormatError(Exception):
    """A DEEP-OC model folder, archive or dataset is missing a file or is inconsistent."""


# -- model folders --------------------------------------------------------------------------


@dataclass
class DeepOCModel:
    """What an image-classification-tf model folder says about its model."""

    root: Path
    weights_path: Path
    spec: PreprocessSpec
    labels: list[str]
    info: list[str] | None
    metrics: dict[str, Any]
    conf: dict[str, Any]
    architecture: str
    num_classes: int
    stats: dict[str, Any] = field(default_factory=dict)
    temp_dir: Path | None = None  # set when extracted from an archive; see cleanup()

    def cleanup(self) -> None:
        """Remove the folder an archive was extracted to (no-op for a plain folder)."""
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None


def is_archive(path: str | os.PathLike[str]) -> bool:
    name = os.fspath(path).lower()
    return name.endswith(ARCHIVE_SUFFIXES)


def _reject(member: tarfile.TarInfo, why: str) -> DeepOCFormatError:
    return DeepOCFormatError(f"unsafe archive member {member.name!r}: {why}; refusing to extract")


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise _reject(member, "absolute path")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise _reject(member, "path goes outside the archive ('..')")
    if member.issym() or member.islnk():
        raise _reject(member, "links are not allowed")
    if not (member.isfile() or member.isdir()):
        raise _reject(member, "only regular files and folders are allowed")


def extract_archive(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_ARCHIVE_BYTES,
    max_members: int = MAX_ARCHIVE_MEMBERS,
) -> Path:
    """Safely extract a .tar(.gz|.xz) into `dest`: absolute paths, '..', links and special
    files are refused: the whole archive is rejected and a `dest` this call created is removed."""
    dest = Path(dest)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)

    def discard() -> None:
        if created:  # never delete a folder the caller already had
            shutil.rmtree(dest, ignore_errors=True)

    total = 0
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                _check_member(member)
                count += 1
                total += member.size
                if count > max_members:
                    raise DeepOCFormatError(f"archive has more than {max_members} members")
                if total > max_bytes:
                    raise DeepOCFormatError(f"archive expands to more than {max_bytes} bytes")
                # The "data" filter re-checks paths and drops permissions/ownership oddities.
                tar.extract(member, dest, filter="data")
    except DeepOCFormatError:
        discard()
        raise
    except (tarfile.TarError, EOFError, OSError) as exc:
        discard()
        raise DeepOCFormatError(f"cannot read archive {Path(archive).name}: {exc}") from exc
    return dest


def _is_model_root(path: Path) -> bool:
    return (path / "conf" / "conf.json").is_file() or (path / "ckpts").is_dir()


def find_model_root(path: str | os.PathLike[str]) -> Path:
    """The model folder itself, or the one model folder at most two levels below it
    (a timestamped `2019-02-18_112233/` top folder, or `models/<timestamp>/`)."""
    path = Path(path)
    if not path.is_dir():
        raise DeepOCFormatError(f"not a folder: {path}")
    if _is_model_root(path):
        return path
    candidates = [p for p in sorted(path.iterdir()) if p.is_dir() and _is_model_root(p)]
    if not candidates:
        candidates = [
            q
            for p in sorted(path.iterdir())
            if p.is_dir()
            for q in sorted(p.iterdir())
            if q.is_dir() and _is_model_root(q)
        ]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DeepOCFormatError(
            f"{path.name}: no DEEP-OC model folder found (expected ckpts/, conf/conf.json and "
            "dataset_files/classes.txt, possibly inside one timestamped folder)"
        )
    names = ", ".join(str(c.relative_to(path)) for c in candidates)
    raise DeepOCFormatError(f"{path.name}: several model folders ({names}); import one of them")


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DeepOCFormatError(f"{path.name} is not UTF-8 text: {exc}") from exc
    return [line.rstrip("\r") for line in text.split("\n")]


def _read_classes(path: Path) -> list[str]:
    if not path.is_file():
        raise DeepOCFormatError(f"missing dataset_files/{path.name} (the class names)")
    # Blank lines are skipped as numpy.genfromtxt (image-classification-tf's reader) does.
    labels = [line.strip() for line in _read_lines(path) if line.strip()]
    if not labels:
        raise DeepOCFormatError(f"dataset_files/{path.name} is empty")
    seen: set[str] = set()
    dupes = sorted({label for label in labels if label in seen or seen.add(label)})
    if dupes:
        raise DeepOCFormatError(f"dataset_files/{path.name} repeats class names: {dupes[:5]}")
    return labels


def _read_info(path: Path, n_classes: int, *, verbatim: bool) -> list[str] | None:
    if not path.is_file():
        return None
    lines = _read_lines(path)
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    if not verbatim:
        lines = [line.strip() for line in lines]
    if len(lines) != n_classes:
        # image-classification-tf drops a mismatched info.txt with a warning; so do we.
        warnings.warn(
            f"dataset_files/info.txt has {len(lines)} lines for {n_classes} classes; ignoring it",
            stacklevel=3,
        )
        return None
    return lines


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeepOCFormatError(f"cannot read {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise DeepOCFormatError(f"{what} must hold a JSON object")
    return data


class KerasH5Summary(NamedTuple):
    num_classes: int | None
    input_size: tuple[int, int] | None


def _layer_config(layer: Mapping[str, Any]) -> Mapping[str, Any]:
    cfg = layer.get("config")
    return cfg if isinstance(cfg, Mapping) else {}


def _inbound_name(layer: Mapping[str, Any]) -> str | None:
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return None
    node = nodes[0]
    if isinstance(node, list) and node and isinstance(node[0], list):  # Keras 2
        return node[0][0]
    if isinstance(node, Mapping):  # Keras 3: {"args": [{"config": {"keras_history": [...]}}]}
        for arg in node.get("args") or []:
            history = arg.get("config", {}).get("keras_history") if isinstance(arg, dict) else None
            if history:
                return history[0]
    return None


def summarise_keras_config(config: Mapping[str, Any]) -> KerasH5Summary:
    """Output class count and input (H, W) from a Keras model config, without TensorFlow."""
    inner = config.get("config", {})
    layers = inner.get("layers", []) if isinstance(inner, Mapping) else inner
    if not isinstance(layers, list) or not layers:
        return KerasH5Summary(None, None)
    names = [layer.get("name") or _layer_config(layer).get("name") for layer in layers]
    index = {name: i for i, name in enumerate(names)}

    outputs = inner.get("output_layers") if isinstance(inner, Mapping) else None
    if outputs and isinstance(outputs[0], str):
        outputs = [outputs]
    if outputs and len(outputs) > 1:
        raise DeepOCFormatError(f"model has {len(outputs)} outputs; a classifier needs one")
    i: int | None = index.get(outputs[0][0]) if outputs else len(layers) - 1
    units = None
    for _ in range(len(layers)):
        if i is None or i < 0:
            break
        cfg = _layer_config(layers[i])
        if "units" in cfg:
            units = int(cfg["units"])
            break
        # Softmax/Activation/Dropout after the Dense: step back to its input.
        prev = _inbound_name(layers[i])
        i = index.get(prev) if prev is not None else i - 1

    shape = None
    for layer in layers:
        cfg = _layer_config(layer)
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        if shape:
            break
    if not shape and isinstance(inner, Mapping):
        shape = inner.get("build_input_shape")
    size = None
    if shape and len(shape) == 4 and shape[1] and shape[2]:
        size = (int(shape[1]), int(shape[2]))
    return KerasH5Summary(units, size)


def inspect_keras_h5(path: str | os.PathLike[str]) -> KerasH5Summary:
    """Read the architecture stored in a Keras .h5 file (h5py only, no TensorFlow)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as fh:
            raw = fh.attrs.get("model_config")
    except OSError as exc:
        raise DeepOCFormatError(f"{path.name} is not a readable HDF5 model file: {exc}") from exc
    if raw is None:
        raise DeepOCFormatError(
            f"{path.name} holds no model architecture (weights only?); "
            "image-classification-tf saves full models with model.save()"
        )
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DeepOCFormatError(f"{path.name} has an unreadable model_config: {exc}") from exc
    return summarise_keras_config(config)


def summarise_stats(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Final-epoch figures from stats.json: epochs, training time and each history's last value."""
    metrics: dict[str, Any] = {}
    epochs = stats.get("epoch")
    if isinstance(epochs, list):
        metrics["epochs"] = len(epochs)
    seconds = stats.get("training time (s)")
    if isinstance(seconds, int | float):
        metrics["training_time_s"] = float(seconds)
    for key, value in stats.items():
        if key == "epoch" or not isinstance(value, list) or not value:
            continue
        last = value[-1]
        if isinstance(last, int | float) and not isinstance(last, bool):
            metrics[key] = float(last)
    return metrics


def read_deepoc_model(
    path: str | os.PathLike[str],
    *,
    extract_to: str | os.PathLike[str] | None = None,
    ckpt_name: str | None = None,
) -> DeepOCModel:
    """Read a DEEP-OC model folder or .tar.gz/.tar.xz archive and check it is consistent.

    An archive is extracted (safely) to `extract_to`, or to a temporary folder that
    `DeepOCModel.cleanup()` removes. Raises DeepOCFormatError naming what is wrong.
    """
    path = Path(path)
    temp_dir: Path | None = None
    if path.is_dir():
        search = path
    elif not path.exists():
        raise DeepOCFormatError(f"not found: {path}")
    elif not (path.is_file() and (is_archive(path) or tarfile.is_tarfile(path))):
        raise DeepOCFormatError(f"{path.name}: expected a model folder or a .tar.gz/.tar.xz")
    elif extract_to is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="deepoc-"))
        search = temp_dir
    else:
        search = Path(extract_to)
    try:
        if search is not path:
            extract_archive(path, search)
        model = _read_model_folder(find_model_root(search), ckpt_name)
    except BaseException:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    model.temp_dir = temp_dir
    return model


@contextmanager
def open_deepoc_model(path: str | os.PathLike[str], **kwargs: Any) -> Iterator[DeepOCModel]:
    """`read_deepoc_model` that removes any extracted files on exit."""
    model = read_deepoc_model(path, **kwargs)
    try:
        yield model
    finally:
        model.cleanup()


def _read_model_folder(root: Path, ckpt_name: str | None) -> DeepOCModel:
    conf_path = root / "conf" / "conf.json"
    if not conf_path.is_file():
        raise DeepOCFormatError(f"{root.name}: missing conf/conf.json (the training config)")
    conf = _read_json(conf_path, "conf/conf.json")
    model_conf = conf.get("model")
    if not isinstance(model_conf, dict):
        raise DeepOCFormatError("conf/conf.json has no 'model' section")

    testing = conf.get("testing") if isinstance(conf.get("testing"), dict) else {}
    ckpt = ckpt_name or testing.get("ckpt_name") or DEFAULT_CKPT
    weights = root / "ckpts" / ckpt
    if not weights.is_file():
        present = (
            sorted(p.name for p in (root / "ckpts").glob("*")) if (root / "ckpts").is_dir() else []
        )
        hint = f" (ckpts/ holds: {', '.join(present)}; pass ckpt_name)" if present else ""
        raise DeepOCFormatError(f"{root.name}: missing ckpts/{ckpt}{hint}")

    labels = _read_classes(root / "dataset_files" / "classes.txt")
    info = _read_info(root / "dataset_files" / "info.txt", len(labels), verbatim=False)

    declared = model_conf.get("num_classes")
    if declared is not None and declared != len(labels):
        raise DeepOCFormatError(
            f"conf.json model.num_classes is {declared} but dataset_files/classes.txt "
            f"lists {len(labels)} classes"
        )
    summary = inspect_keras_h5(weights)
    if summary.num_classes is not None and summary.num_classes != len(labels):
        raise DeepOCFormatError(
            f"ckpts/{ckpt} outputs {summary.num_classes} classes but dataset_files/classes.txt "
            f"lists {len(labels)}"
        )

    conf_for_spec = conf
    if model_conf.get("image_size") is None and summary.input_size is not None:
        # image-classification-tf falls back to the architecture's default size; the saved
        # model's input tells us which it was.
        conf_for_spec = {**conf, "model": {**model_conf, "image_size": summary.input_size[0]}}
    try:
        spec = PreprocessSpec.from_deepoc_conf(conf_for_spec)
    except ValueError as exc:
        raise DeepOCFormatError(str(exc)) from exc
    if summary.input_size is not None and summary.input_size != (spec.image_size,) * 2:
        raise DeepOCFormatError(
            f"conf.json model.image_size is {spec.image_size} but ckpts/{ckpt} expects "
            f"{summary.input_size[0]}x{summary.input_size[1]} images"
        )

    stats_path = root / "stats" / "stats.json"
    stats = _read_json(stats_path, "stats/stats.json") if stats_path.is_file() else {}
    return DeepOCModel(
        root=root,
        weights_path=weights,
        spec=spec,
        labels=labels,
        info=info,
        metrics=summarise_stats(stats),
        conf=conf,
        architecture=str(model_conf.get("modelname") or "unknown"),
        num_classes=len(labels),
        stats=stats,
    )


# -- datasets ------------------------------------------------------------------------------


class DeepOCSample(NamedTuple):
    path: str  # relative to the images folder, with "/" separators
    label: int | None  # class index; None in an unlabelled test split


@dataclass
class DeepOCDataset:
    """An image-classification-tf dataset: class list, optional info, and split files."""

    root: Path
    images_dir: Path
    classes: list[str]
    info: list[str] | None
    splits: dict[str, list[DeepOCSample]]

    def image_path(self, sample: DeepOCSample) -> Path:
        return self.images_dir / sample.path

    def missing_images(self) -> list[str]:
        """Relative paths listed in a split with no file under images_dir."""
        return [
            s.path
            for split in self.splits.values()
            for s in split
            if not self.image_path(s).is_file()
        ]


def _check_relative(path: str, where: str) -> str:
    if not path or path != path.strip():
        raise DeepOCFormatError(f"{where}: empty path or surrounding spaces in {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise DeepOCFormatError(f"{where}: image paths must be relative to images/: {path!r}")
    return path


def _read_split(path: Path, n_classes: int) -> list[DeepOCSample]:
    samples: list[DeepOCSample] = []
    labelled: bool | None = None
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        where = f"dataset_files/{path.name} line {number}"
        parts = line.rsplit(maxsplit=1)
        label: int | None = None
        rel = line.strip()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            rel, label = parts[0], int(parts[1])
            if not 0 <= label < n_classes:
                raise DeepOCFormatError(
                    f"{where}: label {label} is outside 0..{n_classes - 1} (classes.txt)"
                )
        if labelled is None:
            labelled = label is not None
        elif labelled != (label is not None):
            raise DeepOCFormatError(f"{where}: some lines have a label and others do not")
        samples.append(DeepOCSample(_check_relative(rel, where), label))
    return samples


def read_deepoc_dataset(
    root: str | os.PathLike[str], *, images_dir: str | os.PathLike[str] | None = None
) -> DeepOCDataset:
    """Read `root/dataset_files/` (train.txt and classes.txt required; val.txt, test.txt and
    info.txt optional) with images under `root/images/` unless `images_dir` is given."""
    root = Path(root)
    splits_dir = root / "dataset_files"
    if not splits_dir.is_dir():
        raise DeepOCFormatError(f"{root}: missing dataset_files/ folder")
    classes = _read_classes(splits_dir / "classes.txt")
    info = _read_info(splits_dir / "info.txt", len(classes), verbatim=True)
    if not (splits_dir / "train.txt").is_file():
        raise DeepOCFormatError(f"{root}: missing dataset_files/train.txt")
    splits = {
        name: _read_split(splits_dir / f"{name}.txt", len(classes))
        for name in SPLITS
        if (splits_dir / f"{name}.txt").is_file()
    }
    if any(s.label is None for s in splits["train"]):
        raise DeepOCFormatError("dataset_files/train.txt: every line needs a label")
    return DeepOCDataset(
        root=root,
        images_dir=Path(images_dir) if images_dir is not None else root / "images",
        classes=classes,
        info=info,
        splits=splits,
    )


def _lines_text(lines: Sequence[str], what: str) -> str:
    for line in lines:
        if "\n" in line or "\r" in line:
            raise DeepOCFormatError(f"{what}: entries cannot contain line breaks: {line!r}")
    return "".join(f"{line}\n" for line in lines)


def write_deepoc_dataset(
    root: str | os.PathLike[str],
    *,
    classes: Sequence[str],
    splits: Mapping[str, Sequence[DeepOCSample | tuple[str, int | None]]],
    info: Sequence[str] | None = None,
    images: Mapping[str, bytes | str | os.PathLike[str]] | None = None,
) -> DeepOCDataset:
    """Write the image-classification-tf layout under `root` and return it read back.

    Files are UTF-8 with "\\n" line ends, one entry per line (what numpy.savetxt writes), so
    reading a dataset and writing it again gives byte-identical files. `images` maps relative
    paths to file contents or to source files to copy into `root/images/`.
    """
    root = Path(root)
    if not classes:
        raise DeepOCFormatError("a dataset needs at least one class")
    if len(set(classes)) != len(classes):
        raise DeepOCFormatError("class names must be unique")
    if info is not None and len(info) != len(classes):
        raise DeepOCFormatError(f"info has {len(info)} entries for {len(classes)} classes")
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise DeepOCFormatError(f"unknown split names {unknown}; use train, val, test")
    if "train" not in splits:
        raise DeepOCFormatError("a dataset needs a train split")

    texts: dict[str, str] = {"classes.txt": _lines_text(classes, "classes")}
    if info is not None:
        texts["info.txt"] = _lines_text(info, "info")
    for name in SPLITS:
        if name not in splits:
            continue
        lines = []
        where = f"{name} split"
        for raw in splits[name]:
            sample = DeepOCSample(*raw)
            _check_relative(sample.path, where)
            if any(ch.isspace() for ch in sample.path):
                # image-classification-tf splits lines on spaces.
                raise DeepOCFormatError(
                    f"{where}: image paths cannot contain spaces: {sample.path!r}"
                )
            if sample.label is None:
                if name == "train":
                    raise DeepOCFormatError("train split: every sample needs a label")
                lines.append(sample.path)
            else:
                if not 0 <= int(sample.label) < len(classes):
                    raise DeepOCFormatError(f"{where}: label {sample.label} is not a class index")
                lines.append(f"{sample.path} {int(sample.label)}")
        texts[f"{name}.txt"] = _lines_text(lines, where)

    splits_dir = root / "dataset_files"
    splits_dir.mkdir(parents=True, exist_ok=True)
    for filename, text in texts.items():
        (splits_dir / filename).write_bytes(text.encode("utf-8"))
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for rel, content in (images or {}).items():
        target = images_dir / _check_relative(rel, "images")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            shutil.copyfile(content, target)
    return read_deepoc_dataset(root)
