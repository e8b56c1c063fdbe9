"""Tasks past their soft time limit end cleanly in a real worker: nothing left half-written.

One worker session (JSON logs) checks both long tasks: a training run stopped by its limit is
marked failed with the reason and stays resumable; a classification batch stopped by its limit
gives its unwritten sightings back at once, and each is classified exactly once afterwards.
The limits are given per message (Celery's `soft_time_limit` option, which wins over the
settings), so the worker can first load TensorFlow and the model without a limit.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import numpy as np
import pytest
from celery import current_app
from django.utils import timezone

from classifier.engine.preprocessing import PreprocessSpec
from classifier.models import ClassifierVersion, Prediction, TrainingRun
from classifier.services.inference import OVER_TIME_LIMIT
from classifier.services.registry import version_activate, version_register
from classifier.services.training import training_run_create
from observations.models import Observation
from observations.services.review import review_decide
from tests.classifier.test_training_run import FAST, texture_sighting
from tests.conftest import ORDESA
from tests.images import photo_upload
from tests.workers import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SLOW_SIZE = 299
BATCH = 30


def slow_classifier(campaign, tmp_path) -> ClassifierVersion:
    """A real Keras model heavy enough (three 64-filter convolutions at 299 px, ~0.15 s a photo
    on two cores) that a batch of BATCH photos, one per forward pass, outlasts a 1 s limit
    (which the pool checks once a second) several times over; ten views a photo on machines
    fast enough to finish it inside the limit without them."""
    import keras

    labels = list(
        campaign.taxa.order_by("scientific_name").values_list("scientific_name", flat=True)
    )
    inputs = keras.Input((SLOW_SIZE, SLOW_SIZE, 3))
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(labels), activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "slow.keras"
    model.save(path)
    photo = np.zeros((1, SLOW_SIZE, SLOW_SIZE, 3), dtype="float32")
    model(photo, training=False)
    started = time.perf_counter()
    for _ in range(3):
        model(photo, training=False)
    per_photo = (time.perf_counter() - started) / 3
    tta = "none" if BATCH * per_photo > 3 else "ten-crop"
    version = version_register(
        name="Slow test model",
        campaign=campaign,
        backend=ClassifierVersion.Backend.KERAS,
        weights_path=path,
        labels=labels,
        spec=PreprocessSpec.xception(SLOW_SIZE),
        architecture="slow",
        tta=tta,
    )
    return version_activate(version=version)


def worker_lines(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def task_finished(log, task_id: str) -> bool:
    return any(
        line["logger"] == "celery.app.trace" and task_id in line["message"]
        for line in worker_lines(log)
    )


def test_training_and_classification_past_their_soft_limits_end_cleanly(
    client, campaign, curator, taxa, tmp_path, settings
):
    settings.IDENTIFY_TIMEOUT_SECONDS = 120  # the warm-up loads TensorFlow on a busy machine
    slow_classifier(campaign, tmp_path)
    rng = np.random.default_rng(11)
    moment = timezone.now() - timedelta(days=1)
    for index in range(24):  # confirmed sightings of three taxa to train on
        observation = texture_sighting(index % 3, rng, moment)
        review_decide(
            observation=observation, curator=curator, decision="confirm", taxon=taxa[index % 3]
        )
    # Uploaded before the worker starts: their own messages are purged, the test sends one.
    waiting = []
    for seed in range(BATCH):
        response = client.post(
            "/api/v1/observations/",
            {
                "photos": [
                    photo_upload(gps=ORDESA, taken_at=moment, seed=seed, width=400, height=300)
                ]
            },
        )
        assert response.status_code == 201, response.content
        waiting.append(Observation.objects.get(uuid=response.json()["uuid"]))
    ids = [observation.pk for observation in waiting]
    log = tmp_path / "worker.log"
    env = {
        "LOG_FORMAT": "json",
        "TRAINING_WORKDIR": tmp_path / "training",
        "CLASSIFIER_BATCH_SIZE": BATCH,
        "CLASSIFIER_MAX_BATCH_SIZE": 1,
        "CLASSIFICATION_RETRY_BACKOFF": 4,
    }

    with celery_worker(queues="inference,training", log_path=log, **env):
        # TensorFlow and the model load in the worker's child, without a time limit.
        warm = client.post("/api/v1/identify/", {"photos": [photo_upload(seed=99)]})
        assert warm.status_code == 200, warm.content

        run = training_run_create(
            campaign=campaign, parameters={**FAST, "epochs": 500}, enqueue=False
        )
        training = current_app.send_task(
            "classifier.tasks.train_model",
            args=[run.pk],
            queue="training",
            soft_time_limit=15,  # time to reach a few epochs (and checkpoints) first
            time_limit=120,
        )
        wait_for(lambda: task_finished(log, training.id), timeout=120, log_path=log)

        batch = current_app.send_task(
            settings.CLASSIFY_TASK_NAME,
            args=[ids],
            queue="inference",
            soft_time_limit=1,
            time_limit=120,
        )
        wait_for(lambda: task_finished(log, batch.id), interval=0.05, timeout=60, log_path=log)
        # Right after the task ended (its retry waits 4 s): written whole, or given back.
        after_limit = {
            row["pk"]: row
            for row in Observation.objects.filter(pk__in=ids).values(
                "pk", "status", "classification_claimed_until", "status_detail"
            )
        }

        def all_classified():
            return Observation.objects.filter(pk__in=ids, status="classified").count() == BATCH

        wait_for(all_classified, timeout=90, log_path=log)

    lines = worker_lines(log)
    assert not [line for line in lines if "Hard time limit" in line["message"]]
    assert "WorkerLostError" not in log.read_text()

    # Training: failed with the reason, no candidate registered, resumable from a checkpoint.
    run.refresh_from_db()
    assert run.state == TrainingRun.State.FAILED, run.log
    assert "time limit" in run.error
    assert run.finished_at is not None
    assert run.result_version_id is None
    assert (run.progress or {}).get("epoch", 0) >= 1, run.log
    assert (tmp_path / "training" / f"run-{run.pk}" / "latest.json").is_file()
    resumed = training_run_create(campaign=campaign, resume_from=run, enqueue=False)
    assert resumed.resumed_from_id == run.pk

    # Classification: the limit struck mid-batch; nothing half-written, nothing left leased.
    released = [row for row in after_limit.values() if row["status"] == "received"]
    written = [row for row in after_limit.values() if row["status"] == "classified"]
    assert released, "the batch finished inside the limit: nothing was tested"
    assert len(released) + len(written) == BATCH
    for row in released:
        assert row["classification_claimed_until"] is None
        assert row["status_detail"] == OVER_TIME_LIMIT
    stopped = [line for line in lines if line["message"].startswith("Soft time limit reached")]
    assert [(line["task_id"], line["task_name"]) for line in stopped] == [
        (batch.id, settings.CLASSIFY_TASK_NAME)
    ]
    # The JSON lines about each given-back sighting name it and the task.
    by_uuid = {str(o.uuid): o.pk for o in waiting}
    failed_lines = [line for line in lines if line["message"].startswith("Classification of")]
    assert {by_uuid[line["observation"]] for line in failed_lines} == {r["pk"] for r in released}
    assert {line["task_id"] for line in failed_lines} == {batch.id}

    # Then each was classified exactly once, by the retry, with its whole top 5.
    top = min(5, campaign.taxa.count())
    for observation in Observation.objects.filter(pk__in=ids):
        merged = Prediction.objects.filter(observation=observation, photo__isnull=True)
        assert sorted(merged.values_list("rank", flat=True)) == list(range(1, top + 1))
        assert (
            Prediction.objects.filter(observation=observation, photo__isnull=False).count() == top
        )
        expected_attempts = 2 if observation.pk in {r["pk"] for r in released} else 1
        assert observation.classification_attempts == expected_attempts
        assert observation.status_detail == ""
