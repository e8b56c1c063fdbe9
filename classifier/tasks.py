"""Celery tasks of the classifier: thin wrappers that load ids, call a service, decide retries.

Nothing here imports TensorFlow at import time: Celery imports this module in the parent
process before it forks, and the model is loaded lazily in each child on its first batch.
"""

from __future__ import annotations

import base64
import logging

from celery import shared_task
from django.conf import settings

from classifier.services.inference import classify_pending, identify, observations_sweep

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="classifier.tasks.classify_observations", max_retries=None)
def classify_observations(self, observation_ids: list[int]) -> dict:
    """Classify these sightings (and other waiting ones, up to a batch) in one forward pass."""
    outcome = classify_pending(hint_ids=[int(pk) for pk in observation_ids])
    if outcome.busy:
        # Another worker holds them. If it dies, its lease runs out: look again just after.
        classify_observations.apply_async(
            args=[outcome.busy], countdown=settings.CLASSIFICATION_LEASE_SECONDS + 1
        )
    if outcome.retry:
        retries = self.request.retries or 0
        countdown = min(settings.CLASSIFICATION_RETRY_BACKOFF * 2**retries, 600)
        logger.warning("Retrying %s in %ss: %s", outcome.retry, countdown, outcome.errors)
        classify_observations.apply_async(
            args=[outcome.retry], countdown=countdown, retries=retries + 1
        )
    return {
        "classified": outcome.classified,
        "failed": outcome.failed,
        "retry": outcome.retry,
        "busy": outcome.busy,
    }


@shared_task(name="classifier.tasks.sweep_unclassified")
def sweep_unclassified() -> int:
    """Re-enqueue sightings left `received` (lost messages, broker outages, dead workers)."""
    ids = observations_sweep()
    size = settings.CLASSIFIER_BATCH_SIZE
    for start in range(0, len(ids), size):
        classify_observations.apply_async(args=[ids[start : start + size]])
    if ids:
        logger.info("Sweeper re-enqueued %d sighting(s)", len(ids))
    return len(ids)


@shared_task(name="classifier.tasks.identify_photos", ignore_result=False)
def identify_photos(images_b64: list[str], campaign_id: int) -> dict:
    """Top 5 for photos sent to POST /api/v1/identify/; the result goes back, nothing is stored."""
    images = [base64.b64decode(data) for data in images_b64]
    return identify(images=images, campaign_id=campaign_id)


@shared_task(
    name="classifier.tasks.train_model",
    time_limit=settings.CELERY_TRAINING_TIME_LIMIT,
    soft_time_limit=settings.CELERY_TRAINING_SOFT_TIME_LIMIT,
)
def train_model(run_id: int) -> str | None:
    """Run one training run on the training worker (GPU, concurrency 1)."""
    from classifier.services.training import training_run_execute

    run = training_run_execute(run_id=run_id)
    return run.state if run else None


@shared_task(name="classifier.tasks.sweep_training_runs")
def sweep_training_runs() -> list[int]:
    """Fail runs whose worker died (their heartbeat stopped); requeue runs never started."""
    from classifier.services.training import training_runs_sweep

    return training_runs_sweep()


@shared_task(name="classifier.tasks.start_scheduled_training")
def start_scheduled_training() -> list[int]:
    from classifier.services.training import training_schedule_check

    return [run.pk for run in training_schedule_check()]
