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
    ids = list(observation_ids)
    if not ids:
        return True
    try:
        current_app.send_task(
            settings.CLASSIFY_TASK_NAME,
            args=[ids],
            queue="inference",
            retry=False,
        )
    except Exception:
        logger.warning(
            "Could not enqueue classification of %s; the sweeper will retry.", ids, exc_info=True
        )
        return False
    return True
