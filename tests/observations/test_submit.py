import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.utils import timezone as dj_timezone

from observations.errors import Conflict, ParkWatchError, PhotoRejected
from observations.models import Observation, Photo
from observations.services.submission import observation_submit
from tests.conftest import ORDESA, OUTSIDE, stored_files
from tests.images import make_photo, photo_upload, upload

pytestmark = pytest.mark.django_db

JUNE_FIRST = datetime(2026, 6, 1, 10, 30)


def test_it_takes_position_accuracy_altitude_and_time_from_exif(campaign, park):
    result = observation_submit(
        photos=[
            photo_upload(
                gps=ORDESA, accuracy=6, altitude=1320, taken_at=JUNE_FIRST, offset="+02:00"
            )
        ]
    )
    observation = result.observation

    assert result.created
    assert observation.position_source == Observation.PositionSource.EXIF
    assert (round(observation.latitude, 5), round(observation.longitude, 5)) == ORDESA
    assert observation.accuracy_m == 6
    assert observation.altitude_m == 1320
    assert observation.observed_at == datetime(2026, 6, 1, 8, 30, tzinfo=UTC)
    assert observation.park == park
    assert observation.campaign == campaign
    assert observation.status == Observation.Status.RECEIVED


def test_an_exif_time_without_offset_is_read_in_the_park_time_zone(campaign):
    observation = observation_submit(
        photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)]
    ).observation

    # Madrid is UTC+2 in June.
    assert observation.observed_at == datetime(2026, 6, 1, 8, 30, tzinfo=UTC)


def test_sent_values_override_exif_and_the_source_is_stored(campaign):
    sent_time = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
    observation = observation_submit(
        photos=[photo_upload(gps=OUTSIDE, accuracy=50, taken_at=JUNE_FIRST)],
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        accuracy_m=12,
        position_source="map",
        observed_at=sent_time,
    ).observation

    assert (observation.latitude, observation.longitude) == ORDESA
    assert observation.accuracy_m == 12
    assert observation.position_source == "map"
    assert observation.observed_at == sent_time
    assert observation.park is not None


def test_a_photo_without_exif_is_fine_when_the_position_and_time_are_sent(campaign):
    observation = observation_submit(
        photos=[photo_upload()],
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        observed_at=dj_timezone.now(),
    ).observation

    assert observation.position_source == Observation.PositionSource.DEVICE
    assert observation.photos.count() == 1


def test_no_position_anywhere_is_refused_and_says_so(campaign, settings):
    with pytest.raises(ParkWatchError) as excinfo:
        observation_submit(photos=[photo_upload(taken_at=JUNE_FIRST)])

    assert excinfo.value.code == "position_missing"
    assert "position" in excinfo.value.detail
    assert Observation.objects.count() == 0
    assert stored_files(settings) == []


def test_a_sighting_outside_every_park_is_kept_without_a_park(campaign):
    observation = observation_submit(
        photos=[photo_upload(gps=OUTSIDE, taken_at=JUNE_FIRST)]
    ).observation

    assert observation.park is None
    assert Observation.objects.filter(pk=observation.pk).exists()


@pytest.mark.parametrize(
    ("latitude", "longitude", "field"),
    [
        (90.5, 0, "latitude"),
        (-91, 0, "latitude"),
        (42, 180.01, "longitude"),
        (42, -200, "longitude"),
    ],
)
def test_coordinates_out_of_range_are_refused(campaign, latitude, longitude, field):
    with pytest.raises(ParkWatchError) as excinfo:
        observation_submit(
            photos=[photo_upload()],
            latitude=latitude,
            longitude=longitude,
            observed_at=dj_timezone.now(),
        )

    assert excinfo.value.field == field
    assert Observation.objects.count() == 0


def test_a_date_in_the_future_is_refused(campaign):
    with pytest.raises(ParkWatchError) as excinfo:
        observation_submit(
            photos=[photo_upload(gps=ORDESA)], observed_at=dj_timezone.now() + timedelta(days=2)
        )

    assert excinfo.value.code == "observed_at_in_future"


