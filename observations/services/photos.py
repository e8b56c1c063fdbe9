"""Checking an uploaded photo and making the public copies of it.

The content decides the type, never the name or the Content-Type header. Everything is checked
before anything is stored, so a bad photo leaves no trace.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from observations.errors import PhotoRejected
from observations.services.exif import PhotoMetadata, read_metadata

register_heif_opener()

# Pillow format name -> (file extension, what a user calls it).
ACCEPTED_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "HEIF": ".heic"}
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
PUBLIC_JPEG_QUALITY = 85

# The perceptual hash: the low 8x8 frequencies of a 32x32 greyscale DCT-II against their median,
# as imagehash.phash computes it, with the DCT as a matrix product: numpy only, because SciPy's
# FFT (what imagehash calls) would add ~35 MB and an import to every web process.
_PHASH_SIDE, _PHASH_BITS_SIDE = 32, 8
_PHASH_DCT = 2 * np.cos(
    np.pi
    * np.arange(_PHASH_BITS_SIDE)[:, None]
    * (2 * np.arange(_PHASH_SIDE)[None, :] + 1)
    / (2 * _PHASH_SIDE)
)


@dataclass
class InspectedPhoto:
    """A photo that passed every check, with its public derivatives ready to store."""

    upload: object
    format: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    phash: int
    metadata: PhotoMetadata
    public_jpeg: bytes
    thumbnail_jpeg: bytes

    @property
    def extension(self) -> str:
        return ACCEPTED_FORMATS[self.format]

    @property
    def phash_hex(self) -> str:
        return f"{self.phash:016x}"

    @property
    def phash_bands(self) -> tuple[int, int, int, int]:
        return phash_bands(self.phash)


def perceptual_hash(image: Image.Image) -> int:
    """64-bit DCT perceptual hash of a picture, bit for bit imagehash.phash(image) as an int."""
    side = (_PHASH_SIDE, _PHASH_SIDE)
    pixels = np.asarray(image.convert("L").resize(side, Image.Resampling.LANCZOS), np.float64)
    # Rounded so that coefficients zero in exact arithmetic (a flat picture) compare as zero.
    low = np.round(_PHASH_DCT @ pixels @ _PHASH_DCT.T, 6)
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phash_bands(value: int) -> tuple[int, int, int, int]:
    return tuple((value >> shift) & 0xFFFF for shift in (48, 32, 16, 0))


def sniff_format(head: bytes) -> str | None:
    """The Pillow format an upload's first bytes announce, if it is one ParkWatch accepts."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "HEIF"
    return None


def describe_format(head: bytes) -> str:
    """A name for a refused file, so the message helps ('a GIF image', 'a PDF document')."""
    stripped = head.lstrip()
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF image"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if stripped.startswith((b"<svg", b"<?xml")) or b"<svg" in head[:512]:
        return "an SVG or XML file"
    if head.startswith(b"BM"):
        return "a BMP image"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "a TIFF image"
    if head[4:8] == b"ftyp":
        return f"a '{head[8:12].decode('ascii', 'replace')}' media file"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive"
    if head and all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head[:256]):
        return "a text file"
    return "not an image ParkWatch can read"


