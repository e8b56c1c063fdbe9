"""The whole loop with real workers: confirmed sightings -> snapshot -> training run on the
training queue -> candidate -> promotion -> sightings awaiting review classified again."""

import re
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from classifier.models import ClassifierVersion, Prediction, TrainingRun
from classifier.services.inference import classify_pending
from observations.models import Observation
from observations.services.review import review_decide
from tests.classifier.support import register_tiny_classifier
from tests.classifier.test_training_run import FAST, texture_sighting
from tests.workers import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_confirmed_sightings_train_a_model_that_is_promoted_and_reclassifies_the_queue(
    campaign, curator, admin_user, taxa, tmp_path
):
    rng = np.random.default_rng(11)
    moment = timezone.now() - timedelta(days=1)
    for index in range(48):
        observation = texture_sighting(index % 3, rng, moment)
        review_decide(
            observation=observation, curator=curator, decision="confirm", taxon=taxa[index % 3]
        )
    old = register_tiny_classifier(campaign, tmp_path)
    waiting = texture_sighting(1, rng, moment)
    classify_pending(hint_ids=[waiting.pk])
    assert Prediction.objects.filter(observation=waiting, version=old).exists()
    client = APIClient()
    client.force_authenticate(admin_user)
    log = tmp_path / "worker.log"

    with celery_worker(
        queues="training,inference,default",
        log_path=log,
        TRAINING_WORKDIR=tmp_path / "training",
        PROMOTION_MAX_RECALL_DROP=1.0,  # see test_training_run: macro-F1 decides here
    ):
        response = client.post("/api/v1/training-runs/", {"parameters": FAST}, format="json")
        assert response.status_code == 201, response.content
        run_id = response.json()["id"]

        def finished():
            return TrainingRun.objects.get(pk=run_id).state in ("succeeded", "failed", "cancelled")

        wait_for(finished, timeout=240, interval=1, log_path=log)
        run = TrainingRun.objects.get(pk=run_id)
        assert run.state == TrainingRun.State.SUCCEEDED, run.log + run.error
        new = run.result_version
        assert new.state == ClassifierVersion.State.ACTIVE

        def reclassified():
            return Prediction.objects.filter(observation=waiting, version=new).exists()

        wait_for(reclassified, timeout=90, log_path=log)

    detail = client.get(f"/api/v1/training-runs/{run_id}/").json()
    assert detail["percent"] == 100.0
    assert detail["snapshot"]["counts"][taxa[0].scientific_name]["test"] >= 1
    assert detail["promotion"]["action"] == "promoted"
    waiting.refresh_from_db()
    assert waiting.status == Observation.Status.CLASSIFIED
    old.refresh_from_db()
    assert old.state == ClassifierVersion.State.RETIRED
    # The old version's predictions stay as they were: history is kept.
    assert Prediction.objects.filter(observation=waiting, version=old).exists()


def test_a_killed_training_worker_leaves_the_run_failed_and_a_new_run_resumes_it(
    campaign, curator, admin_user, taxa, tmp_path, settings
):
    from classifier.services.training import training_run_create, training_runs_sweep
    from tests.workers import kill_worker_tree

    rng = np.random.default_rng(5)
    moment = timezone.now() - timedelta(days=1)
    for index in range(48):
        observation = texture_sighting(index % 3, rng, moment)
        review_decide(
            observation=observation, curator=curator, decision="confirm", taxon=taxa[index % 3]
        )
    log = tmp_path / "worker.log"
    env = {"TRAINING_WORKDIR": tmp_path / "training"}
    slow = {**FAST, "epochs": 40}

    with celery_worker(queues="training", log_path=log, **env) as worker:
        run = training_run_create(campaign=campaign, parameters=slow)

        def past_first_epoch():
            return (TrainingRun.objects.get(pk=run.pk).progress or {}).get("epoch", 0) >= 2

        wait_for(past_first_epoch, timeout=180, interval=0.5, log_path=log)
        kill_worker_tree(worker)

    run.refresh_from_db()
    assert run.state == TrainingRun.State.RUNNING  # nobody could say otherwise yet
    reached = run.progress["epoch"]
    settings.TRAINING_HEARTBEAT_TIMEOUT = 1
    wait_for(lambda: training_runs_sweep() == [run.pk], timeout=30, log_path=log)
    run.refresh_from_db()
    assert run.state == TrainingRun.State.FAILED
    assert "stopped responding" in run.error

    with celery_worker(queues="training,inference,default", log_path=log, **env):
        resumed = training_run_create(campaign=campaign, parameters={"epochs": 4}, resume_from=run)
        wait_for(
            lambda: TrainingRun.objects.get(pk=resumed.pk).state in ("succeeded", "failed"),
            timeout=240,
            interval=1,
            log_path=log,
        )
    resumed.refresh_from_db()
    assert resumed.state == TrainingRun.State.SUCCEEDED, resumed.log + resumed.error
    # It went on from the dead run's last checkpoint, not from the start.
    resumed_after = int(re.search(r"resuming after epoch (\d+)", resumed.log).group(1))
    assert 1 <= resumed_after <= reached
    assert "epoch 1/" not in resumed.log
