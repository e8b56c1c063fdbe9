"""The model registry: registering versions, activating them, loading them in a worker."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from classifier.engine.preprocessing import PreprocessSpec
from classifier.engine.weights import WeightsIntegrityError, sha256_file, verify_sha256
from classifier.models import ClassifierLabel, ClassifierVersion
from observations.errors import ParkWatchError
from observations.models import Campaign, Taxon

logger = logging.getLogger(__name__)


class RegistryError(ParkWatchError):
    """A classifier that cannot be registered, activated or loaded; the message says why."""


def normalise_label(label: str) -> str:
    """DEEP-OC class names often use underscores: 'Buddleja_davidii' is 'Buddleja davidii'."""
    return " ".join(label.replace("_", " ").split())


def taxa_for_labels(labels: Sequence[str], *, create_missing: bool = False) -> list[Taxon | None]:
    """The taxon of each label by scientific name (case-insensitive), or None (a raw label)."""
    names = [normalise_label(label) for label in labels]
    known = {taxon.scientific_name.lower(): taxon for taxon in Taxon.objects.all()}
    taxa: list[Taxon | None] = []
    for name in names:
        taxon = known.get(name.lower())
        if taxon is None and create_missing and name:
            rank = Taxon.Rank.SPECIES if len(name.split()) >= 2 else Taxon.Rank.GENUS
            taxon = Taxon.objects.create(scientific_name=name[:200], rank=rank, is_invasive=False)
            known[name.lower()] = taxon
        taxa.append(taxon)
    return taxa


@transaction.atomic
def version_register(
    *,
    name: str,
    campaign: Campaign,
    backend: str,
    weights_path: str | os.PathLike,
    labels: Sequence[str],
    spec: PreprocessSpec,
    tta: str = ClassifierVersion.TTA.NONE,
    architecture: str = "",
    metrics: dict | None = None,
    temperature: float | None = None,
    source: str = "",
    licence: str = "",
    citation: str = "",
    description: str = "",
    model_card: dict | None = None,
    is_demo: bool = False,
    create_missing_taxa: bool = False,
    created_by=None,
) -> ClassifierVersion:
    """Copy the weights into storage (with their sha256) and record a candidate version."""
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise RegistryError(
            f"No weights file at {weights_path}.", code="weights_missing", field="weights"
        )
    if backend not in ClassifierVersion.Backend.values:
        raise RegistryError(
            f"Unknown backend {backend!r}.", code="invalid_backend", field="backend"
        )
    if tta not in ClassifierVersion.TTA.values:
        raise RegistryError(
            f"Unknown test-time augmentation {tta!r}.", code="invalid_tta", field="tta"
        )
    if not labels:
        raise RegistryError(
            "A classifier needs at least one label.", code="labels_missing", field="labels"
        )
    if len(set(labels)) != len(labels):
        raise RegistryError("The labels are not unique.", code="labels_not_unique", field="labels")

    version = ClassifierVersion(
        name=name,
        campaign=campaign,
        backend=backend,
        architecture=architecture,
        input_size=spec.image_size,
        preprocessing=spec.to_dict(),
        tta=tta,
        weights_sha256=sha256_file(weights_path),
        metrics=metrics or {},
        temperature=temperature,
        source=source,
        licence=licence,
        citation=citation,
        description=description,
        model_card=model_card or {},
        is_demo=is_demo,
        created_by=created_by,
    )
    with weights_path.open("rb") as handle:
        version.weights.save(
            f"{weights_path.stem}-{version.weights_sha256[:12]}{''.join(weights_path.suffixes)}",
            File(handle),
            save=False,
        )
    try:
        version.save()
        taxa = taxa_for_labels(labels, create_missing=create_missing_taxa)
        ClassifierLabel.objects.bulk_create(
            ClassifierLabel(version=version, index=index, name=label, taxon=taxon)
            for index, (label, taxon) in enumerate(zip(labels, taxa, strict=True))
        )
    except BaseException:
        version.weights.storage.delete(version.weights.name)
        raise
    logger.info(
        "Registered classifier %s (%s, sha256 %s)", version, backend, version.weights_sha256[:12]
    )
    return version


def check_version_activate(*, version: ClassifierVersion) -> None:
    if not version.labels.exists():
        raise RegistryError("This version has no labels.", code="labels_missing")
    if not version.weights.name:
        raise RegistryError("This version has no weights file.", code="weights_missing")


@transaction.atomic
def do_version_activate(*, version: ClassifierVersion, reason: str = "") -> ClassifierVersion:
    """Make `version` its campaign's active classifier; the previous one is retired.

    Workers look the active version up for every batch, so this takes effect without a restart.
    """
    version = ClassifierVersion.objects.select_for_update().get(pk=version.pk)
    if version.state == ClassifierVersion.State.ACTIVE:
        return version
    now = timezone.now()
    (
        ClassifierVersion.objects.select_for_update()
        .filter(campaign_id=version.campaign_id, state=ClassifierVersion.State.ACTIVE)
        .update(
            state=ClassifierVersion.State.RETIRED,
            state_reason=f"Replaced by {version.label} on {now:%Y-%m-%d %H:%M} UTC.",
        )
    )
    version.state = ClassifierVersion.State.ACTIVE
    version.activated_at = now
    version.state_reason = reason or "Activated."
    version.save(update_fields=["state", "activated_at", "state_reason"])
    logger.info("Classifier %s is now active for campaign %s", version, version.campaign_id)
    return version


def version_activate(*, version: ClassifierVersion, reason: str = "") -> ClassifierVersion:
    check_version_activate(version=version)
    return do_version_activate(version=version, reason=reason)


def active_version(*, campaign_id: int) -> ClassifierVersion | None:
    return (
        ClassifierVersion.objects.filter(
            campaign_id=campaign_id, state=ClassifierVersion.State.ACTIVE
        )
        .prefetch_related("labels__taxon")
        .first()
    )


def local_weights(version: ClassifierVersion) -> Path:
    """A local, sha256-verified copy of the version's weights (storage may be S3).

    A file whose content does not match the recorded sha256 is refused with a clear error.
    """
    storage = version.weights.storage
    try:
        path = Path(storage.path(version.weights.name))
    except NotImplementedError:  # remote storage: copy once into the worker's cache
        suffix = "".join(Path(version.weights.name).suffixes)
        path = Path(settings.MODEL_CACHE_DIR) / f"{version.weights_sha256}{suffix}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # One partial file per process: workers starting together each fetch their own.
            partial = path.with_suffix(f"{path.suffix}.{os.getpid()}.part")
            try:
                with (
                    storage.open(version.weights.name, "rb") as source,
                    partial.open("wb") as target,
                ):
                    shutil.copyfileobj(source, target, 1 << 20)
            except FileNotFoundError:
                partial.unlink(missing_ok=True)
                raise RegistryError(
                    f"The weights of {version.label} are missing from storage.",
                    code="weights_missing",
                ) from None
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            partial.replace(path)
    if not path.exists():
        raise RegistryError(
            f"The weights of {version.label} are missing from storage.", code="weights_missing"
        )
    try:
        verify_sha256(path, version.weights_sha256)
    except WeightsIntegrityError as exc:
        raise RegistryError(
            f"Refusing to load {version.label}: its weights do not match the recorded sha256 ({exc}).",
            code="weights_sha256_mismatch",
        ) from None
    return path


def version_load(
    version: ClassifierVersion,
    *,
    max_batch_size: int | None = None,
    compute_dtype: str | None = None,
):
    """Load a version for serving: backend, the preprocessing it was trained with, its TTA.

    Keras models are served in `compute_dtype` (default: the CLASSIFIER_COMPUTE_DTYPE setting).
    """
    from classifier.engine.backends import load_backend
    from classifier.engine.inference import Classifier

    path = local_weights(version)
    labels = [label.name for label in version.labels.order_by("index")]
    spec = PreprocessSpec.from_dict(version.preprocessing)
    # A DEEP-OC import keeps only its final_model.h5 (a Keras 2 file): it loads like any legacy
    # Keras file, with the preprocessing its conf.json gave, stored on the version.
    kind = "keras" if version.backend == ClassifierVersion.Backend.DEEPOC else version.backend
    options = {}
    if kind == "keras":
        options["compute_dtype"] = compute_dtype or settings.CLASSIFIER_COMPUTE_DTYPE
    backend = load_backend(kind, path, **options)
    return Classifier(
        backend,
        spec,
        labels,
        tta=version.tta,
        temperature=version.temperature,
        max_batch_size=max_batch_size or settings.CLASSIFIER_MAX_BATCH_SIZE,
    )
