"""The Celery app. Workers for each queue start from it (see Procfile and docker/compose.yaml).

Nothing here imports TensorFlow: the inference and training tasks load it lazily in the
worker's child process, after the fork.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
