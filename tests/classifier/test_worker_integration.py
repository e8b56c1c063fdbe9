"""An upload classified by a real Celery worker process (Redis broker in CI), stored once."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from classifier.models import Prediction
from observations.models import Observation
from tests.classifier.support import register_tiny_classifier
from tests.conftest import ORDESA
from tests.images import photo_upload
from tests.workers import celery_worker, kill_worker_tree, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

JUNE_FIRST = datetime(2026, 6, 1, 10, 0)


def upload_sighting(client, seed: int = 0, photos: int = 1) -> Observation:
    response = client.post(
        "/api/v1/observations/",
        {
            "photos": [
                photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=seed * 10 + i)
                for i in range(photos)
            ]
        },
    )
    assert response.status_code == 201, response.content
    return Observation.objects.get(uuid=response.json()["uuid"])


def test_an_upload_is_classified_by_a_real_worker_and_stored_once(client, campaign, tmp_path):
    version = register_tiny_classifier(campaign, tmp_path)
    log = tmp_path / "worker.log"

    with celery_worker(log_path=log):
        observation = upload_sighting(client, photos=2)

        def classified():
            observation.refresh_from_db()
            return observation.status == Observation.Status.CLASSIFIED

        wait_for(classified, timeout=90, log_path=log)

    top = min(5, campaign.taxa.count())
    merged = Prediction.objects.filter(observation=observation, photo__isnull=True).order_by("rank")
    assert [p.rank for p in merged] == list(range(1, top + 1))
    assert all(p.version_id == version.pk for p in merged)
    probabilities = [p.probability for p in merged]
    assert probabilities == sorted(probabilities, reverse=True)
    assert observation.ai_taxon_id == merged[0].taxon_id
    assert observation.ai_score == pytest.approx(merged[0].probability)
    # Each of the two photos also has its own top 5.
    assert (
        Prediction.objects.filter(observation=observation, photo__isnull=False).count() == 2 * top
    )
    assert observation.classification_attempts == 1


def test_a_worker_killed_mid_batch_loses_no_sighting_and_classifies_none_twice(
    client, campaign, tmp_path
):
    version = register_tiny_classifier(campaign, tmp_path)
    log = tmp_path / "worker.log"
    fast_recovery = {
        "CLASSIFICATION_LEASE_SECONDS": 4,
        "CLASSIFICATION_SWEEP_SECONDS": 1,
        "CLASSIFICATION_SWEEP_GRACE_SECONDS": 0,
    }
    with celery_worker(log_path=log, **fast_recovery) as first:
        ids = [upload_sighting(client, seed=i).pk for i in range(6)]

        # The worker claims a batch, then loads TensorFlow and the model: kill it right there.
        def claimed():
            return Observation.objects.filter(
                pk__in=ids, classification_claimed_until__isnull=False
            ).exists()

        wait_for(claimed, timeout=60, interval=0.05, log_path=log)
        kill_worker_tree(first)

    # Claimed by the dead worker and never written: only its lease's expiry frees them.
    held = set(
        Observation.objects.filter(
            pk__in=ids,
            status=Observation.Status.RECEIVED,
            classification_claimed_until__isnull=False,
        ).values_list("pk", flat=True)
    )
    assert held, "the kill came too late to test anything"

    with celery_worker(log_path=log, beat=True, **fast_recovery):

        def all_classified():
            return Observation.objects.filter(
                pk__in=ids, status=Observation.Status.CLASSIFIED
            ).count() == len(ids)

        wait_for(all_classified, timeout=120, log_path=log)
        time.sleep(2)  # let any late duplicate attempt run, so the counts below would see it

    top = min(5, campaign.taxa.count())
    for observation in Observation.objects.filter(pk__in=ids):
        # Exactly once: every claim counts an attempt, so the dead worker's sightings were
        # claimed once more by the new worker and the others once, and none was redone.
        assert observation.classification_attempts == (2 if observation.pk in held else 1)
        merged = Prediction.objects.filter(observation=observation, photo__isnull=True)
        assert sorted(merged.values_list("rank", flat=True)) == list(range(1, top + 1))
        assert set(merged.values_list("version", flat=True)) == {version.pk}
        assert (
            Prediction.objects.filter(observation=observation, photo__isnull=False).count() == top
        )


def test_identify_is_answered_by_a_worker_and_stores_nothing(client, campaign, tmp_path):
    version = register_tiny_classifier(campaign, tmp_path)
    log = tmp_path / "worker.log"

    with celery_worker(log_path=log):
        response = client.post(
            "/api/v1/identify/", {"photos": [photo_upload(seed=1), photo_upload(seed=2)]}
        )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version_id"] == version.pk
    assert [row["rank"] for row in body["results"]] == list(
        range(1, min(5, campaign.taxa.count()) + 1)
    )
    assert abs(sum(row["probability"] for row in body["results"]) - 1) < 1e-3
    assert body["results"][0]["taxon"]["scientific_name"] in set(
        campaign.taxa.values_list("scientific_name", flat=True)
    )
    assert Observation.objects.count() == 0
    assert Prediction.objects.count() == 0


def test_activating_another_version_takes_effect_in_a_running_worker(client, campaign, tmp_path):
    from classifier.services.registry import version_activate

    first = register_tiny_classifier(campaign, tmp_path, seed=1)
    second = register_tiny_classifier(campaign, tmp_path, seed=2, activate=False)
    log = tmp_path / "worker.log"

    with celery_worker(log_path=log):
        before = upload_sighting(client, seed=1)
        wait_for(
            lambda: Prediction.objects.filter(observation=before).exists(), timeout=90, log_path=log
        )
        version_activate(version=second)
        after = upload_sighting(client, seed=2)
        wait_for(
            lambda: Prediction.objects.filter(observation=after).exists(), timeout=60, log_path=log
        )

    assert set(Prediction.objects.filter(observation=before).values_list("version", flat=True)) == {
        first.pk
    }
    assert set(Prediction.objects.filter(observation=after).values_list("version", flat=True)) == {
        second.pk
    }
