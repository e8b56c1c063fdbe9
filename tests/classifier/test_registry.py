import pytest
from django.db import IntegrityError

from classifier.engine.preprocessing import PreprocessSpec
from classifier.models import ClassifierVersion
from classifier.services.registry import (
    RegistryError,
    local_weights,
    version_activate,
    version_register,
)
from tests.classifier.support import register_tiny_classifier, tiny_keras_file

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
