"""Versioned datasets: importing DEEP-OC datasets, freezing snapshots, writing them back out.

Splits are by sighting (all photos of one sighting in one split), stratified by taxon, and fixed
once given: a sighting in the test split stays there in every later snapshot, so versions are
always compared on the same test sightings (plus the new ones).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from pathlib import Path

from django.core.files import File
from django.db import transaction
from django.db.models import Max

from classifier.engine.deepoc_format import (
    DeepOCFormatError,
    DeepOCSample,
    read_deepoc_dataset,
    write_deepoc_dataset,
)
from classifier.models import DatasetImage, DatasetItem, DatasetSnapshot, Split, SplitAssignment
from classifier.services.registry import RegistryError, normalise_label, taxa_for_labels
from observations.models import Campaign, Observation
from observations.selectors import training_pool

logger = logging.getLogger(__name__)

TEST_FRACTION = 0.15
VAL_FRACTION = 0.15


def _stable_order(observation: Observation) -> str:
    return hashlib.sha256(observation.uuid.bytes).hexdigest()


def _targets(total: int) -> dict[str, int]:
    """How many sightings of a taxon go to test and val; a class needs a few to split at all."""
    test = max(1, round(total * TEST_FRACTION)) if total >= 3 else 0
    val = max(1, round(total * VAL_FRACTION)) if total >= 4 else 0
    return {Split.TEST: test, Split.VAL: val}


def splits_assign(*, campaign: Campaign) -> dict[int, str]:
    """Give every pooled sighting without a split one, stratified by taxon; return all splits."""
    by_taxon: dict[int, list[Observation]] = defaultdict(list)
    observations = Observation.objects.filter(
        pk__in=training_pool(campaign=campaign).values("observation")
    ).select_related("split_assignment")
    for observation in observations:
        by_taxon[observation.final_taxon_id].append(observation)
    new_rows = []
    assigned: dict[int, str] = {}
    for members in by_taxon.values():
        counts = Counter()
        fresh = []
        for observation in members:
            existing = getattr(observation, "split_assignment", None)
            if existing is not None:
                counts[existing.split] += 1
                assigned[observation.pk] = existing.split
            else:
                fresh.append(observation)
        targets = _targets(len(members))
        for observation in sorted(fresh, key=_stable_order):
            split = next(
                (s for s in (Split.TEST, Split.VAL) if counts[s] < targets[s]), Split.TRAIN
            )
            counts[split] += 1
            assigned[observation.pk] = split
            new_rows.append(SplitAssignment(observation=observation, split=split))
    SplitAssignment.objects.bulk_create(new_rows, ignore_conflicts=True)
    return assigned


@transaction.atomic
def snapshot_create(*, campaign: Campaign, created_by=None, note: str = "") -> DatasetSnapshot:
    """Freeze the training pool and the campaign's imported images as a new dataset version."""
    Campaign.objects.select_for_update().get(pk=campaign.pk)  # one new version at a time
    splits = splits_assign(campaign=campaign)
    photos = list(training_pool(campaign=campaign))
    images = list(
        DatasetImage.objects.filter(campaign=campaign).select_related("taxon").order_by("pk")
    )
    if not photos and not images:
        raise RegistryError(
            "Nothing to train on yet: no confirmed sightings and no imported images.",
            code="empty_dataset",
        )
    items = [
        DatasetItem(
            photo=photo, taxon=photo.observation.final_taxon, split=splits[photo.observation_id]
        )
        for photo in photos
    ]
    items += [DatasetItem(image=image, taxon=image.taxon, split=image.split) for image in images]

    # Output order: an imported dataset's classes first, in its classes.txt order, then the rest.
    imported = sorted({(image.class_index, image.taxon.scientific_name) for image in images})
    labels = list(dict.fromkeys([name for _, name in imported]))
    labels += sorted({item.taxon.scientific_name for item in items} - set(labels))
    counts: dict[str, dict[str, int]] = {label: dict.fromkeys(Split.values, 0) for label in labels}
    for item in items:
        counts[item.taxon.scientific_name][item.split] += 1

    version = (campaign.snapshots.aggregate(last=Max("version"))["last"] or 0) + 1
    snapshot = DatasetSnapshot.objects.create(
        campaign=campaign,
        version=version,
        created_by=created_by,
        labels=labels,
        counts=counts,
        confirmed_photos=len(photos),
        note=note,
    )
    for item in items:
        item.snapshot = snapshot
    DatasetItem.objects.bulk_create(items, batch_size=1000)
    logger.info("Dataset %s: %d items, %d classes", snapshot, len(items), len(labels))
    return snapshot