def photo_inspect(upload, *, index: int = 0, public_max_side: int | None = None) -> InspectedPhoto:
    """Check one uploaded file and make its public copy and thumbnail; raise PhotoRejected.

    `public_max_side` overrides the public copy's long side (identify sends smaller copies).
    """
    size = upload.size
    if size is None:
        upload.seek(0, io.SEEK_END)
        size = upload.tell()
    if size == 0:
        raise PhotoRejected("the file is empty.", code="empty_photo", index=index)
    if size > settings.PHOTO_MAX_BYTES:
        raise PhotoRejected(
            f"the file is {size / 2**20:.1f} MiB; at most "
            f"{settings.PHOTO_MAX_BYTES / 2**20:.0f} MiB are accepted.",
            code="photo_too_large",
            index=index,
        )

    upload.seek(0)
    head = upload.read(64)
    fmt = sniff_format(head)
    if fmt is None:
        raise PhotoRejected(
            f"this is {describe_format(head)}; only JPEG, PNG, WebP and HEIC/HEIF photos are accepted.",
            code="unsupported_type",
            index=index,
        )

    upload.seek(0)
    digest = hashlib.sha256()
    for chunk in (
        upload.chunks() if hasattr(upload, "chunks") else iter(lambda: upload.read(1 << 20), b"")
    ):
        digest.update(chunk)
    upload.seek(0)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(upload, formats=[fmt])
            width, height = image.size
            if width * height > settings.PHOTO_MAX_PIXELS:
                raise PhotoRejected(
                    f"{width}x{height} is {width * height / 1e6:.0f} megapixels; at most "
                    f"{settings.PHOTO_MAX_PIXELS / 1e6:.0f} are accepted.",
                    code="too_many_pixels",
                    index=index,
                )
            metadata = read_metadata(image)
            public, thumbnail = _derivatives(
                image, fmt, public_max_side or settings.PHOTO_PUBLIC_MAX_SIDE
            )
    except PhotoRejected:
        raise
    except RuntimeError as exc:
        # libheif (through pillow-heif) refuses what it cannot or will not decode this way.
        if fmt != "HEIF":
            raise
        bomb = "security limit" in str(exc).lower()
        raise PhotoRejected(
            "the image claims far more pixels than it could hold (a decompression bomb)."
            if bomb
            else "the file is damaged or truncated and cannot be read as Heif.",
            code="too_many_pixels" if bomb else "corrupt_photo",
            index=index,
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected(
            "the image claims far more pixels than it could hold (a decompression bomb); at most "
            f"{settings.PHOTO_MAX_PIXELS / 1e6:.0f} megapixels are accepted.",
            code="too_many_pixels",
            index=index,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        # Pillow's "cannot identify" names the upload object (and the client's file name).
        reason = "its header is invalid" if isinstance(exc, UnidentifiedImageError) else exc
        raise PhotoRejected(
            f"the file is damaged or truncated and cannot be read as {fmt.title()} ({reason}).",
            code="corrupt_photo",
            index=index,
        ) from None
    finally:
        upload.seek(0)

    if metadata.orientation in (5, 6, 7, 8):
        width, height = height, width
    buffer_public, buffer_thumb = io.BytesIO(), io.BytesIO()
    public.save(buffer_public, "JPEG", quality=PUBLIC_JPEG_QUALITY)
    thumbnail.save(buffer_thumb, "JPEG", quality=80)
    return InspectedPhoto(
        upload=upload,
        format=fmt,
        width=width,
        height=height,
        size_bytes=size,
        sha256=digest.hexdigest(),
        phash=perceptual_hash(thumbnail),
        metadata=metadata,
        public_jpeg=buffer_public.getvalue(),
        thumbnail_jpeg=buffer_thumb.getvalue(),
    )


def _derivatives(image: Image.Image, fmt: str, max_side: int) -> tuple[Image.Image, Image.Image]:
    """Decode the whole image (so truncation shows) and make the public copy and thumbnail.

    The copies are new images re-encoded from pixels: no EXIF, GPS or other metadata survives.
    """
    if fmt == "JPEG":
        # Decode at a reduced DCT scale when the photo is far larger than the public copy;
        # every byte of entropy-coded data is still read, so truncation is still detected.
        image.draft("RGB", (max_side, max_side))
    image.load()
    oriented = ImageOps.exif_transpose(image)
    if oriented.mode in ("RGBA", "LA", "PA") or (
        oriented.mode == "P" and "transparency" in oriented.info
    ):
        rgba = oriented.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        oriented = flat
    else:
        oriented = oriented.convert("RGB")
    public = oriented.copy()
    public.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    thumbnail = public.copy()
    side = settings.PHOTO_THUMBNAIL_SIDE
    thumbnail.thumbnail((side, side), Image.Resampling.LANCZOS)
    # Only pixels leave this function; .info (EXIF, XMP, comments) stays behind.
    public.info = {}
    thumbnail.info = {}
    return public, thumbnail
