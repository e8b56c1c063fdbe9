"""Photos made in memory with Pillow, with real EXIF GPS, time and orientation where asked."""

from __future__ import annotations

import io
from datetime import datetime
from fractions import Fraction

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import ExifTags, Image, ImageDraw

GPS = ExifTags.GPS


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    value = abs(value)
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    seconds = Fraction(round((minutes_full - minutes) * 60 * 10000), 10000)
    return Fraction(degrees), Fraction(minutes), seconds


def make_exif(
    *,
    gps: tuple[float, float] | None = None,
    altitude: float | None = None,
    accuracy: float | None = None,
    taken_at: datetime | None = None,
    offset: str | None = None,
    orientation: int | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if taken_at is not None:
        stamp = taken_at.strftime("%Y:%m:%d %H:%M:%S")
        exif[ExifTags.Base.DateTime] = stamp
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        exif_ifd[ExifTags.Base.DateTimeOriginal] = stamp
        if offset is not None:
            exif_ifd[ExifTags.Base.OffsetTimeOriginal] = offset
    if gps is not None:
        latitude, longitude = gps
        gps_ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps_ifd[GPS.GPSVersionID] = b"\x02\x03\x00\x00"
        gps_ifd[GPS.GPSLatitudeRef] = "N" if latitude >= 0 else "S"
        gps_ifd[GPS.GPSLatitude] = _dms(latitude)
        gps_ifd[GPS.GPSLongitudeRef] = "E" if longitude >= 0 else "W"
        gps_ifd[GPS.GPSLongitude] = _dms(longitude)
        if altitude is not None:
            gps_ifd[GPS.GPSAltitudeRef] = b"\x00" if altitude >= 0 else b"\x01"
            gps_ifd[GPS.GPSAltitude] = Fraction(abs(altitude)).limit_denominator(100)
        if accuracy is not None:
            gps_ifd[GPS.GPSHPositioningError] = Fraction(accuracy).limit_denominator(100)
    return exif


def make_image(width: int = 640, height: int = 480, *, seed: int = 0) -> Image.Image:
    """A picture with structure (so perceptual hashes differ between seeds)."""
    image = Image.new("RGB", (width, height), ((seed * 53) % 256, (seed * 97) % 256, 90))
    draw = ImageDraw.Draw(image)
    for i in range(8):
        x = (seed * 37 + i * 71) % width
        y = (seed * 59 + i * 43) % height
        draw.ellipse(
            (x, y, x + width // 4, y + height // 4),
            fill=((i * 40) % 256, 200 - i * 20, (seed * 13 + i * 30) % 256),
        )
    draw.rectangle((0, 0, width // 3, height // 5), fill=(250, 250, 250))  # marks "top left"
    return image


def make_photo(
    fmt: str = "JPEG",
    *,
    width: int = 640,
    height: int = 480,
    seed: int = 0,
    image: Image.Image | None = None,
    **exif_kwargs,
) -> bytes:
    image = image or make_image(width, height, seed=seed)
    buffer = io.BytesIO()
    save_kwargs = {}
    if exif_kwargs:
        save_kwargs["exif"] = make_exif(**exif_kwargs)
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
        save_kwargs["quality"] = 80
    image.save(buffer, fmt, **save_kwargs)
    return buffer.getvalue()


def upload(
    data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"
) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def photo_upload(fmt: str = "JPEG", name: str | None = None, **kwargs) -> SimpleUploadedFile:
    extension = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}[fmt]
    content_type = {
        "JPEG": "image/jpeg",
        "PNG": "image/png",
        "WEBP": "image/webp",
        "HEIF": "image/heic",
    }[fmt]
    return upload(make_photo(fmt, **kwargs), name or f"photo.{extension}", content_type)
