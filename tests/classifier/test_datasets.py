import filecmp
from datetime import datetime

import pytest

from classifier.engine.deepoc_format import write_deepoc_dataset
from classifier.models import DatasetImage, SplitAssignment
from classifier.services.datasets import (
    dataset_import_deepoc,
    snapshot_create,
    snapshot_export_deepoc,
)
from classifier.services.registry import RegistryError
from observations.models import Observation
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from tests.conftest import ORDESA
from tests.images import make_photo, photo_upload

pytestmark = pytest.mark.django_db

JUNE_FIRST = datetime(2026, 6, 1, 10, 0)


def confirmed(curator, taxon, *, seed: int, photos: int = 1) -> Observation:
    observation = observation_submit(
        photos=[
            photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=seed * 10 + i, width=96, height=72)
            for i in range(photos)
        ]
    ).observation
    review_decide(observation=observation, curator=curator, decision="confirm", taxon=taxon)
    return observation


def test_splits_are_by_sighting_and_stratified_by_taxon(campaign, curator, taxa):
    for i in range(10):
        confirmed(curator, taxa[0], seed=i, photos=2)
    for i in range(10, 17):
        confirmed(curator, taxa[1], seed=i)

    snapshot = snapshot_create(campaign=campaign)

    by_observation: dict[int, set[str]] = {}
    for item in snapshot.items.select_related("photo"):
        by_observation.setdefault(item.photo.observation_id, set()).add(item.split)
    assert all(len(splits) == 1 for splits in by_observation.values())  # photos never split apart
    for taxon in taxa[:2]:
        counts = snapshot.counts[taxon.scientific_name]
        assert counts["test"] >= 1 and counts["val"] >= 1 and counts["train"] > counts["test"]
    assert snapshot.version == 1
    assert snapshot.confirmed_photos == 27


def test_a_test_sighting_stays_in_test_in_every_later_snapshot(campaign, curator, taxa):
    for i in range(8):
        confirmed(curator, taxa[0], seed=i)
    first = snapshot_create(campaign=campaign)
    test_before = set(first.items.filter(split="test").values_list("photo__observation", flat=True))
    for i in range(8, 30):
        confirmed(curator, taxa[0], seed=i)

    second = snapshot_create(campaign=campaign)

    test_after = set(second.items.filter(split="test").values_list("photo__observation", flat=True))
    assert test_before and test_before <= test_after
    assert second.version == 2
    assert SplitAssignment.objects.count() == 30


def test_a_corrected_sighting_moves_to_its_new_taxon_and_a_rejected_one_leaves(
    campaign, curator, admin_user, taxa
):
    moved = confirmed(curator, taxa[0], seed=1)
    dropped = confirmed(curator, taxa[0], seed=2)
    review_decide(observation=moved, curator=admin_user, decision="confirm", taxon=taxa[1])
    review_decide(
        observation=dropped, curator=admin_user, decision="reject", reject_reason="bad_photo"
    )

    snapshot = snapshot_create(campaign=campaign)

    items = list(snapshot.items.select_related("photo", "taxon"))
    assert [(item.photo.observation_id, item.taxon) for item in items] == [(moved.pk, taxa[1])]


def test_an_empty_pool_gives_a_clear_error(campaign):
    with pytest.raises(RegistryError) as excinfo:
        snapshot_create(campaign=campaign)

    assert excinfo.value.code == "empty_dataset"


def make_deepoc_dataset(
    root, classes=("Buddleja_davidii", "Reynoutria_japonica", "Impatiens_glandulifera")
):
    splits = {"train": [], "val": [], "test": []}
    images = {}
    n = 0
    for index, _ in enumerate(classes):
        for split, count in (("train", 4), ("val", 1), ("test", 2)):
            for _ in range(count):
                relative = f"class{index}/img_{n:03d}.jpg"
                images[relative] = make_photo(width=48, height=40, seed=n)
                splits[split].append((relative, index))
                n += 1
    write_deepoc_dataset(root, classes=list(classes), splits=splits, images=images)
    return root


def test_a_deepoc_dataset_is_imported_and_written_back_identically(campaign, tmp_path):
    source = make_deepoc_dataset(tmp_path / "incoming")

    created = dataset_import_deepoc(path=source, campaign=campaign, source="ordesa-2019")
    again = dataset_import_deepoc(path=source, campaign=campaign, source="ordesa-2019")
    snapshot = snapshot_create(campaign=campaign)
    out = snapshot_export_deepoc(snapshot=snapshot, root=tmp_path / "outgoing")

    assert created == 21 and again == 0
    assert DatasetImage.objects.filter(split="test").count() == 6
    for name in ("classes.txt", "train.txt", "val.txt", "test.txt"):
        assert filecmp.cmp(
            source / "dataset_files" / name, out / "dataset_files" / name, shallow=False
        ), name
    comparison = filecmp.dircmp(source / "images", out / "images")
    assert not comparison.left_only and not comparison.right_only
    assert campaign.taxa.filter(scientific_name="Impatiens glandulifera").exists()


def test_a_dataset_with_missing_images_is_refused_and_nothing_imported(campaign, tmp_path):
    source = make_deepoc_dataset(tmp_path / "incoming")
    (source / "images" / "class0" / "img_000.jpg").unlink()

    with pytest.raises(RegistryError) as excinfo:
        dataset_import_deepoc(path=source, campaign=campaign)

    assert excinfo.value.code == "dataset_images_missing"
    assert DatasetImage.objects.count() == 0


def test_snapshot_export_writes_sightings_under_their_taxon(campaign, curator, taxa, tmp_path):
    observation = confirmed(curator, taxa[0], seed=1)
    snapshot = snapshot_create(campaign=campaign)

    out = snapshot_export_deepoc(snapshot=snapshot, root=tmp_path / "out")

    written = out / "images" / "Buddleja_davidii" / f"{observation.uuid}-1.jpg"
    assert written.is_file()
    assert (out / "dataset_files" / "classes.txt").read_text() == "Buddleja davidii\n"
