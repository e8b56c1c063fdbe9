"""Classifying sightings in batches, in an inference worker process.

A batch is claimed with a lease (a conditional UPDATE, `skip_locked` on PostgreSQL), classified
in one forward pass outside any transaction, and written back only if the lease is still ours:
a worker killed mid-batch loses its lease when it expires and another worker claims the same
sightings, and a late writer finds the lease changed and writes nothing. Each sighting is thus
classified exactly once, with Prediction rows unique per (sighting or photo, version, rank).
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from classifier.engine.inference import ModelCache, entropy, merge, renormalise, top_k
from classifier.models import ClassifierVersion, Prediction
from classifier.services.registry import active_version, version_load
from observations.logcontext import sighting_context, sighting_extra
from observations.models import Observation, Photo

logger = logging.getLogger(__name__)

TOP_K = 5
OVER_TIME_LIMIT = "Classification went over the task's time limit; it will be tried again."
_models = ModelCache(maxsize=2)
_tensorflow_configured = False


@dataclass
class BatchOutcome:
    classified: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)  # failed this time, attempts left
    busy: list[int] = field(default_factory=list)  # leased by another worker right now
    errors: dict[int, str] = field(default_factory=dict)


def configure_tensorflow_once() -> None:
    """TensorFlow threads for this process, once, before its first op (after the fork)."""
    global _tensorflow_configured
    if _tensorflow_configured:
        return
    _tensorflow_configured = True
    from classifier.engine.inference import configure_tensorflow

    threads = settings.TF_INTRA_OP_THREADS or None
    configure_tensorflow(
        intra_op_threads=threads, inter_op_threads=1 if threads else None, memory_growth=True
    )


def classifier_for(version: ClassifierVersion):
    """The loaded model of a version, cached per process and keyed by its weights' sha256."""

    def load():
        if version.backend != ClassifierVersion.Backend.ONNX:
            configure_tensorflow_once()
        logger.info("Loading classifier %s in process %s", version, os.getpid())
        return version_load(version)

    return _models.get((version.pk, version.weights_sha256), load)


def observations_claim(*, hint_ids: list[int], limit: int) -> tuple[list[int], object]:
    """Claim up to `limit` sightings waiting for classification: the hinted ones first.

    Returns the claimed ids and the lease token (the lease's end, unique to this claim).
    """
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.CLASSIFICATION_LEASE_SECONDS)
    waiting = Observation.objects.filter(status=Observation.Status.RECEIVED).filter(
        Q(classification_claimed_until__isnull=True) | Q(classification_claimed_until__lt=now)
    )
    with transaction.atomic():
        locked = (
            waiting.select_for_update(skip_locked=True)
            if connection.features.has_select_for_update_skip_locked
            else waiting
        )
        ids = list(
            locked.filter(pk__in=hint_ids)
            .order_by("received_at")
            .values_list("pk", flat=True)[:limit]
        )
        if len(ids) < limit:
            ids += list(
                locked.exclude(pk__in=ids)
                .order_by("received_at")
                .values_list("pk", flat=True)[: limit - len(ids)]
            )
        if ids:
            Observation.objects.filter(pk__in=ids).update(
                classification_claimed_until=lease_until,
                classification_attempts=F("classification_attempts") + 1,
            )
    return ids, lease_until


