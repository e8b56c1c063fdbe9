"""Hostile uploads: every one is answered by a 4xx in the error format, or accepted whole.

Seeded loops of files a careless or malicious client sends to `POST /api/v1/observations/`,
`POST /api/v1/identify/` and the upload page: random bytes, photos cut short at many points,
bit flips and mangled headers, decompression bombs, absurd EXIF, polyglots, lying names and
content types, empty files, too many photos, oversized fields. None may answer a 5xx. A file that really is a photo may
be accepted; then its public copy must be a clean re-encoding (no EXIF, no payload). After each
batch the storage holds whole sightings only: every sighting has its photos, every photo its
three files, and no file lies in the media folders without a photo row.
"""

from __future__ import annotations

import io
import os
import random
import re
import struct
import zlib
from dataclasses import dataclass, field

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational
from rest_framework.test import APIClient

from observations.models import Observation, Photo
from tests.conftest import ORDESA, stored_files
from tests.images import make_image, make_photo

pytestmark = pytest.mark.django_db

SEED = 20260601
OBSERVATIONS = "/api/v1/observations/"
IDENTIFY = "/api/v1/identify/"
GPS = ExifTags.GPS
WHERE_AND_WHEN = {
    "latitude": ORDESA[0],
    "longitude": ORDESA[1],
    "observed_at": "2026-06-01T10:30:00+02:00",
}
# Bytes that must never reach a public copy: the payloads the polyglots carry.
PAYLOAD_MARKERS = [b"PK\x03\x04", b"<?php", b"<script", b"<html", b"fuzz-payload"]
STORED_NAME = re.compile(
    r"^(originals|photos|thumbnails)/\d{4}/\d{2}/[0-9a-f]{32}-\d(-thumb)?\.\w+$"
)


@dataclass
class Case:
    """One request: its files (bytes, name, content type) and form fields."""

    name: str
    files: list[tuple[bytes, str, str]]
    fields: dict = field(default_factory=lambda: dict(WHERE_AND_WHEN))
    # "refused": a 4xx, with this error code when given; "accepted": 201; None: either.
    expect: str | None = None
    error: str | None = None


# -- files --------------------------------------------------------------------------------------


def photo(fmt: str = "JPEG", seed: int = 0, width: int = 96, height: int = 64, **exif) -> bytes:
    return make_photo(fmt, width=width, height=height, seed=seed, **exif)


def jpeg_with_exif(exif: Image.Exif, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    make_image(96, 64, seed=seed).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + payload) if crc is None else crc
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_claiming(width: int, height: int, *, ihdr_crc: int | None = None) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 256)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr, crc=ihdr_crc)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to claim another size."""
    data = bytearray(photo())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    """An extended WebP (VP8X) whose canvas claims another size."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + photo("WEBP")[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def heic_claiming(width: int, height: int, *, real: tuple[int, int] = (96, 64)) -> bytes:
    """A real HEIC whose image spatial extents property (ispe) claims another size."""
    data = bytearray(photo("HEIF", width=real[0], height=real[1]))
    ispe = data.index(b"ispe")
    data[ispe + 8 : ispe + 16] = struct.pack(">II", width, height)
    return bytes(data)


def flipped(data: bytes, rng: random.Random, flips: int) -> bytes:
    mutated = bytearray(data)
    for _ in range(flips):
        position = rng.randrange(len(mutated))
        mutated[position] ^= 1 << rng.randrange(8)
    return bytes(mutated)


def smashed_header(data: bytes, rng: random.Random) -> bytes:
    """Overwrite a few bytes of the first 300 (markers, lengths, dimensions) with extremes."""
    mutated = bytearray(data)
    start = rng.randrange(2, min(300, len(mutated) - 8))
    mutated[start : start + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff"])
    return bytes(mutated)


def png_with_huge_chunk_length() -> bytes:
    data = bytearray(photo("PNG"))
    idat = data.index(b"IDAT")
    data[idat - 4 : idat] = struct.pack(">I", 0x7FFFFFFF)
    return bytes(data)


def png_with_text_bomb() -> bytes:
    """A zTXt chunk that inflates to 64 MiB: Pillow must refuse, not inflate."""
    good = photo("PNG")
    bomb = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * (64 * 2**20), 9))
    return good[:33] + bomb + good[33:]


