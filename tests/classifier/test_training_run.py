"""A training run from confirmed sightings to a gated candidate, in process (the training
worker runs the same `training_run_execute`)."""

from datetime import datetime, timedelta
from io import BytesIO

import numpy as np
import pytest
from django.utils import timezone

from classifier.models import ClassifierVersion, PromotionEvent, TrainingRun
from classifier.services.training import (
    training_run_create,
    training_run_execute,
    training_runs_sweep,
)
from observations.models import Observation
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from tests.classifier.engine.test_training import texture
from tests.classifier.support import register_tiny_classifier
from tests.conftest import ORDESA
from tests.images import upload

pytestmark = pytest.mark.django_db

SIZE = 48
FAST = {
    "architecture": "small_cnn",
    "image_size": SIZE,
    "epochs": 8,
    "batch_size": 8,
    "learning_rate": 3e-3,
    "augmentation": None,
    "early_stopping_patience": None,
    "start_from": "scratch",
}


def texture_sighting(kind: int, rng, observed: datetime) -> Observation:
    buffer = BytesIO()
    texture(kind, rng, size=SIZE).save(buffer, "JPEG", quality=92)
    return observation_submit(
        photos=[upload(buffer.getvalue())],
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        observed_at=observed,
    ).observation


@pytest.fixture
def confirmed_textures(campaign, curator, taxa):
    """Sixteen confirmed sightings of each of three taxa, each taxon a different texture."""
    rng = np.random.default_rng(7)
    moment = timezone.now() - timedelta(days=1)
    for index in range(48):
        kind = index % 3
        observation = texture_sighting(kind, rng, moment)
        review_decide(
            observation=observation, curator=curator, decision="confirm", taxon=taxa[kind]
        )
    return rng


@pytest.fixture
def trained_run(campaign, confirmed_textures, tmp_path, settings):
    settings.TRAINING_WORKDIR = tmp_path / "training"
    # The untrained active model below tends to answer one class for everything, which gives
    # that class a recall of 1 that no honest model keeps on a test split this small; the
    # recall rule is covered by the engine's gate tests, here macro-F1 decides.
    settings.PROMOTION_MAX_RECALL_DROP = 1.0
    register_tiny_classifier(campaign, tmp_path)  # an untrained model is active
    waiting = texture_sighting(0, confirmed_textures, timezone.now() - timedelta(hours=1))
    Observation.objects.filter(pk=waiting.pk).update(status=Observation.Status.CLASSIFIED)
    run = training_run_create(campaign=campaign, parameters=FAST, enqueue=False)
    return training_run_execute(run_id=run.pk), waiting


def test_a_run_trains_evaluates_and_the_gate_promotes_a_better_candidate(trained_run, campaign):
    run, waiting = trained_run

    assert run.state == TrainingRun.State.SUCCEEDED, run.log
    version = run.result_version
    assert version.state == ClassifierVersion.State.ACTIVE, (
        version.state_reason,
        version.metrics["test"]["top1"],
    )
    assert version.metrics["test"]["top1"] > 0.6  # three textures: chance is a third
    assert version.temperature is not None and version.temperature > 0
    assert {"curves", "confusion"} <= set(version.model_card["plots"])
    event = PromotionEvent.objects.get(version=version)
    assert event.action == PromotionEvent.Action.PROMOTED
    assert "macro-F1" in " ".join(event.reasons)
    assert run.progress["epoch"] == FAST["epochs"]
    assert "epoch 8/8" in run.log
    # Sightings still waiting for review go back through the new classifier.
    waiting.refresh_from_db()
    assert waiting.status == Observation.Status.RECEIVED


def test_a_worse_candidate_is_held_back_with_the_reason(trained_run, campaign):
    weak = {**FAST, "epochs": 1, "learning_rate": 1e-7}
    run = training_run_create(campaign=campaign, parameters=weak, enqueue=False)

    run = training_run_execute(run_id=run.pk)

    assert run.state == TrainingRun.State.SUCCEEDED, run.log
    held = run.result_version
    assert held.state == ClassifierVersion.State.CANDIDATE
    assert "Held back by the promotion gate" in held.state_reason
    assert PromotionEvent.objects.get(version=held).action == PromotionEvent.Action.HELD
    assert (
        ClassifierVersion.objects.get(campaign=campaign, state="active")
        == trained_run[0].result_version
    )


def test_a_cancelled_run_stops_and_can_be_resumed_from_its_checkpoint(trained_run, campaign):
    first, _ = trained_run
    TrainingRun.objects.filter(pk=first.pk).update(state=TrainingRun.State.CANCELLED)

    resumed = training_run_create(
        campaign=campaign,
        parameters={"epochs": 10},
        resume_from=TrainingRun.objects.get(pk=first.pk),
        enqueue=False,
    )
    resumed = training_run_execute(run_id=resumed.pk)

    assert resumed.state == TrainingRun.State.SUCCEEDED, resumed.log
    assert "resuming after epoch 8" in resumed.log
    assert "epoch 10/10" in resumed.log and "epoch 8/10" not in resumed.log


def test_a_run_cancelled_before_it_starts_never_trains(
    campaign, confirmed_textures, tmp_path, settings
):
    settings.TRAINING_WORKDIR = tmp_path / "training"
    run = training_run_create(campaign=campaign, parameters=FAST, enqueue=False)
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)

    run = training_run_execute(run_id=run.pk)

    assert run.state == TrainingRun.State.CANCELLED
    assert run.result_version is None


def test_a_run_whose_worker_died_is_failed_with_the_reason(campaign, confirmed_textures):
    run = training_run_create(campaign=campaign, parameters=FAST, enqueue=False)
    TrainingRun.objects.filter(pk=run.pk).update(
        state=TrainingRun.State.RUNNING,
        heartbeat_at=timezone.now() - timedelta(hours=2),
        progress={"event": "step", "epoch": 3, "epochs": 6},
    )

    assert training_runs_sweep() == [run.pk]

    run.refresh_from_db()
    assert run.state == TrainingRun.State.FAILED
    assert "stopped responding" in run.error and "epoch 3" in run.error


def test_bad_parameters_are_refused_clearly(campaign, confirmed_textures):
    from classifier.services.registry import RegistryError

    with pytest.raises(RegistryError) as excinfo:
        training_run_create(campaign=campaign, parameters={"architecture": "vgg99"}, enqueue=False)

    assert excinfo.value.field == "parameters"
    assert "architecture" in excinfo.value.detail


def test_the_schedule_starts_a_run_once_enough_photos_were_newly_confirmed(
    campaign, confirmed_textures, settings, django_capture_on_commit_callbacks
):
    from classifier.services.training import training_schedule_check

    settings.TRAINING_AUTO_MIN_NEW_PHOTOS = 49  # 48 confirmed so far
    assert training_schedule_check() == []

    settings.TRAINING_AUTO_MIN_NEW_PHOTOS = 48
    with django_capture_on_commit_callbacks() as callbacks:
        (run,) = training_schedule_check()
    assert run.state == TrainingRun.State.QUEUED
    assert run.parameters["start_from"] == "active"
    assert "Started by the schedule: 48 newly confirmed photos" in run.log
    assert len(callbacks) == 1  # handed to the training queue after commit
    # A run is already queued, and no photo was confirmed since its snapshot: nothing more.
    assert training_schedule_check() == []
    TrainingRun.objects.filter(pk=run.pk).update(state=TrainingRun.State.SUCCEEDED)
    assert training_schedule_check() == []