def classify_pending(*, hint_ids: list[int], batch_size: int | None = None) -> BatchOutcome:
    """Claim a batch (the hinted sightings first), classify it, write the results."""
    outcome = BatchOutcome()
    ids, lease = observations_claim(
        hint_ids=hint_ids, limit=batch_size or settings.CLASSIFIER_BATCH_SIZE
    )
    outcome.busy = list(
        Observation.objects.filter(
            pk__in=set(hint_ids) - set(ids),
            status=Observation.Status.RECEIVED,
            classification_claimed_until__gte=timezone.now(),
        ).values_list("pk", flat=True)
    )
    if not ids:
        return outcome

    observations = list(
        Observation.objects.filter(pk__in=ids)
        .select_related("campaign")
        .prefetch_related("campaign__taxa")
    )
    by_campaign: dict[int, list[Observation]] = defaultdict(list)
    for observation in observations:
        by_campaign[observation.campaign_id].append(observation)

    try:
        for campaign_id, group in by_campaign.items():
            version = active_version(campaign_id=campaign_id)
            if version is None:
                for observation in group:
                    _fail(
                        observation,
                        lease,
                        "No active classifier for this campaign: an admin must activate one.",
                        outcome,
                        final=True,
                    )
                continue
            try:
                classifier = classifier_for(version)
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:
                logger.exception("Could not load classifier %s", version)
                for observation in group:
                    _fail(observation, lease, f"Could not load {version.label}: {exc}", outcome)
                continue
            _classify_group(group, version, classifier, lease, outcome)
    except SoftTimeLimitExceeded:
        # Out of time: stop here and give back, now rather than when the lease expires, every
        # sighting not written yet (a write is one transaction: whole or not at all). The
        # attempt counts, so a batch that never fits in the limit ends `classification_failed`.
        done = {*outcome.classified, *outcome.failed, *outcome.retry}
        late = [observation for observation in observations if observation.pk not in done]
        logger.warning(
            "Soft time limit reached: %d of %d claimed sighting(s) go back to the queue",
            len(late),
            len(observations),
        )
        for observation in late:
            _fail(observation, lease, OVER_TIME_LIMIT, outcome)
    return outcome


def _classify_group(group, version, classifier, lease, outcome: BatchOutcome) -> None:
    photos_by_observation: dict[int, list[Photo]] = defaultdict(list)
    for photo in Photo.objects.filter(observation__in=group).order_by("observation_id", "position"):
        photos_by_observation[photo.observation_id].append(photo)

    images, owners, photo_rows = [], [], []
    for observation in group:
        photos = photos_by_observation.get(observation.pk, [])
        if not photos:
            _fail(observation, lease, "The sighting has no photos.", outcome, final=True)
            continue
        try:
            decoded = []
            with sighting_context(observation.uuid):
                for photo in photos:
                    with photo.image.open("rb") as handle:
                        decoded.append(classifier.decode(handle.read()))
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            _fail(observation, lease, f"Could not read a photo: {exc}", outcome)
            continue
        images.extend(decoded)
        owners.extend([observation] * len(decoded))
        photo_rows.extend(photos)
    if not images:
        return

    try:
        probabilities = classifier.predict_images(images)  # one forward pass (chunked)
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        logger.exception(
            "Forward pass failed for %s",
            version,
            extra={"observations": sorted({str(o.uuid) for o in owners})},
        )
        for observation in {o.pk: o for o in owners}.values():
            _fail(observation, lease, f"The classifier failed: {exc}", outcome)
        return

    labels = list(version.labels.all())
    campaign = group[0].campaign
    if campaign.renormalise_to_campaign_taxa:
        campaign_taxa = {taxon.pk for taxon in campaign.taxa.all()}
        keep = [label.index for label in labels if label.taxon_id in campaign_taxa]
        if keep:
            probabilities = renormalise(probabilities, keep)

    rows_by_observation: dict[int, list[int]] = defaultdict(list)
    for row, observation in enumerate(owners):
        rows_by_observation[observation.pk].append(row)
    for observation in {o.pk: o for o in owners}.values():
        rows = rows_by_observation[observation.pk]
        with sighting_context(observation.uuid):
            _write(
                observation,
                version,
                labels,
                probabilities[rows],
                [photo_rows[r] for r in rows],
                lease,
                outcome,
            )


