"""Decoding and preprocessing shared by serving and training.

One code path turns a photo into the network's input so that a model sees at serving time
exactly what it saw in training: `decode_image` (Pillow, EXIF orientation, RGB), a resize policy
and deterministic test-time augmentation views (`preprocess`), then a pixel normalisation mode
(`normalize_pixels`). `preprocess_array` runs the same code on a decoded uint8 array for the
training pipeline. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps

# Views produced per image by each test-time augmentation policy.
TTA_VIEWS: dict[str, int] = {"none": 1, "flip": 2, "ten-crop": 10}

# Side of each ten-crop square relative to the side of the square it is cut from. 0.875 is the
# usual "crop 224 from 256" ratio; DEEP-OC's unused standard ten-crop used 0.9.
TEN_CROP_PROPORTION = 0.875

MODES = ("xception", "tf", "caffe", "torch", "unit")
RESIZES = ("squash", "center_crop")
_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}
INTERPOLATIONS = tuple(_RESAMPLING)

# image-classification-tf's `model_utils.model_modes`: the preprocess mode it derives from the
# architecture name when conf.json leaves `preprocess_mode` empty.
DEEPOC_MODEL_MODES: dict[str, str] = {
    "DenseNet121": "torch",
    "DenseNet169": "torch",
    "DenseNet201": "torch",
    "InceptionResNetV2": "tf",
    "InceptionV3": "tf",
    "MobileNet": "tf",
    "NASNetLarge": "tf",
    "NASNetMobile": "tf",
    "Xception": "tf",
    "ResNet50": "caffe",
    "VGG16": "caffe",
    "VGG19": "caffe",
}

ImageSource = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO

_heif_registered = False


def _register_heif() -> None:
    global _heif_registered
    if _heif_registered:
        return
    try:
        import pillow_heif
    except ImportError:  # HEIC support is optional; other formats still work
        pass
    else:
        pillow_heif.register_heif_opener()
    _heif_registered = True


def decode_image(source: ImageSource, target_size: int | None = None) -> Image.Image:
    """Decode an image from bytes, a path or a binary file object into an upright RGB image.

    EXIF orientation is applied. With `target_size`, a JPEG is decoded at a reduced DCT scale
    (1/2, 1/4 or 1/8) when both sides stay at least `target_size`, which makes a 12-megapixel
    photo several times cheaper to decode; pass the smallest side the preprocessing needs
    (`PreprocessSpec.min_source_side`). Other formats are always decoded at full size.
    """
    if target_size is not None and target_size < 1:
        raise ValueError(f"target_size must be a positive integer, got {target_size}")
    _register_heif()
    if isinstance(source, bytes | bytearray | memoryview):
        fp: Any = io.BytesIO(bytes(source))
    elif isinstance(source, str | os.PathLike):
        fp = os.fspath(source)
    else:
        fp = source
    with Image.open(fp) as img:
        if target_size is not None and img.format == "JPEG":
            # draft() picks the largest scale that keeps both sides >= the requested box.
            img.draft("RGB", (target_size, target_size))
        upright = ImageOps.exif_transpose(img)
        return upright if upright.mode == "RGB" else upright.convert("RGB")


def _as_rgb_triplet(value: Any, name: str) -> tuple[float, float, float] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a list of 3 numbers or null, got {value!r}")
    items = list(value)
    if len(items) != 3:
        raise ValueError(f"{name} must have 3 values (R, G, B), got {len(items)}")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float | np.number):
            raise ValueError(f"{name} must contain numbers, got {item!r}")
        f = float(item)
        if not math.isfinite(f):
            raise ValueError(f"{name} must contain finite numbers, got {item!r}")
        out.append(f)
    return (out[0], out[1], out[2])


@dataclass(frozen=True)
class PreprocessSpec:
    """How a model expects its input: size, resize policy and pixel normalisation.

    `resize`:
      - "center_crop" (default for new models): the central square of the photo's short side,
        resized to `image_size`. Shapes keep their proportions, which matters for leaves and
        shells; the cost is losing the photo's edges on the long side.
      - "squash": the whole photo resized to a square, ignoring aspect ratio, as DEEP-OC's
        image-classification-tf does in training and serving. Use it for DEEP-OC imports.

    `mode`:
      - "xception": x / 127.5 - 1, range [-1, 1] (Keras `xception.preprocess_input`).
      - "tf", "caffe", "torch": DEEP-OC's `preprocess_batch` with the dataset mean/std.
      - "unit": x / 255, range [0, 1], no normalisation (scivision plankton ResNet-50).

    `interpolation` is Pillow's filter; Pillow antialiases when downscaling (OpenCV, which
    DEEP-OC trained with, does not), so DEEP-OC imports see slightly smoother pixels.
    """

    image_size: int
    mode: str = "xception"
    resize: str = "center_crop"
    mean_rgb: tuple[float, float, float] | None = None
    std_rgb: tuple[float, float, float] | None = None
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int | np.integer):
            raise ValueError(f"image_size must be an integer, got {size!r}")
        if not 1 <= int(size) <= 4096:
            raise ValueError(f"image_size must be between 1 and 4096, got {size}")
        object.__setattr__(self, "image_size", int(size))
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.resize not in RESIZES:
            raise ValueError(f"resize must be one of {', '.join(RESIZES)}; got {self.resize!r}")
        if self.interpolation not in _RESAMPLING:
            raise ValueError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}; "
                f"got {self.interpolation!r}"
            )
        mean = _as_rgb_triplet(self.mean_rgb, "mean_rgb")
        std = _as_rgb_triplet(self.std_rgb, "std_rgb")
        object.__setattr__(self, "mean_rgb", mean)
        object.__setattr__(self, "std_rgb", std)
        if self.mode in ("tf", "caffe", "torch") and mean is None:
            raise ValueError(f"mode {self.mode!r} needs mean_rgb (the training set's mean RGB)")
        if self.mode == "torch":
            if std is None:
                raise ValueError("mode 'torch' needs std_rgb (the training set's RGB std)")
            if min(std) <= 0:
                raise ValueError(f"std_rgb must be positive, got {list(std)}")
        if self.mode in ("xception", "unit") and (mean is not None or std is not None):
            raise ValueError(
                f"mode {self.mode!r} uses fixed scaling: mean_rgb/std_rgb must be null"
            )

    # -- factories -------------------------------------------------------------------------

    @classmethod
    def xception(cls, size: int = 299) -> PreprocessSpec:
        """New Xception models: 299 px centre crop, scaled to [-1, 1]."""
        return cls(image_size=size, mode="xception", resize="center_crop")

    @classmethod
    def scivision_plankton(cls) -> PreprocessSpec:
        """scivision's plankton ResNet-50: whole image to 256 px, [0, 1], no normalisation."""
        return cls(image_size=256, mode="unit", resize="squash")

    @classmethod
    def from_deepoc_conf(cls, conf: Mapping[str, Any]) -> PreprocessSpec:
        """The preprocessing an image-classification-tf model was trained with (its conf.json).

        Reads `model.image_size`, `model.preprocess_mode` (derived from `model.modelname` when
        empty, as image-classification-tf does) and `dataset.mean_RGB` / `dataset.std_RGB`.
        """
        if not isinstance(conf, Mapping):
            raise ValueError("conf must be a mapping (the parsed conf.json)")
        model = conf.get("model")
        dataset = conf.get("dataset") or {}
        if not isinstance(model, Mapping):
            raise ValueError("conf.json has no 'model' section")
        if not isinstance(dataset, Mapping):
            raise ValueError("conf.json 'dataset' section must be an object")
        size = model.get("image_size")
        if size is None:
            raise ValueError("conf.json model.image_size is empty")
        mode = model.get("preprocess_mode")
        if not mode:
            name = model.get("modelname")
            if name not in DEEPOC_MODEL_MODES:
                raise ValueError(
                    f"conf.json has no model.preprocess_mode and model.modelname {name!r} "
                    "is not an image-classification-tf architecture"
                )
            mode = DEEPOC_MODEL_MODES[name]
        if mode not in ("tf", "caffe", "torch"):
            raise ValueError(f"conf.json model.preprocess_mode {mode!r} is not tf, caffe or torch")
        try:
            return cls(
                image_size=size,
                mode=mode,
                resize="squash",
                mean_rgb=dataset.get("mean_RGB"),
                std_rgb=dataset.get("std_RGB"),
                interpolation="bilinear",
            )
        except ValueError as exc:
            raise ValueError(f"conf.json: {exc}") from exc

    # -- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict that `from_dict` reads back to an equal spec."""
        return {
            "image_size": self.image_size,
            "mode": self.mode,
            "resize": self.resize,
            "mean_rgb": list(self.mean_rgb) if self.mean_rgb is not None else None,
            "std_rgb": list(self.std_rgb) if self.std_rgb is not None else None,
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessSpec:
        """Build and validate a spec from `to_dict` output; raises ValueError on bad input."""
        if not isinstance(data, Mapping):
            raise ValueError(f"preprocessing spec must be an object, got {type(data).__name__}")
        known = {"image_size", "mode", "resize", "mean_rgb", "std_rgb", "interpolation"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown preprocessing spec keys: {', '.join(map(str, unknown))}")
        for required in ("image_size", "mode"):
            if required not in data:
                raise ValueError(f"preprocessing spec is missing {required!r}")
        return cls(**dict(data))

    # -- helpers ---------------------------------------------------------------------------

    def min_source_side(self, tta: str = "none") -> int:
        """Smallest short side a decoded photo needs so no view is upscaled (for decode_image)."""
        _check_tta(tta)
        if tta == "ten-crop":
            return math.ceil(self.image_size / TEN_CROP_PROPORTION)
        return self.image_size


def _check_tta(tta: str) -> None:
    if tta not in TTA_VIEWS:
        raise ValueError(f"tta must be one of {', '.join(TTA_VIEWS)}; got {tta!r}")


Box = tuple[float, float, float, float]


def _base_box(width: int, height: int, resize: str) -> Box:
    if resize == "squash":
        return (0.0, 0.0, float(width), float(height))
    side = min(width, height)
    # Integer offsets: an odd margin puts the extra pixel on the right/bottom rather than
    # shifting the sampling grid by half a pixel (which would blur every view).
    left = (width - side) // 2
    top = (height - side) // 2
    return (float(left), float(top), float(left + side), float(top + side))


def _crop_boxes(base: Box, tta: str) -> list[Box]:
    if tta != "ten-crop":
        return [base]
    x0, y0, x1, y1 = base
    w, h = x1 - x0, y1 - y0
    cw, ch = w * TEN_CROP_PROPORTION, h * TEN_CROP_PROPORTION
    return [
        (x0 + (w - cw) / 2, y0 + (h - ch) / 2, x0 + (w + cw) / 2, y0 + (h + ch) / 2),  # centre
        (x0, y0, x0 + cw, y0 + ch),  # top-left
        (x1 - cw, y0, x1, y0 + ch),  # top-right
        (x0, y1 - ch, x0 + cw, y1),  # bottom-left
        (x1 - cw, y1 - ch, x1, y1),  # bottom-right
    ]


def image_views(image: Image.Image, spec: PreprocessSpec, tta: str = "none") -> list[np.ndarray]:
    """The uint8 (size, size, 3) views of one image, before pixel normalisation.

    Order: "none" -> [view]; "flip" -> [view, mirror]; "ten-crop" -> centre, top-left,
    top-right, bottom-left, bottom-right, each followed by its horizontal mirror.
    """
    _check_tta(tta)
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    if width < 1 or height < 1:
        raise ValueError("image is empty")
    size = (spec.image_size, spec.image_size)
    resample = _RESAMPLING[spec.interpolation]
    views: list[np.ndarray] = []
    for box in _crop_boxes(_base_box(width, height, spec.resize), tta):
        view = np.asarray(image.resize(size, resample=resample, box=box), dtype=np.uint8)
        views.append(view)
        if tta != "none":
            # Mirroring the resized view is exact and cheaper than resampling a mirrored photo.
            views.append(np.ascontiguousarray(view[:, ::-1]))
    return views


def normalize_pixels(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Apply the spec's pixel normalisation to RGB values in [0, 255] (last axis = channels).

    "tf", "caffe" and "torch" follow image-classification-tf's `data_utils.preprocess_batch`:
    it subtracts the dataset `mean_RGB` from every mode, then "caffe" reverses the channels to
    BGR (no scaling), "tf" divides by 127.5 (so the range is not exactly [-1, 1]) and "torch"
    divides by the dataset `std_RGB`.
    """
    x = np.asarray(pixels, dtype=np.float32)
    if x.shape[-1:] != (3,):
        raise ValueError(f"expected RGB values with 3 channels on the last axis, got {x.shape}")
    if spec.mode == "xception":
        return x / np.float32(127.5) - np.float32(1.0)
    if spec.mode == "unit":
        return x / np.float32(255.0)
    assert spec.mean_rgb is not None  # enforced by PreprocessSpec
    x = x - np.asarray(spec.mean_rgb, dtype=np.float32)
    if spec.mode == "caffe":
        return np.ascontiguousarray(x[..., ::-1])
    if spec.mode == "tf":
        return x / np.float32(127.5)
    assert spec.std_rgb is not None
    return x / np.asarray(spec.std_rgb, dtype=np.float32)


def preprocess(
    images: Sequence[Image.Image], spec: PreprocessSpec, tta: str = "none"
) -> np.ndarray:
    """Network input for a list of images: float32 (len(images) * TTA_VIEWS[tta], S, S, 3).

    The views of image i are rows i * views ... (i + 1) * views - 1.
    """
    _check_tta(tta)
    views: list[np.ndarray] = []
    for image in images:
        views.extend(image_views(image, spec, tta))
    if not views:
        return np.zeros((0, spec.image_size, spec.image_size, 3), dtype=np.float32)
    return normalize_pixels(np.stack(views), spec)


def preprocess_array(array: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The single serving view of a decoded uint8 (H, W, 3) RGB array, float32 (S, S, 3).

    Identical to `preprocess([Image.fromarray(array)], spec)[0]`, so a training pipeline that
    decodes with `decode_image` and calls this sees exactly the serving input.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"expected a uint8 array of shape (H, W, 3), got {array.dtype} {array.shape}"
        )
    image = Image.fromarray(np.ascontiguousarray(array))
    return normalize_pixels(image_views(image, spec, "none")[0], spec)
