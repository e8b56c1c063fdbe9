from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO

from PIL import Image

from observations.services.exif import read_metadata
from tests.images import make_photo


def metadata_of(data: bytes):
    return read_metadata(Image.open(BytesIO(data)))


def test_it_reads_latitude_and_longitude_with_their_references():
    north_east = metadata_of(make_photo(gps=(42.6415, 0.0532)))
    south_west = metadata_of(make_photo(gps=(-33.8568, -151.2153)))

    assert abs(north_east.latitude - 42.6415) < 1e-5
    assert abs(north_east.longitude - 0.0532) < 1e-5
    assert abs(south_west.latitude + 33.8568) < 1e-5
    assert abs(south_west.longitude + 151.2153) < 1e-5


def test_it_reads_altitude_and_horizontal_positioning_error_as_accuracy():
    above = metadata_of(make_photo(gps=(42.64, -0.05), altitude=1320.5, accuracy=4.5))
    below = metadata_of(make_photo(gps=(31.5, 35.5), altitude=-420))

    assert above.altitude_m == 1320.5
    assert above.accuracy_m == 4.5
    assert below.altitude_m == -420


def test_it_reads_the_original_time_with_its_offset():
    meta = metadata_of(make_photo(taken_at=datetime(2026, 6, 1, 10, 30, 0), offset="+02:00"))

    assert meta.taken_at == datetime(2026, 6, 1, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    assert meta.taken_at.astimezone(UTC).hour == 8


def test_it_leaves_a_time_without_offset_naive_for_the_park_zone():
    meta = metadata_of(make_photo(taken_at=datetime(2026, 6, 1, 10, 30, 0)))

    assert meta.taken_at == datetime(2026, 6, 1, 10, 30)
    assert meta.taken_at.tzinfo is None


def test_it_reads_the_orientation():
    assert metadata_of(make_photo(orientation=6)).orientation == 6
    assert metadata_of(make_photo()).orientation == 1


def test_a_photo_without_exif_has_no_position_and_no_time():
    meta = metadata_of(make_photo())

    assert not meta.has_position
    assert meta.taken_at is None


def test_it_ignores_the_null_island_position_broken_gps_writes():
    assert not metadata_of(make_photo(gps=(0.0, 0.0))).has_position


def test_it_reads_exif_from_png_webp_and_heic():
    for fmt in ("PNG", "WEBP", "HEIF"):
        meta = metadata_of(
            make_photo(fmt, gps=(42.6415, -0.0532), taken_at=datetime(2026, 5, 2, 9, 0))
        )
        assert abs(meta.latitude - 42.6415) < 1e-5, fmt
        assert abs(meta.longitude + 0.0532) < 1e-5, fmt


def test_an_unset_camera_clock_or_an_absurd_gps_time_is_no_time():
    from fractions import Fraction

    from PIL import ExifTags

    year_one = metadata_of(make_photo(taken_at=datetime(1, 1, 1), offset="+05:00"))
    exif = Image.Exif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSDateStamp] = "9999:12:31"
    gps[ExifTags.GPS.GPSTimeStamp] = (Fraction(2**32 - 1), Fraction(0), Fraction(0))
    buffer = BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", exif=exif)

    assert year_one.taken_at is None
    assert metadata_of(buffer.getvalue()).taken_at is None