def _write(
    observation, version, labels, per_photo: np.ndarray, photos, lease, outcome: BatchOutcome
) -> None:
    merged = merge(per_photo)
    best = top_k(merged, TOP_K)
    top_probabilities = np.array([p for _, p in best], dtype=np.float64)
    spread = (
        float(entropy(top_probabilities / top_probabilities.sum()))
        if top_probabilities.sum() > 0
        else 0.0
    )
    top_label = labels[best[0][0]]
    invasive = [
        float(p) for index, p in best if labels[index].taxon_id and labels[index].taxon.is_invasive
    ]
    now = timezone.now()
    with transaction.atomic():
        won = Observation.objects.filter(
            pk=observation.pk,
            status=Observation.Status.RECEIVED,
            classification_claimed_until=lease,
        ).update(
            status=Observation.Status.CLASSIFIED,
            status_detail="",
            ai_taxon=top_label.taxon_id,
            ai_label=top_label.name,
            ai_score=float(best[0][1]),
            ai_entropy=spread if math.isfinite(spread) else None,
            ai_invasive_score=max(invasive, default=0.0),
            classified_at=now,
            classification_claimed_until=None,
        )
        if not won:
            logger.info(
                "Sighting %s was classified by another worker; keeping theirs.", observation.pk
            )
            return
        predictions = [
            Prediction(
                observation=observation,
                version=version,
                rank=rank,
                taxon_id=labels[index].taxon_id,
                label=labels[index].name,
                probability=float(probability),
                tta=version.tta,
            )
            for rank, (index, probability) in enumerate(best, start=1)
        ]
        for photo, probabilities in zip(photos, per_photo, strict=True):
            predictions += [
                Prediction(
                    observation=observation,
                    photo=photo,
                    version=version,
                    rank=rank,
                    taxon_id=labels[index].taxon_id,
                    label=labels[index].name,
                    probability=float(probability),
                    tta=version.tta,
                )
                for rank, (index, probability) in enumerate(top_k(probabilities, TOP_K), start=1)
            ]
        Prediction.objects.bulk_create(predictions, ignore_conflicts=True)
    outcome.classified.append(observation.pk)
    logger.info(
        "Classified sighting %s: %s (%.3f) by %s",
        observation.pk,
        top_label.name,
        best[0][1],
        version.label,
    )


def _fail(observation, lease, reason: str, outcome: BatchOutcome, *, final: bool = False) -> None:
    """Give the lease back; after the last attempt the sighting shows `classification_failed`."""
    # The claim already counted this attempt.
    attempts_left = observation.classification_attempts < settings.CLASSIFICATION_MAX_ATTEMPTS
    current = Observation.objects.filter(pk=observation.pk, classification_claimed_until=lease)
    if attempts_left and not final:
        if current.update(classification_claimed_until=None, status_detail=reason[:2000]):
            outcome.retry.append(observation.pk)
    elif current.update(
        status=Observation.Status.CLASSIFICATION_FAILED,
        status_detail=reason[:2000],
        classification_claimed_until=None,
    ):
        outcome.failed.append(observation.pk)
    outcome.errors[observation.pk] = reason
    logger.warning(
        "Classification of sighting %s failed: %s",
        observation.pk,
        reason,
        extra=sighting_extra(observation),
    )


def observations_sweep() -> list[int]:
    """Sightings that need (another) classification request: the sweeper's list.

    - `received` with no live lease, older than the grace period: a lost message, a broker
      outage at upload time, or a worker that died;
    - `classification_failed` for long enough, with attempts left: retried.
    The failed ones go back to `received` so the normal path picks them up.
    """
    now = timezone.now()
    grace = now - timedelta(seconds=settings.CLASSIFICATION_SWEEP_GRACE_SECONDS)
    retry_after = now - timedelta(seconds=settings.CLASSIFICATION_RETRY_FAILED_AFTER)
    Observation.objects.filter(
        status=Observation.Status.CLASSIFICATION_FAILED,
        updated_at__lt=retry_after,
        classification_attempts__lt=settings.CLASSIFICATION_GIVE_UP_ATTEMPTS,
    ).update(status=Observation.Status.RECEIVED, classification_claimed_until=None, updated_at=now)
    return list(
        Observation.objects.filter(status=Observation.Status.RECEIVED, received_at__lt=grace)
        .filter(
            Q(classification_claimed_until__isnull=True) | Q(classification_claimed_until__lt=now)
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[: settings.CLASSIFICATION_SWEEP_LIMIT]
    )


def identify(*, images: list[bytes], campaign_id: int) -> dict:
    """Top 5 for 1-5 photos of one organism, nothing stored (the identify endpoint)."""
    version = active_version(campaign_id=campaign_id)
    if version is None:
        return {
            "error": "no_active_classifier",
            "detail": "No active classifier for this campaign.",
        }
    classifier = classifier_for(version)
    per_photo = classifier.predict_images([classifier.decode(data) for data in images])
    labels = list(version.labels.all())
    merged = merge(per_photo)
    return {
        "version": {
            "id": version.pk,
            "name": version.name,
            "is_demo": version.is_demo,
            "tta": version.tta,
        },
        "results": [
            {
                "rank": rank,
                "label": labels[index].name,
                "taxon_id": labels[index].taxon_id,
                "probability": round(float(probability), 6),
            }
            for rank, (index, probability) in enumerate(top_k(merged, TOP_K), start=1)
        ],
    }
