import numpy as np
import pytest
from django.db import IntegrityError

from classifier.engine.preprocessing import PreprocessSpec
from classifier.models import ClassifierVersion
from classifier.services.registry import (
    RegistryError,
    local_weights,
    version_activate,
    version_load,
    version_register,
)
from tests.classifier.support import register_tiny_classifier, tiny_keras_file
from tests.images import make_image

pytestmark = pytest.mark.django_db


def test_labels_map_to_taxa_and_unknown_ones_stay_raw_labels(campaign, tmp_path):
    path = tiny_keras_file(tmp_path / "m.keras", 3)

    version = version_register(
        name="m",
        campaign=campaign,
        backend="keras",
        weights_path=path,
        labels=["Buddleja_davidii", "reynoutria japonica", "Something unknown"],
        spec=PreprocessSpec.xception(32),
    )

    labels = list(version.labels.order_by("index"))
    assert [label.taxon.scientific_name if label.taxon else None for label in labels] == [
        "Buddleja davidii",
        "Reynoutria japonica",
        None,
    ]
    assert labels[2].name == "Something unknown"
    assert version.state == ClassifierVersion.State.CANDIDATE
    assert len(version.weights_sha256) == 64
    assert local_weights(version).read_bytes() == path.read_bytes()


def test_activating_a_version_retires_the_previous_one(campaign, tmp_path):
    first = register_tiny_classifier(campaign, tmp_path, seed=1)
    second = register_tiny_classifier(campaign, tmp_path, seed=2, activate=False)

    version_activate(version=second)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == ClassifierVersion.State.RETIRED
    assert "Replaced by" in first.state_reason
    assert second.state == ClassifierVersion.State.ACTIVE
    assert second.activated_at is not None


def test_the_database_allows_one_active_version_per_campaign(campaign, tmp_path):
    register_tiny_classifier(campaign, tmp_path, seed=1)
    second = register_tiny_classifier(campaign, tmp_path, seed=2, activate=False)

    with pytest.raises(IntegrityError):
        ClassifierVersion.objects.filter(pk=second.pk).update(state=ClassifierVersion.State.ACTIVE)


def test_a_missing_weights_file_is_refused_clearly(campaign, tmp_path):
    with pytest.raises(RegistryError) as excinfo:
        version_register(
            name="m",
            campaign=campaign,
            backend="keras",
            weights_path=tmp_path / "nope.keras",
            labels=["a"],
            spec=PreprocessSpec.xception(32),
        )

    assert excinfo.value.code == "weights_missing"
    assert ClassifierVersion.objects.count() == 0


def test_tampered_weights_are_refused_at_load(campaign, tmp_path):
    version = register_tiny_classifier(campaign, tmp_path)
    stored = local_weights(version)
    stored.write_bytes(stored.read_bytes() + b"tampered")

    with pytest.raises(RegistryError) as excinfo:
        local_weights(version)

    assert excinfo.value.code == "weights_sha256_mismatch"
    assert "sha256" in excinfo.value.detail


def test_workers_serve_keras_versions_in_the_configured_precision(campaign, tmp_path, settings):
    version = register_tiny_classifier(campaign, tmp_path)
    photos = [make_image(seed=seed) for seed in range(3)]
    float32 = version_load(version)
    assert float32.backend.compute_dtype == "float32"

    settings.CLASSIFIER_COMPUTE_DTYPE = "mixed_bfloat16"
    mixed = version_load(version)
    assert mixed.backend.compute_dtype == "mixed_bfloat16"
    np.testing.assert_allclose(
        mixed.predict_images(photos), float32.predict_images(photos), atol=0.03
    )
    # The training gate compares models in float32 whatever the worker serves with.
    assert version_load(version, compute_dtype="float32").backend.compute_dtype == "float32"
