"""The batch classification service, in process (the worker tests run the same code in Celery)."""

from datetime import datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from classifier.engine.preprocessing import PreprocessSpec, decode_image, preprocess
from classifier.models import Prediction
from classifier.services import inference
from classifier.services.inference import classify_pending, observations_claim, observations_sweep
from classifier.services.registry import local_weights
from observations.models import Observation
from observations.services.submission import observation_submit
from tests.classifier.support import TINY_SIZE, register_tiny_classifier
from tests.conftest import ORDESA
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

JUNE_FIRST = datetime(2026, 6, 1, 10, 0)


def submit(seed=0, photos=1):
    return observation_submit(
        photos=[
            photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, seed=seed * 10 + i) for i in range(photos)
        ]
    ).observation


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    inference._models.clear()
    yield
    inference._models.clear()


def test_one_batch_classifies_the_hinted_and_the_other_waiting_sightings(campaign, tmp_path):
    register_tiny_classifier(campaign, tmp_path)
    sightings = [submit(seed=i) for i in range(4)]

    outcome = classify_pending(hint_ids=[sightings[2].pk], batch_size=8)

    assert sorted(outcome.classified) == sorted(o.pk for o in sightings)
    assert Observation.objects.filter(status=Observation.Status.CLASSIFIED).count() == 4


def test_a_sighting_gets_the_mean_of_its_photos_and_each_photo_its_own_top_5(campaign, tmp_path):
    version = register_tiny_classifier(campaign, tmp_path)
    observation = submit(photos=3)

    classify_pending(hint_ids=[observation.pk])

    classifier = inference.classifier_for(version)
    photos = list(observation.photos.order_by("position"))
    per_photo = classifier.predict_images([classifier.decode(p.image.read()) for p in photos])
    expected = per_photo.mean(axis=0)
    merged = Prediction.objects.filter(observation=observation, photo__isnull=True).order_by("rank")
    labels = [label.name for label in version.labels.order_by("index")]
    assert [p.label for p in merged] == [labels[i] for i in np.argsort(-expected)[: merged.count()]]
    assert [p.probability for p in merged] == pytest.approx(
        sorted(expected, reverse=True)[: merged.count()], abs=1e-5
    )
    for photo in photos:
        assert Prediction.objects.filter(photo=photo).count() == merged.count()
    observation.refresh_from_db()
    assert observation.ai_label == merged[0].label
    assert observation.ai_entropy is not None


def test_serving_uses_the_preprocessing_stored_with_the_version(campaign, tmp_path):
    version = register_tiny_classifier(campaign, tmp_path)
    observation = submit()
    classify_pending(hint_ids=[observation.pk])

    import keras

    model = keras.saving.load_model(local_weights(version))
    data = observation.photos.get().image.read()
    pixels = preprocess(
        [decode_image(data, target_size=TINY_SIZE)], PreprocessSpec.xception(TINY_SIZE)
    )
    direct = np.asarray(model(pixels, training=False))[0]
    top = Prediction.objects.get(observation=observation, photo__isnull=True, rank=1)
    assert top.probability == pytest.approx(float(direct.max()), abs=1e-5)


def test_running_twice_never_duplicates_predictions(campaign, tmp_path):
    register_tiny_classifier(campaign, tmp_path)
    observation = submit()

    classify_pending(hint_ids=[observation.pk])
    again = classify_pending(hint_ids=[observation.pk])

    assert again.classified == []
    assert Prediction.objects.filter(observation=observation, photo__isnull=True).count() == 4


def test_a_late_writer_whose_lease_was_taken_over_writes_nothing(
    campaign, tmp_path, monkeypatch, settings
):
    register_tiny_classifier(campaign, tmp_path)
    observation = submit()
    ids, first_lease = observations_claim(hint_ids=[observation.pk], limit=4)
    assert ids == [observation.pk]
    # The first worker stalls past its lease; a second one claims and classifies the sighting.
    Observation.objects.filter(pk=observation.pk).update(
        classification_claimed_until=timezone.now() - timedelta(seconds=1)
    )
    classify_pending(hint_ids=[observation.pk])
    predictions = Prediction.objects.count()

    monkeypatch.setattr(
        inference, "observations_claim", lambda **kwargs: ([observation.pk], first_lease)
    )
    late = classify_pending(hint_ids=[observation.pk])

    assert late.classified == []
    assert Prediction.objects.count() == predictions


def test_a_failing_model_is_retried_then_marked_failed_with_the_reason(
    campaign, tmp_path, settings
):
    settings.CLASSIFICATION_MAX_ATTEMPTS = 2
    version = register_tiny_classifier(campaign, tmp_path)
    local_weights(version).write_bytes(b"corrupted weights")
    observation = submit()

    first = classify_pending(hint_ids=[observation.pk])
    second = classify_pending(hint_ids=[observation.pk])

    assert first.retry == [observation.pk]
    assert second.failed == [observation.pk]
    observation.refresh_from_db()
    assert observation.status == Observation.Status.CLASSIFICATION_FAILED
    assert "sha256" in observation.status_detail


def test_no_active_classifier_fails_with_a_reason_curators_can_read(campaign):
    observation = submit()

    outcome = classify_pending(hint_ids=[observation.pk])

    assert outcome.failed == [observation.pk]
    observation.refresh_from_db()
    assert observation.status == Observation.Status.CLASSIFICATION_FAILED
    assert "No active classifier" in observation.status_detail


def test_renormalising_over_the_campaign_taxa_drops_other_labels(campaign, tmp_path, taxa):
    campaign.taxa.remove(taxa[0], taxa[1])
    version = register_tiny_classifier(campaign, tmp_path)  # labels: the 2 remaining taxa
    campaign.taxa.add(taxa[0])  # the model still knows only its labels
    # Keep only one of the model's two labels.
    campaign.taxa.remove(version.labels.get(index=0).taxon)
    campaign.renormalise_to_campaign_taxa = True
    campaign.save()
    observation = submit()

    classify_pending(hint_ids=[observation.pk])

    top = Prediction.objects.get(observation=observation, photo__isnull=True, rank=1)
    assert top.label == version.labels.get(index=1).name
    assert top.probability == pytest.approx(1.0)


def test_the_sweeper_finds_stranded_and_long_failed_sightings(campaign, settings):
    settings.CLASSIFICATION_SWEEP_GRACE_SECONDS = 0
    settings.CLASSIFICATION_RETRY_FAILED_AFTER = 0
    stranded, leased, failed, done = (submit(seed=i) for i in range(4))
    Observation.objects.filter(pk=leased.pk).update(
        classification_claimed_until=timezone.now() + timedelta(minutes=1)
    )
    Observation.objects.filter(pk=failed.pk).update(
        status=Observation.Status.CLASSIFICATION_FAILED,
        updated_at=timezone.now() - timedelta(hours=2),
    )
    Observation.objects.filter(pk=done.pk).update(status=Observation.Status.CLASSIFIED)

    found = observations_sweep()

    assert sorted(found) == sorted([stranded.pk, failed.pk])
    failed.refresh_from_db()
    assert failed.status == Observation.Status.RECEIVED