def huge_exif() -> bytes:
    """Nearly 64 KiB of EXIF: long text, hundreds of tags, absurd GPS and dates."""
    exif = Image.Exif()
    exif[ExifTags.Base.ImageDescription] = "fuzz-payload " * 3600
    exif[ExifTags.Base.Make] = "\u00ff" * 200
    exif[ExifTags.Base.Orientation] = 8
    inner = exif.get_ifd(ExifTags.IFD.Exif)
    for tag in range(0xA500, 0xA500 + 400):
        inner[tag] = "x" * 20
    inner[ExifTags.Base.DateTimeOriginal] = "2026:02:30 99:99:99"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[GPS.GPSLatitudeRef] = "N"
    gps[GPS.GPSLatitude] = (IFDRational(42, 0), IFDRational(0, 0), IFDRational(1, 0))
    gps[GPS.GPSLongitudeRef] = "W"
    gps[GPS.GPSLongitude] = (IFDRational(999, 1), IFDRational(0, 1), IFDRational(0, 1))
    data = jpeg_with_exif(exif)
    assert 50_000 < len(data) < 70_000
    return data


def exif_variants() -> list[tuple[str, Image.Exif]]:
    variants = []

    def gps(**tags) -> Image.Exif:
        exif = Image.Exif()
        ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        for key, value in tags.items():
            ifd[getattr(GPS, key)] = value
        return exif

    def when(stamp: str, offset: str | None = None) -> Image.Exif:
        exif = Image.Exif()
        ifd = exif.get_ifd(ExifTags.IFD.Exif)
        ifd[ExifTags.Base.DateTimeOriginal] = stamp
        if offset is not None:
            ifd[ExifTags.Base.OffsetTimeOriginal] = offset
        return exif

    zero = IFDRational(1, 0)
    variants += [
        (
            "gps zero denominators",
            gps(
                GPSLatitudeRef="N",
                GPSLatitude=(zero, zero, zero),
                GPSLongitudeRef="E",
                GPSLongitude=(zero, zero, zero),
            ),
        ),
        (
            "gps latitude 200",
            gps(
                GPSLatitudeRef="N",
                GPSLatitude=(IFDRational(200, 1),) * 3,
                GPSLongitudeRef="E",
                GPSLongitude=(IFDRational(1, 1),) * 3,
            ),
        ),
        (
            "gps odd refs",
            gps(
                GPSLatitudeRef="\xff",
                GPSLatitude=(IFDRational(42, 1),) * 3,
                GPSLongitudeRef="",
                GPSLongitude=(IFDRational(0, 1),) * 3,
            ),
        ),
        (
            "gps one number",
            gps(
                GPSLatitudeRef="N",
                GPSLatitude=IFDRational(42, 1),
                GPSLongitudeRef="W",
                GPSLongitude=IFDRational(1, 1),
            ),
        ),
        (
            "gps huge altitude",
            gps(
                GPSLatitudeRef="N",
                GPSLatitude=(IFDRational(42, 1),) * 3,
                GPSLongitudeRef="W",
                GPSLongitude=(IFDRational(0, 1),) * 3,
                GPSAltitude=IFDRational(2**32 - 1, 1),
                GPSHPositioningError=IFDRational(2**32 - 1, 1),
            ),
        ),
        (
            "gps time overflow",
            gps(GPSDateStamp="9999:12:31", GPSTimeStamp=(IFDRational(2**32 - 1, 1),) * 3),
        ),
        ("gps year one", gps(GPSDateStamp="0001:01:01", GPSTimeStamp=(IFDRational(0, 1),) * 3)),
        ("gps date garbage", gps(GPSDateStamp="\x00\xff" * 20, GPSTimeStamp=(zero,) * 3)),
    ]
    for stamp, offset in [
        ("0000:00:00 00:00:00", None),
        ("0001:01:01 00:00:00", "+05:00"),
        ("0001:01:01 00:00:00", None),
        ("9999:12:31 23:59:59", "-12:00"),
        ("2026:13:45 25:61:61", None),
        ("2026:06:01 10:00:00", "+99:99"),
        ("2026:06:01 10:00:00", "garbage"),
        ("    :  :     :  :  ", None),
        ("2026:06:01 10:00:00" + "\x00" * 5000, "+02:00"),
    ]:
        variants.append((f"exif time {stamp[:19]!r} {offset}", when(stamp, offset)))
    return variants


