"""The inference worker with everything in S3: weights fetched by sha256, photos read from it."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest

from classifier.models import Prediction
from classifier.services import inference
from classifier.services.inference import classify_pending
from classifier.services.registry import RegistryError, local_weights
from observations.models import Observation
from observations.services.submission import observation_submit
from tests import s3 as moto
from tests.classifier.support import register_tiny_classifier
from tests.conftest import ORDESA
from tests.images import photo_upload

s3_server, s3 = moto.s3_server, moto.s3  # fixtures: a moto server, a bucket of its own

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_models(settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path / "model-cache"
    inference._models.clear()
    yield
    inference._models.clear()


def submit(seed: int) -> Observation:
    photo = photo_upload(gps=ORDESA, taken_at=datetime(2026, 6, 1, 10), seed=seed)
    return observation_submit(photos=[photo]).observation


def test_a_worker_classifies_photos_read_from_the_bucket_with_weights_fetched_from_it(
    campaign, tmp_path, s3, settings
):
    (tmp_path / "upload").mkdir()
    version = register_tiny_classifier(campaign, tmp_path / "upload")
    sightings = [submit(seed) for seed in range(3)]
    (tmp_path / "upload" / "tiny-0.keras").unlink()  # only the bucket has the weights now

    outcome = classify_pending(hint_ids=[sightings[0].pk], batch_size=8)

    assert sorted(outcome.classified) == sorted(o.pk for o in sightings)
    assert set(Observation.objects.values_list("status", flat=True)) == {"classified"}
    assert Prediction.objects.filter(version=version, rank=1, photo__isnull=True).count() == 3
    key = f"models/{version.weights.name}"
    assert key.startswith("models/classifiers/") and key in s3.object_keys("models/")
    cached = settings.MODEL_CACHE_DIR / f"{version.weights_sha256}.keras"
    assert [p.name for p in settings.MODEL_CACHE_DIR.iterdir()] == [cached.name]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == version.weights_sha256
    assert cached.read_bytes() == s3.read(key)


def test_weights_changed_in_the_bucket_are_refused(campaign, tmp_path, s3):
    version = register_tiny_classifier(campaign, tmp_path)
    s3.client.put_object(
        Bucket=s3.name, Key=f"models/{version.weights.name}", Body=b"not the registered weights"
    )

    with pytest.raises(RegistryError) as refused:
        local_weights(version)

    assert refused.value.code == "weights_sha256_mismatch"


def test_weights_missing_from_the_bucket_are_reported_clearly(campaign, tmp_path, s3, settings):
    version = register_tiny_classifier(campaign, tmp_path)
    s3.client.delete_object(Bucket=s3.name, Key=f"models/{version.weights.name}")

    with pytest.raises(RegistryError) as refused:
        local_weights(version)

    assert refused.value.code == "weights_missing"
    assert not list(settings.MODEL_CACHE_DIR.glob("*")), "no partial copy is left behind"
