"""Asking the inference workers to classify sightings, by task name through Celery.

The domain never imports the classifier: the queue is the boundary between the web and the GPU.
A publish that fails (broker down) is logged and left to the sweeper, which re-enqueues every
sighting still `received`; the upload itself has already been stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import current_app
from django.conf import settings

logger = logging.getLogger(__name__)


def classification_request(*, observation_ids: Iterable[int]) -> bool:
    """Publish one classification task for these sightings; False (logged) if the broker is down.

    Called after the upload's commit, inside the web request: it must neither raise nor wait.
    A broker that refuses connections fails at once (two quick attempts, no back-off) and one
    that does not answer within CELERY_BROKER_CONNECTION_TIMEOUT fails then; either way the
    sweeper re-enqueues the sighting once the broker is back.
    """
    ids = list(observation_ids)
    if not ids:
        return True
    try:
        with current_app.producer_or_acquire() as producer:
            # Kombu would otherwise retry the connection with 2 s back-offs.
            producer.connection.ensure_connection(
                max_retries=1, interval_start=0, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT
            )
            current_app.send_task(
                settings.CLASSIFY_TASK_NAME,
                args=[ids],
                queue="inference",
                producer=producer,
                retry=False,
                # Sent by name, Celery cannot know the task ignores its result: without this it
                # first subscribes to the result backend, retrying ~20 s when Redis is down.
                ignore_result=True,
            )
    except Exception as exc:
        # Expected while the broker is down: one line per upload, not a traceback each.
        logger.warning(
            "Could not enqueue classification of %s (%s: %s); the sweeper will retry.",
            ids,
            type(exc).__name__,
            exc,
        )
        return False
    return True