def zip_payload() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("shell.php", "<?php system($_GET['c']); ?> fuzz-payload")
    return buffer.getvalue()


# -- the cases ----------------------------------------------------------------------------------


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def unusual_photo_cases() -> list[Case]:
    """Real photos in modes, shapes and containers cameras and editors do write."""
    picture, other = make_image(64, 48, seed=80), make_image(64, 48, seed=81)
    photos = [
        ("16-bit grey PNG", encoded(Image.new("I;16", (64, 48), 30000), "PNG")),
        ("1-bit PNG", encoded(Image.new("1", (64, 48), 1), "PNG")),
        ("grey and alpha PNG", encoded(Image.new("LA", (64, 48), (9, 0)), "PNG")),
        ("palette PNG with transparency", encoded(picture.convert("P"), "PNG", transparency=0)),
        ("CMYK JPEG", encoded(Image.new("CMYK", (64, 48), (1, 2, 3, 4)), "JPEG")),
        ("grey JPEG", encoded(picture.convert("L"), "JPEG")),
        ("progressive JPEG", encoded(picture, "JPEG", progressive=True)),
        ("1x1 JPEG", encoded(Image.new("RGB", (1, 1)), "JPEG")),
        ("1x6000 PNG", encoded(Image.new("RGB", (1, 6000)), "PNG")),
        ("6000x1 PNG", encoded(Image.new("RGB", (6000, 1)), "PNG")),
        ("animated WebP", encoded(picture, "WEBP", save_all=True, append_images=[other])),
        ("animated PNG", encoded(picture, "PNG", save_all=True, append_images=[other])),
        ("transparent lossless WebP", encoded(Image.new("RGBA", (64, 48)), "WEBP", lossless=True)),
        ("multi-picture JPEG (MPO)", encoded(picture, "MPO", save_all=True, append_images=[other])),
        ("HEIC", photo("HEIF", seed=82)),
    ]
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = orientation
        photos.append(
            (
                f"3x7 JPEG, orientation {orientation}",
                encoded(Image.new("RGB", (3, 7), (orientation * 20, 0, 0)), "JPEG", exif=exif),
            )
        )
    return [Case(name, [(data, "photo", "image/jpeg")], expect="accepted") for name, data in photos]


def random_byte_cases(rng: random.Random) -> list[Case]:
    magic = [
        b"",
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n",
        b"RIFF\x00\x00\x00\x00WEBP",
        b"\x00\x00\x00\x18ftypheic",
        b"\x00\x00\x00\x18ftypmif1",
    ]
    cases = []
    for index in range(36):
        prefix = magic[index % len(magic)]
        size = rng.choice([1, 7, 63, 64, 65, 500, 4096, 70_000])
        data = prefix + rng.randbytes(size)
        cases.append(
            Case(
                f"random bytes {index} ({prefix[:12]!r}, {size})",
                [(data, "photo.jpg", "image/jpeg")],
                expect="refused",
            )
        )
    return cases