def dataset_import_deepoc(
    *,
    path: str | os.PathLike,
    campaign: Campaign,
    source: str | None = None,
    create_missing_taxa: bool = True,
) -> int:
    """Import an image-classification-tf dataset (images/ + dataset_files/); return the count.

    Unlabelled test lines (allowed by that format) cannot be trained or evaluated on: skipped.
    Re-importing the same dataset adds nothing twice.
    """
    try:
        dataset = read_deepoc_dataset(path)
    except DeepOCFormatError as exc:
        raise RegistryError(str(exc), code="dataset_invalid") from None
    missing = dataset.missing_images()
    if missing:
        raise RegistryError(
            f"{len(missing)} listed image(s) are missing, e.g. {missing[0]}.",
            code="dataset_images_missing",
        )
    source = source or Path(path).resolve().name
    taxa = taxa_for_labels(dataset.classes, create_missing=create_missing_taxa)
    unknown = [name for name, taxon in zip(dataset.classes, taxa, strict=True) if taxon is None]
    if unknown:
        raise RegistryError(f"No taxon for the classes {unknown[:5]}.", code="unknown_classes")
    campaign.taxa.add(*taxa)
    known = set(DatasetImage.objects.filter(source=source).values_list("relative_path", flat=True))
    created = 0
    for split, samples in dataset.splits.items():
        for sample in samples:
            if sample.label is None or sample.path in known:
                continue
            file_path = dataset.image_path(sample)
            digest = hashlib.sha256(file_path.read_bytes()).hexdigest()
            image = DatasetImage(
                campaign=campaign,
                source=source,
                relative_path=sample.path,
                sha256=digest,
                taxon=taxa[sample.label],
                label=dataset.classes[sample.label],
                class_index=sample.label,
                split=split,
            )
            with file_path.open("rb") as handle:
                image.file.save(f"{source}/{sample.path}", File(handle), save=False)
            image.save()
            known.add(sample.path)
            created += 1
    logger.info("Imported %d image(s) of dataset %s", created, source)
    return created


def snapshot_export_deepoc(*, snapshot: DatasetSnapshot, root: str | os.PathLike) -> Path:
    """Write a snapshot in image-classification-tf's layout, so its users can take it away.

    Imported images keep their paths and class names; sightings' photos are written as
    `<taxon>/<sighting uuid>-<n>.jpg` (the public derivative: oriented, no EXIF).
    """
    root = Path(root)
    class_names: dict[str, str] = {}
    for image in DatasetImage.objects.filter(pk__in=snapshot.items.values("image")).select_related(
        "taxon"
    ):
        class_names.setdefault(image.taxon.scientific_name, image.label)
    classes = [class_names.get(label, label) for label in snapshot.labels]
    index = {label: i for i, label in enumerate(snapshot.labels)}
    splits: dict[str, list[DeepOCSample]] = {split: [] for split in Split.values}
    images: dict[str, object] = {}
    items = snapshot.items.select_related("photo__observation", "image", "taxon").order_by("pk")
    for item in items:
        if item.image_id:
            relative = item.image.relative_path
            images[relative] = (
                item.image.file.read() if not _local(item.image.file) else item.image.file.path
            )
        else:
            photo = item.photo
            folder = normalise_label(item.taxon.scientific_name).replace(" ", "_")
            relative = f"{folder}/{photo.observation.uuid}-{photo.position + 1}.jpg"
            images[relative] = photo.image.read() if not _local(photo.image) else photo.image.path
        splits[item.split].append(DeepOCSample(relative, index[item.taxon.scientific_name]))
    write_deepoc_dataset(
        root, classes=classes, splits={k: v for k, v in splits.items() if v}, images=images
    )
    return root


def _local(field_file) -> bool:
    try:
        field_file.path  # noqa: B018 - FileSystemStorage has paths, S3 does not
    except NotImplementedError:
        return False
    return True