def test_a_date_before_1900_is_refused(campaign):
    with pytest.raises(ParkWatchError) as excinfo:
        observation_submit(
            photos=[photo_upload(gps=ORDESA)],
            observed_at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        )

    assert excinfo.value.code == "observed_at_too_early"
    assert Observation.objects.count() == 0


def test_a_time_with_any_offset_iso_8601_allows_is_stored_as_the_same_instant(campaign):
    # PostgreSQL refuses offsets beyond 15:59 in a timestamp literal; +23:59 is valid ISO 8601.
    sent = datetime(2026, 6, 1, 10, 0, tzinfo=timezone(timedelta(hours=23, minutes=59)))

    observation = observation_submit(
        photos=[photo_upload(gps=ORDESA)], observed_at=sent
    ).observation

    observation.refresh_from_db()
    assert observation.observed_at == sent


def test_no_time_anywhere_is_refused(campaign):
    with pytest.raises(ParkWatchError) as excinfo:
        observation_submit(photos=[photo_upload(gps=ORDESA)])

    assert excinfo.value.code == "observed_at_missing"


def test_more_than_five_photos_are_refused_and_nothing_stored(campaign, settings):
    photos = [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=i) for i in range(6)]

    with pytest.raises(ParkWatchError) as excinfo:
        observation_submit(photos=photos)

    assert excinfo.value.code == "too_many_photos"
    assert Observation.objects.count() == Photo.objects.count() == 0
    assert stored_files(settings) == []


@pytest.mark.parametrize(
    "bad",
    [
        b"not a photo, only text",
        b"GIF89a" + b"\x00" * 100,
        b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
        b"%PDF-1.4\n%%EOF",
    ],
)
def test_one_bad_photo_among_good_ones_stores_nothing(campaign, settings, bad):
    good = photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)

    with pytest.raises(PhotoRejected):
        observation_submit(photos=[good, upload(bad, "second.jpg")])

    assert Observation.objects.count() == Photo.objects.count() == 0
    assert stored_files(settings) == []


def test_a_truncated_photo_stores_nothing(campaign, settings):
    data = make_photo(width=1200, height=900, gps=ORDESA, taken_at=JUNE_FIRST)

    with pytest.raises(PhotoRejected) as excinfo:
        observation_submit(photos=[upload(data[: len(data) // 2])])

    assert excinfo.value.code == "corrupt_photo"
    assert Observation.objects.count() == 0
    assert stored_files(settings) == []


def test_a_failure_while_storing_removes_the_files_already_written(campaign, settings, monkeypatch):
    from observations.services import submission

    calls = {"n": 0}
    original = submission._store_photo

    def store_then_fail(observation, position, photo, stored):
        original(observation, position, photo, stored)
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")

    monkeypatch.setattr(submission, "_store_photo", store_then_fail)
    photos = [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=i) for i in range(2)]

    with pytest.raises(OSError):
        observation_submit(photos=photos)

    assert Observation.objects.count() == Photo.objects.count() == 0
    assert stored_files(settings) == []


def test_it_stores_the_original_privately_and_the_derivatives_publicly(campaign, settings):
    observation = observation_submit(
        photos=[photo_upload("PNG", gps=ORDESA, taken_at=JUNE_FIRST)]
    ).observation
    photo = observation.photos.get()

    assert photo.original.path.startswith(str(settings.PRIVATE_MEDIA_ROOT))
    assert photo.image.path.startswith(str(settings.MEDIA_ROOT))
    assert photo.original.name.endswith(".png")
    assert photo.image.name.endswith(".jpg")
    assert photo.format == "PNG"
    assert len(photo.sha256) == 64
    assert len(photo.phash) == 16


def test_it_returns_the_first_observation_for_a_repeated_client_uuid(campaign):
    client_uuid = uuid.uuid4()
    first = observation_submit(
        photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], client_uuid=client_uuid
    )
    again = observation_submit(
        photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], client_uuid=client_uuid
    )

    assert first.created and not again.created
    assert again.observation.pk == first.observation.pk
    assert Observation.objects.count() == 1
    assert Photo.objects.count() == 1


def test_another_users_client_uuid_is_a_conflict(campaign, visitor, other_visitor):
    client_uuid = uuid.uuid4()
    observation_submit(
        photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)],
        client_uuid=client_uuid,
        observer=visitor,
    )

    with pytest.raises(Conflict):
        observation_submit(
            photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)],
            client_uuid=client_uuid,
            observer=other_visitor,
        )


