"""The dashboard's figures on a small known dataset: counts by status, taxon, park and week, the
review backlog and its age, control follow-up, the AI against the experts for two versions, the
map's points; each in a fixed number of queries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from classifier.dashboard import selectors
from classifier.models import ClassifierVersion, Prediction
from observations.models import Observation, Photo
from tests.conftest import ORDESA
from tests.factories import CampaignFactory, ParkFactory

pytestmark = pytest.mark.django_db

# A Wednesday: its week started on Monday 8 June 2026.
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


def sighting(campaign, *, status, received, park=None, taxon=None, control="", decided=None):
    observation = Observation.objects.create(
        campaign=campaign,
        park=park,
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        position_source=Observation.PositionSource.EXIF,
        observed_at=NOW - received,
        status=status,
        final_taxon=taxon,
        control_status=control,
        decided_at=decided,
    )
    # received_at is set on creation; the figures count from when it arrived.
    Observation.objects.filter(pk=observation.pk).update(received_at=NOW - received)
    observation.refresh_from_db()
    return observation


def version(campaign, name: str) -> ClassifierVersion:
    return ClassifierVersion.objects.create(
        name=name,
        campaign=campaign,
        backend=ClassifierVersion.Backend.KERAS,
        input_size=32,
        preprocessing={},
        weights="classifiers/test.keras",
        weights_sha256="0" * 64,
    )


def top1(observation, version, *, taxon=None, label=None, rank=1, photo=None) -> Prediction:
    return Prediction.objects.create(
        observation=observation,
        version=version,
        photo=photo,
        rank=rank,
        taxon=taxon,
        label=label or taxon.scientific_name,
        probability=0.8,
        tta="none",
    )


@pytest.fixture
def other_park(db):
    return ParkFactory(name="Aigüestortes", slug="aiguestortes")


@pytest.fixture
def dataset(campaign, park, other_park, taxa):
    """Ten sightings of known status, park, taxon, age and follow-up (see each line)."""
    buddleja, reynoutria, ailanthus, orchid = taxa
    confirmed, days, hours = Observation.Status.CONFIRMED, timedelta(days=1), timedelta(hours=1)
    rows = {
        1: sighting(campaign, status=confirmed, received=1 * days, park=park, taxon=buddleja,
                    control="reported", decided=NOW - 20 * hours),
        2: sighting(campaign, status=confirmed, received=8 * days, park=park, taxon=buddleja,
                    control="treated", decided=NOW - 7 * days),
        3: sighting(campaign, status=confirmed, received=8 * days, park=other_park,
                    taxon=reynoutria, control="eradicated", decided=NOW - 6 * days),
        4: sighting(campaign, status=Observation.Status.REJECTED, received=2 * days),
        5: sighting(campaign, status=Observation.Status.CLASSIFIED, received=2 * hours, park=park),
        6: sighting(campaign, status=Observation.Status.RECEIVED, received=5 * days, park=park),
        7: sighting(campaign, status=Observation.Status.IN_REVIEW, received=40 * days,
                    park=other_park),
        8: sighting(campaign, status=Observation.Status.CONFLICT, received=10 * days),
        # Confirmed long ago: outside the twelve weeks, inside every other count.
        9: sighting(campaign, status=confirmed, received=100 * days, park=other_park,
                    taxon=ailanthus),
        # Not invasive: its follow-up status does not make it a control case.
        10: sighting(campaign, status=confirmed, received=3 * days, park=park, taxon=orchid,
                     control="reported", decided=NOW - 2 * days),
    }  # fmt: skip
    return rows


def test_it_counts_sightings_by_status_in_workflow_order(dataset, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        rows = selectors.status_counts()
    assert [(row["status"], row["n"]) for row in rows] == [
        ("received", 1),
        ("classified", 1),
        ("in_review", 1),
        ("confirmed", 5),
        ("rejected", 1),
        ("conflict", 1),
    ]
    confirmed = rows[3]
    assert confirmed["width"] == "100.0" and rows[0]["width"] == "20.0"
    assert confirmed["colour"] == selectors.STATUS_COLOURS["confirmed"]


def test_it_counts_confirmed_sightings_by_taxon_most_first(dataset, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        rows = selectors.taxon_counts()
    assert [(row["label"], row["n"]) for row in rows] == [
        ("Buddleja davidii", 2),
        ("Ailanthus altissima", 1),
        ("Cypripedium calceolus", 1),
        ("Reynoutria japonica", 1),
    ]
    assert rows[0]["is_invasive"] and not rows[2]["is_invasive"]


def test_it_counts_sightings_by_park_with_the_confirmed_ones(
    dataset, django_assert_max_num_queries
):
    with django_assert_max_num_queries(1):
        rows = selectors.park_counts()
    assert [(row["label"], row["n"], row["confirmed"]) for row in rows] == [
        ("Ordesa y Monte Perdido", 5, 3),
        ("Aigüestortes", 3, 2),
        ("Outside every park", 2, 0),
    ]
    assert (rows[0]["width"], rows[0]["confirmed_width"]) == ("100.0", "60.0")


def test_it_counts_sightings_received_per_week_with_empty_weeks(
    dataset, django_assert_max_num_queries
):
    with django_assert_max_num_queries(1):
        weeks = selectors.week_counts(now=NOW)
    assert len(weeks) == 12
    assert weeks[0]["week"] == date(2026, 3, 23) and weeks[-1]["week"] == date(2026, 6, 8)
    assert weeks[-1]["current"] and not weeks[-2]["current"]
    found = {row["week"]: (row["n"], row["confirmed"]) for row in weeks if row["n"]}
    assert found == {
        date(2026, 6, 8): (3, 1),
        date(2026, 6, 1): (4, 3),
        date(2026, 5, 25): (1, 0),
        date(2026, 4, 27): (1, 0),
    }
    assert sum(row["n"] for row in weeks) == 9  # the tenth was received 100 days ago
    tallest = weeks[-2]
    assert (tallest["y"], tallest["height"]) == ("0.00", "100.00")
    assert weeks[-1]["height"] == "75.00" and weeks[-1]["confirmed_height"] == "25.00"


def test_the_headline_figures(dataset, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        figures = selectors.headline_counts()
    assert figures == {"total": 10, "waiting": 4, "confirmed": 5, "open_control": 2}


def test_the_review_backlog_its_age_and_its_oldest_sightings(
    dataset, django_assert_max_num_queries
):
    with django_assert_max_num_queries(2):
        backlog = selectors.review_backlog(now=NOW)
    assert (backlog["total"], backlog["in_review"], backlog["conflict"]) == (4, 1, 1)
    assert backlog["oldest_at"] == NOW - timedelta(days=40)
    assert backlog["oldest_age"] == timedelta(days=40)
    assert [(row["label"], row["n"]) for row in backlog["ages"]] == [
        ("under a day", 1),
        ("1–3 days", 0),
        ("3–7 days", 1),
        ("1–4 weeks", 1),
        ("over 4 weeks", 1),
    ]
    assert backlog["oldest"] == [dataset[7], dataset[8], dataset[6], dataset[5]]
    assert backlog["oldest"][0].age == timedelta(days=40)


def test_open_control_cases_are_confirmed_invasive_ones_not_eradicated(
    dataset, django_assert_max_num_queries
):
    with django_assert_max_num_queries(2):
        control = selectors.control_overview()
    assert (control["open"], control["eradicated"]) == (2, 1)
    assert {row["status"]: row["n"] for row in control["steps"]} == {
        "reported": 1,
        "assessed": 0,
        "treatment_scheduled": 0,
        "treated": 1,
        "monitoring": 0,
        "eradicated": 1,
    }
    # Oldest confirmed first; the orchid (not invasive) is no case.
    assert control["oldest_open"] == [dataset[2], dataset[1]]


def test_the_ai_against_the_experts_per_version_with_its_confusion_table(
    dataset, campaign, taxa, django_assert_max_num_queries
):
    buddleja, reynoutria, ailanthus, _orchid = taxa
    first, second = version(campaign, "First"), version(campaign, "Second")
    top1(dataset[1], first, taxon=buddleja)
    top1(dataset[2], first, taxon=reynoutria)
    top1(dataset[3], first, taxon=reynoutria)
    top1(dataset[10], first, label="Orchis sp.")  # a raw label, no taxon
    # Ignored: a rank 2, a per-photo top-1, an undecided sighting.
    top1(dataset[2], first, taxon=buddleja, rank=2)
    photo = Photo.objects.create(
        observation=dataset[2], original="o.jpg", image="i.jpg", thumbnail="t.jpg", sha256="0",
        phash="0", phash_band0=0, phash_band1=0, phash_band2=0, phash_band3=0, width=1,
        height=1, format="JPEG", size_bytes=1,
    )  # fmt: skip
    top1(dataset[2], first, taxon=buddleja, photo=photo)
    top1(dataset[5], first, taxon=buddleja)
    top1(dataset[1], second, taxon=buddleja)
    top1(dataset[2], second, taxon=buddleja)
    top1(dataset[3], second, taxon=buddleja)
    top1(dataset[9], second, taxon=ailanthus)

    with django_assert_max_num_queries(3):
        results = selectors.ai_vs_experts()

    assert [item["version"] for item in results] == [second, first]  # newest first
    newer, older = results
    assert (older["confirmed"], older["matched"], older["rate_text"]) == (4, 2, "50%")
    assert [
        (row["taxon"].scientific_name, row["confirmed"], row["matched"], row["rate_text"])
        for row in older["per_taxon"]
    ] == [
        ("Buddleja davidii", 2, 1, "50%"),
        ("Cypripedium calceolus", 1, 0, "0%"),
        ("Reynoutria japonica", 1, 1, "100%"),
    ]
    assert [column["label"] for column in older["columns"]] == [
        "Buddleja davidii",
        "Cypripedium calceolus",
        "Reynoutria japonica",
        "Orchis sp.",
    ]
    assert older["columns"][3]["taxon"] is None
    assert [[cell["n"] for cell in row["cells"]] for row in older["matrix"]] == [
        [1, 0, 1, 0],
        [0, 0, 0, 1],
        [0, 0, 1, 0],
    ]
    assert [
        [index for index, cell in enumerate(row["cells"]) if cell["diagonal"]]
        for row in older["matrix"]
    ] == [[0], [1], [2]]

    assert (newer["confirmed"], newer["matched"], newer["rate_text"]) == (4, 3, "75%")
    assert [
        (row["taxon"].scientific_name, row["confirmed"], row["matched"])
        for row in newer["per_taxon"]
    ] == [
        ("Ailanthus altissima", 1, 1),
        ("Buddleja davidii", 2, 2),
        ("Reynoutria japonica", 1, 0),
    ]
    assert [[cell["n"] for cell in row["cells"]] for row in newer["matrix"]] == [
        [1, 0, 0],
        [0, 2, 0],
        [0, 1, 0],
    ]


def test_no_confirmed_prediction_means_no_table(dataset, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        assert selectors.ai_vs_experts() == []


def test_the_map_has_every_sighting_at_its_exact_position(
    dataset, taxa, django_assert_max_num_queries
):
    orchid = dataset[10]
    Observation.objects.filter(pk=orchid.pk).update(latitude=42.6789123, longitude=-0.0123456)
    with django_assert_max_num_queries(1):
        data = selectors.map_features()
    assert data["type"] == "FeatureCollection"
    assert (data["total"], data["truncated"], len(data["features"])) == (10, False, 10)
    by_uuid = {feature["properties"]["uuid"]: feature for feature in data["features"]}
    sensitive = by_uuid[str(orchid.uuid)]
    assert taxa[3].is_sensitive
    assert sensitive["geometry"] == {"type": "Point", "coordinates": [-0.0123456, 42.6789123]}
    assert sensitive["properties"]["status"] == "confirmed"
    assert sensitive["properties"]["taxon"] == "Cypripedium calceolus"
    assert sensitive["properties"]["taxon_source"] == "expert"
    assert sensitive["properties"]["url"] == f"/review/{orchid.uuid}/"
    assert by_uuid[str(dataset[4].uuid)]["properties"]["park"] == "Outside every park"

    with django_assert_max_num_queries(2):
        newest = selectors.map_features(limit=3)
    assert (newest["total"], newest["truncated"], len(newest["features"])) == (10, True, 3)
    assert newest["features"][0]["properties"]["uuid"] == str(dataset[5].uuid)  # 2 hours old


def test_a_campaign_filter_counts_only_its_sightings(dataset, campaign):
    other = CampaignFactory(name="Conus", slug="conus")
    sighting(other, status=Observation.Status.CONFIRMED, received=timedelta(days=1))
    assert selectors.headline_counts()["total"] == 11
    assert selectors.headline_counts(campaign=campaign)["total"] == 10
    assert selectors.headline_counts(campaign=other) == {
        "total": 1,
        "waiting": 0,
        "confirmed": 1,
        "open_control": 0,
    }
    assert len(selectors.map_features(campaign=other)["features"]) == 1


def test_run_progress_reads_the_workers_last_report(campaign):
    from classifier.models import DatasetSnapshot, TrainingRun

    snapshot = DatasetSnapshot.objects.create(campaign=campaign, version=1, labels=["a", "b"])
    run = TrainingRun.objects.create(
        campaign=campaign,
        snapshot=snapshot,
        state=TrainingRun.State.RUNNING,
        progress={
            "event": "step",
            "epoch": 2,
            "epochs": 4,
            "step": 5,
            "steps": 10,
            "loss": 0.51234,
            "accuracy": 0.8,
            "val_loss": None,
            "val_accuracy": None,
        },
        log="2026-06-10 10:00:00 one\n2026-06-10 10:01:00 two\n",
    )
    progress = selectors.run_progress(run, log_lines=1)
    assert (progress["percent"], progress["percent_text"], progress["width"]) == (
        37.5,
        "38%",
        "37.5",
    )
    assert progress["headline"] == "Epoch 2 of 4 · step 5 of 10"
    assert [(m["name"], m["value"]) for m in progress["metrics"]] == [
        ("loss", "0.5123"),
        ("accuracy", "0.8"),
    ]
    assert progress["log_tail"] == "2026-06-10 10:01:00 two"
    assert progress["active"]

    run.progress = {**run.progress, "event": "epoch", "val_loss": 0.6}
    run.state, run.cancel_requested = TrainingRun.State.RUNNING, True
    progress = selectors.run_progress(run)
    assert progress["percent"] == 50.0
    assert progress["headline"] == "Epoch 2 of 4 · cancelling at the next step"
    run.state = TrainingRun.State.SUCCEEDED
    assert selectors.run_progress(run)["percent"] == 100.0
    assert not selectors.run_progress(run)["active"]
