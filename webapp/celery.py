"""The Celery app. Workers for each queue start from it (see Procfile and docker/compose.yaml).

Nothing here imports TensorFlow: the inference and training tasks load it lazily in the
worker's child process, after the fork.
"""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _django_logging(**kwargs) -> None:
    """Workers and beat log through settings.LOGGING: JSON lines with the sighting and task."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


# Celery skips its own log set-up only when a receiver is connected, so connect one only for
# JSON; plain logs keep Celery's familiar worker format.
if os.environ.get("LOG_FORMAT", "plain").strip().lower() == "json":
    setup_logging.connect(_django_logging, weak=False)