def test_an_identical_photo_marks_the_new_sighting_a_possible_duplicate(campaign):
    data = make_photo(gps=ORDESA, taken_at=JUNE_FIRST, seed=3)
    first = observation_submit(photos=[upload(data)]).observation
    second = observation_submit(photos=[upload(make_photo(seed=9)), upload(data)]).observation
    unrelated = observation_submit(
        photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=5)]
    ).observation

    assert second.possible_duplicate_of == first
    assert unrelated.possible_duplicate_of is None


def test_a_near_identical_photo_marks_a_possible_duplicate(campaign):
    import io

    from PIL import Image

    data = make_photo(gps=ORDESA, taken_at=JUNE_FIRST, seed=4, width=1200, height=900)
    first = observation_submit(photos=[upload(data)]).observation
    smaller = io.BytesIO()
    Image.open(io.BytesIO(data)).resize((600, 450)).save(smaller, "JPEG", quality=70)

    second = observation_submit(
        photos=[upload(smaller.getvalue())],
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        observed_at=dj_timezone.now(),
    ).observation

    assert second.possible_duplicate_of == first


def test_anonymous_uploads_can_be_switched_off(campaign, settings):
    settings.ALLOW_ANONYMOUS_UPLOADS = False

    with pytest.raises(ParkWatchError) as excinfo:
        observation_submit(photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)])

    assert excinfo.value.status_code == 401


def test_the_observer_email_is_kept_for_anonymous_visitors(campaign):
    observation = observation_submit(
        photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], observer_email="walker@example.org"
    ).observation

    assert observation.observer is None
    assert observation.observer_email == "walker@example.org"


def test_it_asks_the_workers_to_classify_after_commit(
    campaign, django_capture_on_commit_callbacks, monkeypatch
):
    from observations.services import submission

    sent = []
    monkeypatch.setattr(
        submission, "classification_request", lambda observation_ids: sent.append(observation_ids)
    )

    with django_capture_on_commit_callbacks(execute=True):
        observation = observation_submit(
            photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)]
        ).observation
        assert sent == []

    assert sent == [[observation.pk]]


def test_a_time_with_an_explicit_offset_is_kept(campaign):
    moment = datetime(2026, 6, 1, 10, 0, tzinfo=timezone(timedelta(hours=-5)))
    observation = observation_submit(
        photos=[photo_upload(gps=ORDESA)], observed_at=moment
    ).observation

    assert observation.observed_at == moment


def test_a_position_read_from_exif_by_the_page_keeps_the_exif_altitude(campaign):
    observation = observation_submit(
        photos=[photo_upload(gps=ORDESA, altitude=1400, accuracy=8, taken_at=JUNE_FIRST)],
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        position_source="exif",
    ).observation

    assert observation.position_source == "exif"
    assert observation.altitude_m == 1400
    assert observation.accuracy_m == 8


def test_a_guess_outside_the_campaign_taxa_is_refused(campaign):
    from tests.factories import TaxonFactory

    stranger = TaxonFactory(scientific_name="Opuntia ficus-indica")

    with pytest.raises(ParkWatchError) as excinfo:
        observation_submit(photos=[photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)], guess=stranger)

    assert excinfo.value.field == "guess"
    assert Observation.objects.count() == 0