def truncated_cases() -> list[Case]:
    cases = []
    for fmt, extension in [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("HEIF", "heic")]:
        good = photo(fmt, seed=5, width=120, height=90)
        cuts = sorted(
            {1, 2, 3, 4, 8, 12, 16, 24, 32, 48, 64, 100, 200}
            | {len(good) * k // 10 for k in range(1, 10)}
            | {len(good) - 64, len(good) - 8, len(good) - 2}
        )
        for cut in cuts:
            # Missing only the trailer (JPEG's end marker, PNG's IEND chunk), every pixel is
            # there and the photo may be accepted.
            trailer = {"JPEG": 2, "PNG": 12}.get(fmt, 0)
            expect = None if cut >= len(good) - trailer else "refused"
            cases.append(
                Case(
                    f"{fmt} cut at {cut} of {len(good)}",
                    [(good[:cut], f"cut.{extension}", f"image/{extension}")],
                    expect=expect,
                )
            )
    return cases


def mutated_cases(rng: random.Random) -> list[Case]:
    cases = []
    for fmt in ["JPEG", "PNG", "WEBP", "HEIF"]:
        good = photo(fmt, seed=6)
        for index in range(12):
            data = flipped(good, rng, rng.choice([1, 3, 10, 50]))
            cases.append(Case(f"{fmt} bit flips {index}", [(data, "flip.jpg", "image/jpeg")]))
        for index in range(8):
            data = smashed_header(good, rng)
            cases.append(Case(f"{fmt} smashed header {index}", [(data, "x.jpg", "image/jpeg")]))
    bomb, refused = ("refused", "too_many_pixels"), ("refused", None)
    # The chunk length lies but the pixels are all there; the text bomb is only text.
    either = (None, None)
    headers = [
        ("JPEG claiming 65535x65535", jpeg_claiming(65535, 65535), bomb),
        ("JPEG claiming 0x0", jpeg_claiming(0, 0), refused),
        ("PNG claiming 2^31-1 square", png_claiming(2**31 - 1, 2**31 - 1), bomb),
        ("PNG claiming 100000x100000", png_claiming(100_000, 100_000), bomb),
        ("PNG claiming 0x0", png_claiming(0, 0), refused),
        ("PNG with a 2 GiB chunk length", png_with_huge_chunk_length(), either),
        ("PNG with a zTXt bomb", png_with_text_bomb(), either),
        ("PNG with a bad IHDR checksum", png_claiming(64, 64, ihdr_crc=0), refused),
        ("WebP claiming 16384x16384", webp_claiming(16384, 16384), bomb),
        ("WebP claiming 1x1", webp_claiming(1, 1), either),
        ("HEIC claiming 60000x60000", heic_claiming(60000, 60000), bomb),
        # libheif's own limit speaks first here (the grid of a 64x48 photo differs).
        ("HEIC 64x48 claiming 60000x60000", heic_claiming(60000, 60000, real=(64, 48)), bomb),
        ("HEIC claiming 20000x20000", heic_claiming(20000, 20000), refused),
        ("HEIC claiming 0x0", heic_claiming(0, 0), refused),
    ]
    for name, data, (expect, error) in headers:
        cases.append(Case(name, [(data, "bomb.png", "image/png")], expect=expect, error=error))
    return cases


def exif_cases() -> list[Case]:
    cases = [
        Case("EXIF of nearly 64 KiB", [(huge_exif(), "exif.jpg", "image/jpeg")], expect="accepted")
    ]
    for index, (name, exif) in enumerate(exif_variants()):
        data = jpeg_with_exif(exif, seed=10 + index)
        # With where and when sent the EXIF is only read; without, the photo must say them.
        files = [(data, "e.jpg", "image/jpeg")]
        cases.append(Case(f"{name}, all sent", files, expect="accepted"))
        position = {key: WHERE_AND_WHEN[key] for key in ("latitude", "longitude")}
        cases.append(Case(f"{name}, position sent", files, fields=position))
        cases.append(Case(f"{name}, nothing sent", files, fields={}))
    return cases


def polyglot_cases() -> list[Case]:
    html = b"<html><script>alert('fuzz-payload')</script></html>"
    php = b"<?php echo 'fuzz-payload'; ?>"
    gif_js = b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;alert('fuzz-payload');//;"
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><text>fuzz-payload</text></svg>'
    )
    return [
        Case(
            "JPEG with a ZIP appended",
            [(photo(seed=20) + zip_payload(), "a.jpg", "image/jpeg")],
            expect="accepted",
        ),
        Case(
            "PNG with PHP appended",
            [(photo("PNG", seed=21) + php, "a.png", "image/png")],
            expect="accepted",
        ),
        Case(
            "PNG with HTML appended",
            [(photo("PNG", seed=22) + html, "a.png", "image/png")],
            expect="accepted",
        ),
        Case(
            "JPEG with a comment of HTML",
            [
                (
                    photo(seed=23)[:2]
                    + b"\xff\xfe"
                    + struct.pack(">H", len(html) + 2)
                    + html
                    + photo(seed=23)[2:],
                    "c.jpg",
                    "image/jpeg",
                )
            ],
            expect="accepted",
        ),
        Case(
            "GIF that is also JavaScript",
            [(gif_js, "a.jpg", "image/jpeg")],
            expect="refused",
            error="unsupported_type",
        ),
        Case(
            "SVG named .jpg",
            [(svg, "a.jpg", "image/jpeg")],
            expect="refused",
            error="unsupported_type",
        ),
        Case(
            "PDF",
            [(b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF fuzz-payload", "a.jpg", "image/jpeg")],
            expect="refused",
            error="unsupported_type",
        ),
        Case("HTML", [(html, "a.jpg", "image/jpeg")], expect="refused", error="unsupported_type"),
        Case(
            "ZIP",
            [(zip_payload(), "a.jpg", "image/jpeg")],
            expect="refused",
            error="unsupported_type",
        ),
        Case(
            "ZIP with a JPEG appended",
            [(zip_payload() + photo(seed=24), "a.jpg", "image/jpeg")],
            expect="refused",
            error="unsupported_type",
        ),
    ]


def name_and_type_cases() -> list[Case]:
    good = photo(seed=30)
    names = [
        "shell.php",
        "../../../../etc/passwd.jpg",
        "a.jpg.exe",
        "x" * 1000 + ".jpg",
        "фото 🌿.jpg",
        ".htaccess",
        "con.jpg",
        "a\\b\\c.jpg",
        "a\x00.php.jpg",
        "",
    ]
    types = [
        "text/html",
        "application/x-php",
        "image/svg+xml",
        "application/octet-stream",
        "image/gif",
        "",
        "multipart/form-data",
    ]
    cases = []
    for index, name in enumerate(names):
        content_type = types[index % len(types)]
        data = photo(seed=31 + index)
        cases.append(
            Case(
                f"a JPEG named {name[:20]!r} as {content_type!r}",
                [(data, name or "blob", content_type or "image/jpeg")],
                expect="accepted",
            )
        )
    cases += [
        Case(
            "an empty file",
            [(b"", "empty.jpg", "image/jpeg")],
            expect="refused",
            error="empty_photo",
        ),
        Case(
            "a good photo and an empty one",
            [(good, "a.jpg", "image/jpeg"), (b"", "b.jpg", "image/jpeg")],
            expect="refused",
            error="empty_photo",
        ),
        Case(
            "four good photos and a bad fifth",
            [(photo(seed=40 + i), f"{i}.jpg", "image/jpeg") for i in range(4)]
            + [(b"\xff\xd8\xff" + b"\x00" * 100, "bad.jpg", "image/jpeg")],
            expect="refused",
            error="corrupt_photo",
        ),
        Case(
            "six photos",
            [(photo(seed=50 + i), f"{i}.jpg", "image/jpeg") for i in range(6)],
            expect="refused",
            error="too_many_photos",
        ),
        Case("no photo", [], expect="refused"),
    ]
    return cases


def field_cases() -> list[Case]:
    good = photo(seed=60)
    huge = "9" * 5000
    variants = {
        "notes too long": {"notes": "n" * 6000},
        "guess too long": {"guess": "g" * 10_000},
        "credit too long": {"credit_name": "c" * 1000},
        "campaign absurd": {"campaign": "-" * 300},
        "campaign not a slug": {"campaign": "../../admin"},
        "email absurd": {"email": "a@" + "b" * 300},
        "latitude huge": {"latitude": huge},
        "latitude 1e309": {"latitude": "1e309"},
        "latitude nan": {"latitude": "nan"},
        "longitude -inf": {"longitude": "-inf"},
        "accuracy 1e308": {"accuracy_m": "1e308"},
        "accuracy negative": {"accuracy_m": "-1"},
        "latitude only": {"longitude": ""},
        "observed_at year 1": {"observed_at": "0001-01-01T00:00:00+05:00"},
        "observed_at year 1 naive": {"observed_at": "0001-01-01T00:00:00"},
        "observed_at year 9999": {"observed_at": "9999-12-31T23:59:59-12:00"},
        "observed_at garbage": {"observed_at": "2026-02-30T25:00:00"},
        "observed_at huge offset": {"observed_at": "2026-06-01T10:00:00+23:59"},
        "client_uuid garbage": {"client_uuid": "not-a-uuid" * 50},
        "licence unknown": {"licence": "all rights reserved"},
        "position_source exif": {"position_source": "exif"},
        "position_source unknown": {"position_source": "telepathy"},
        "notes with NUL": {"notes": "a\x00b"},
        "guess with NUL": {"guess": "Buddleja\x00davidii"},
    }
    cases = []
    for index, (name, fields) in enumerate(variants.items()):
        data = photo(seed=70 + index)
        cases.append(
            Case(name, [(data, "f.jpg", "image/jpeg")], fields={**WHERE_AND_WHEN, **fields})
        )
    cases.append(
        Case(
            "notes at the limit",
            [(good, "f.jpg", "image/jpeg")],
            fields={**WHERE_AND_WHEN, "notes": "n" * 5000},
            expect="accepted",
        )
    )
    return cases


# -- sending and checking -------------------------------------------------------------------------


def send(client: APIClient, url: str, case: Case):
    cache.clear()  # the upload throttle would otherwise answer 429 after a few dozen cases
    files = [
        SimpleUploadedFile(name, data, content_type) for data, name, content_type in case.files
    ]
    return client.post(url, {"photos": files, **case.fields}, format="multipart")


def problems_with(response, case: Case) -> list[str]:
    """What is wrong with this answer to this case (nothing, for a proper one)."""
    status = response.status_code
    found = []
    if status >= 500:
        return [f"{case.name}: {status} {response.content[:300]!r}"]
    if status in (200, 201):
        if case.expect == "refused":
            found.append(f"{case.name}: accepted, expected a refusal")
        return found
    if not 400 <= status < 500:
        return [f"{case.name}: answered {status}"]
    if case.expect == "accepted":
        found.append(f"{case.name}: refused ({response.content[:300]!r}), expected 201")
    if not response["Content-Type"].startswith("application/json"):
        return [*found, f"{case.name}: {status} is not JSON"]
    body = response.json()
    if not (isinstance(body.get("error"), str) and isinstance(body.get("detail"), str)):
        found.append(f"{case.name}: {status} body not in the error format: {body}")
    if "field" in body and not isinstance(body["field"], str):
        found.append(f"{case.name}: field is not a name: {body}")
    if "UploadedFile" in str(body.get("detail")):
        found.append(f"{case.name}: the detail shows internals: {body['detail']}")
    if case.error and body.get("error") != case.error:
        found.append(f"{case.name}: error {body.get('error')!r}, expected {case.error!r}")
    return found


def public_copy_problems(observation: Observation) -> list[str]:
    """The public copies must be fresh JPEGs: no EXIF, nothing after the image, no payload."""
    found = []
    for photo_row in observation.photos.all():
        for field_file in (photo_row.image, photo_row.thumbnail):
            with field_file.open("rb") as handle:
                data = handle.read()
            label = f"{observation.uuid} {field_file.name}"
            if not (data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9")):
                found.append(f"{label}: not a plain JPEG from start to end")
            found += [f"{label}: carries {m!r}" for m in PAYLOAD_MARKERS if m in data]
            with Image.open(io.BytesIO(data)) as image:
                if image.getexif() or "exif" in image.info or "comment" in image.info:
                    found.append(f"{label}: keeps metadata")
        for field_file in (photo_row.original, photo_row.image, photo_row.thumbnail):
            if not STORED_NAME.match(field_file.name):
                found.append(f"{field_file.name}: not a generated name")
    return found


def storage_problems(settings) -> list[str]:
    """Whole sightings only: photos for every sighting, files for every photo, no orphans."""
    found = []
    expected = set()
    for observation in Observation.objects.prefetch_related("photos"):
        if not observation.photos.all():
            found.append(f"sighting {observation.uuid} has no photo")
    for photo_row in Photo.objects.select_related("observation"):
        for field_file in (photo_row.original, photo_row.image, photo_row.thumbnail):
            if not field_file.name or not field_file.storage.exists(field_file.name):
                found.append(f"photo {photo_row.pk}: {field_file.name!r} missing")
            else:
                expected.add(os.path.realpath(field_file.path))
    orphans = {os.path.realpath(path) for path in stored_files(settings)} - expected
    found += [f"orphan file {path}" for path in sorted(orphans)]
    return found


def run_cases(client: APIClient, url: str, cases: list[Case]) -> tuple[list[str], list]:
    problems, accepted = [], []
    for case in cases:
        response = send(client, url, case)
        problems += problems_with(response, case)
        if response.status_code in (200, 201) and url == OBSERVATIONS:
            accepted.append(Observation.objects.get(uuid=response.json()["uuid"]))
    return problems, accepted


# -- the tests ------------------------------------------------------------------------------------

BATCHES = {
    "unusual real photos": lambda rng: unusual_photo_cases(),
    "random bytes": lambda rng: random_byte_cases(rng),
    "truncated photos": lambda rng: truncated_cases(),
    "mutated photos and bombs": lambda rng: mutated_cases(rng),
    "absurd EXIF": lambda rng: exif_cases(),
    "polyglots": lambda rng: polyglot_cases(),
    "names, types and counts": lambda rng: name_and_type_cases(),
    "oversized and odd fields": lambda rng: field_cases(),
}


@pytest.fixture
def hostile(campaign, settings):
    settings.ALLOW_ANONYMOUS_UPLOADS = True
    return APIClient(raise_request_exception=False)


@pytest.mark.parametrize("batch", BATCHES)
def test_hostile_uploads_get_a_4xx_or_a_whole_sighting(batch, hostile, settings):
    cases = BATCHES[batch](random.Random(f"{SEED}-{batch}"))

    problems, accepted = run_cases(hostile, OBSERVATIONS, cases)

    for observation in accepted:
        problems += public_copy_problems(observation)
    problems += storage_problems(settings)
    assert not problems, "\n".join(problems)


def test_a_polyglot_is_stored_privately_as_sent_and_served_only_re_encoded(hostile, settings):
    sent = photo(seed=90) + zip_payload()

    response = send(hostile, OBSERVATIONS, Case("polyglot", [(sent, "a.jpg", "image/jpeg")]))

    assert response.status_code == 201, response.content
    (stored,) = Observation.objects.get(uuid=response.json()["uuid"]).photos.all()
    with stored.original.open("rb") as handle:
        assert handle.read() == sent  # the original, private, is what was sent
    with stored.image.open("rb") as handle:
        public = handle.read()
    assert b"PK\x03\x04" not in public and public.endswith(b"\xff\xd9")
    assert not stored.original.path.startswith(str(settings.MEDIA_ROOT))


@pytest.mark.parametrize("batch", ["random bytes", "truncated photos", "mutated photos and bombs"])
def test_identify_refuses_hostile_photos_with_a_4xx(batch, hostile, settings):
    settings.IDENTIFY_TIMEOUT_SECONDS = 0.01
    cases = BATCHES[batch](random.Random(f"{SEED}-identify-{batch}"))
    # Identify needs no position. A file that really is a photo waits for a worker (a 503,
    # a second or so with Redis): the files that must be refused, and a few that may pass.
    refused = [case for case in cases if case.expect == "refused"]
    cases = refused + [case for case in cases if case.expect != "refused"][:4]
    problems = []
    for case in cases:
        response = send(hostile, IDENTIFY, Case(case.name, case.files, {}, case.expect, case.error))
        if response.status_code == 503 and case.expect != "refused":
            assert response.json()["error"] == "inference_unavailable"
            continue
        problems += problems_with(response, case)

    assert not problems, "\n".join(problems)
    assert len(refused) >= 5
    assert stored_files(settings) == []


def test_the_upload_page_answers_every_hostile_upload_and_stores_whole_sightings(
    campaign, settings
):
    # The page's form sends its time as datetime-local and always a licence.
    browser = Client(raise_request_exception=False)
    answers = []
    for batch, make in BATCHES.items():
        for case in make(random.Random(f"{SEED}-page-{batch}")):
            cache.clear()
            files = [SimpleUploadedFile(n, data, kind) for data, n, kind in case.files]
            fields = {"licence": "CC-BY-4.0", **case.fields}
            if fields.get("observed_at") == WHERE_AND_WHEN["observed_at"]:
                fields["observed_at"] = "2026-06-01T10:30"
            response = browser.post("/", {"photos": files, **fields})
            answers.append((case.name, response.status_code))

    odd = [(name, status) for name, status in answers if status not in (302, 400)]
    assert not odd, odd
    assert sum(status == 302 for _name, status in answers) > 50  # real photos were accepted
    assert not storage_problems(settings)
