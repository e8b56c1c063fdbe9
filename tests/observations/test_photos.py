import io
import struct
import zlib

import pytest
from PIL import ExifTags, Image

from observations.errors import PhotoRejected
from observations.services.photos import photo_inspect, sniff_format
from tests.images import make_image, make_photo, upload


def inspect(data: bytes, name: str = "photo.jpg"):
    return photo_inspect(upload(data, name))


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: a decompression bomb."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_it_accepts_the_four_photo_formats_by_content(fmt):
    photo = inspect(make_photo(fmt), name="no-extension")

    assert photo.format == fmt
    assert (photo.width, photo.height) == (640, 480)


def test_the_name_does_not_decide_the_type():
    photo = inspect(make_photo("PNG"), name="holiday.jpg")

    assert photo.format == "PNG"


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"Just some notes, not a photo at all.\n" * 20, "a text file"),
        (b"GIF89a" + b"\x00" * 200, "a GIF image"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "an SVG"),
        (b"%PDF-1.7\n" + b"\x00" * 200, "a PDF document"),
    ],
)
def test_it_rejects_other_formats_named_jpg(data, said):
    with pytest.raises(PhotoRejected) as excinfo:
        inspect(data, name="photo.jpg")

    assert excinfo.value.code == "unsupported_type"
    assert said in excinfo.value.detail


def test_it_rejects_a_real_gif_image():
    buffer = io.BytesIO()
    make_image(64, 64).save(buffer, "GIF")

    with pytest.raises(PhotoRejected, match="GIF"):
        inspect(buffer.getvalue())


def test_it_rejects_a_truncated_jpeg():
    data = make_photo("JPEG", width=1200, height=900)

    with pytest.raises(PhotoRejected) as excinfo:
        inspect(data[: len(data) // 2])

    assert excinfo.value.code == "corrupt_photo"


def test_it_rejects_a_truncated_png():
    data = make_photo("PNG", width=800, height=600)

    with pytest.raises(PhotoRejected) as excinfo:
        inspect(data[: len(data) // 2])

    assert excinfo.value.code == "corrupt_photo"


def test_it_rejects_a_decompression_bomb():
    with pytest.raises(PhotoRejected) as excinfo:
        inspect(png_header_claiming(100_000, 100_000))

    assert excinfo.value.code == "too_many_pixels"
    assert "megapixels" in excinfo.value.detail


def test_it_rejects_a_heic_whose_size_libheif_refuses_to_decode():
    data = bytearray(make_photo("HEIF", width=64, height=48))
    ispe = data.index(b"ispe")  # the image spatial extents: width and height
    data[ispe + 8 : ispe + 16] = struct.pack(">II", 60000, 60000)

    with pytest.raises(PhotoRejected) as excinfo:
        inspect(bytes(data), name="bomb.heic")

    assert excinfo.value.code == "too_many_pixels"


def test_it_rejects_a_photo_above_the_pixel_setting(settings):
    settings.PHOTO_MAX_PIXELS = 640 * 480 - 1

    with pytest.raises(PhotoRejected, match="megapixels"):
        inspect(make_photo())


def test_it_rejects_a_file_above_the_size_setting(settings):
    settings.PHOTO_MAX_BYTES = 1000

    with pytest.raises(PhotoRejected) as excinfo:
        inspect(make_photo())

    assert excinfo.value.code == "photo_too_large"


def test_it_rejects_an_empty_file():
    with pytest.raises(PhotoRejected, match="empty"):
        inspect(b"")


def test_the_public_copy_has_no_exif_and_the_orientation_applied():
    data = make_photo(width=800, height=600, gps=(42.64, -0.05), orientation=6)

    photo = inspect(data)
    public = Image.open(io.BytesIO(photo.public_jpeg))

    assert public.size == (600, 800)  # orientation 6: turned a quarter to portrait
    assert (photo.width, photo.height) == (600, 800)
    assert len(public.getexif()) == 0
    assert not public.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"Exif" not in photo.public_jpeg[:4096]


def test_the_public_copy_is_at_most_the_public_side_and_the_thumbnail_smaller(settings):
    settings.PHOTO_PUBLIC_MAX_SIDE = 1024
    photo = inspect(make_photo(width=3000, height=2000))

    public = Image.open(io.BytesIO(photo.public_jpeg))
    thumbnail = Image.open(io.BytesIO(photo.thumbnail_jpeg))

    assert max(public.size) == 1024
    assert max(thumbnail.size) == settings.PHOTO_THUMBNAIL_SIDE
    assert (photo.width, photo.height) == (3000, 2000)


def test_it_hashes_the_exact_bytes_and_the_look_of_the_photo():
    first = inspect(make_photo(seed=1))
    recompressed = io.BytesIO()
    Image.open(io.BytesIO(make_photo(seed=1))).save(recompressed, "JPEG", quality=60)
    similar = inspect(recompressed.getvalue())
    different = inspect(make_photo(seed=7))

    assert first.sha256 != similar.sha256
    assert (first.phash ^ similar.phash).bit_count() <= 3
    assert (first.phash ^ different.phash).bit_count() > 10


def test_sniffing_knows_heic_brands_and_refuses_avif():
    assert sniff_format(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "HEIF"
    assert sniff_format(b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00") is None


def test_the_perceptual_hash_is_imagehash_phash_bit_for_bit():
    import imagehash
    import numpy as np

    from observations.services.photos import perceptual_hash

    rng = np.random.default_rng(7)
    pictures = [make_image(320, 240, seed=seed) for seed in range(20)]
    pictures += [
        Image.fromarray(rng.integers(0, 256, (60 + 13 * i, 90 + 7 * i, 3), np.uint8))
        for i in range(20)
    ]
    pictures += [make_image(320, 240, seed=3).convert("L"), Image.new("RGB", (64, 64), "white")]
    for picture in pictures:
        assert perceptual_hash(picture) == int(str(imagehash.phash(picture)), 16)
    assert len({perceptual_hash(p) for p in pictures[:20]}) == 20
