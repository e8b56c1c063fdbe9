"""The demo classifier over the demo campaign's taxa (registered by `seed_demo`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from classifier.engine.demo import DEMO_INPUT_SIZE, write_demo_model
from classifier.engine.preprocessing import PreprocessSpec
from classifier.models import ClassifierVersion
from classifier.services.registry import version_activate, version_register
from observations.models import Campaign

DEMO_NAME = "Demo classifier"


def demo_classifier_ensure(*, campaign: Campaign) -> tuple[ClassifierVersion, bool]:
    """Register and activate the demo classifier unless the campaign already has one."""
    existing = (
        ClassifierVersion.objects.filter(campaign=campaign, is_demo=True).order_by("pk").first()
    )
    if existing is not None:
        if not campaign.classifier_versions.filter(state=ClassifierVersion.State.ACTIVE).exists():
            version_activate(version=existing, reason="Demo classifier for a fresh install.")
        return existing, False
    labels = list(
        campaign.taxa.order_by("scientific_name").values_list("scientific_name", flat=True)
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "parkwatch-demo.keras"
        write_demo_model(path, len(labels))
        version = version_register(
            name=DEMO_NAME,
            campaign=campaign,
            backend=ClassifierVersion.Backend.KERAS,
            weights_path=path,
            labels=labels,
            spec=PreprocessSpec.xception(DEMO_INPUT_SIZE),
            architecture="colour projection (demo)",
            source="seed_demo",
            licence="CC0-1.0",
            description="Demo model, not trained on real photos: its suggestions are meaningless.",
            is_demo=True,
        )
    if not campaign.classifier_versions.filter(state=ClassifierVersion.State.ACTIVE).exists():
        version = version_activate(version=version, reason="Demo classifier for a fresh install.")
    return version, True
