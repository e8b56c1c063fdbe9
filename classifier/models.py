"""The model registry and what the models said: versions, their labels, predictions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from observations.models import Campaign, Observation, Photo, Taxon
from observations.storage import named_storage


def models_storage():
    """Private storage for classifier weights."""
    return named_storage("models")


class ClassifierVersion(models.Model):
    class Backend(models.TextChoices):
        KERAS = "keras", "Keras (.keras / .h5)"
        DEEPOC = "deepoc", "DEEP-OC image-classification-tf"
        ONNX = "onnx", "ONNX Runtime"

    class State(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"

    class TTA(models.TextChoices):
        NONE = "none", "none"
        FLIP = "flip", "horizontal flip"
        TEN_CROP = "ten-crop", "ten crops (corners, centre, mirrored)"

    name = models.CharField(max_length=200)
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="classifier_versions"
    )
    backend = models.CharField(max_length=10, choices=Backend.choices)
    architecture = models.CharField(max_length=100, blank=True)
    input_size = models.PositiveIntegerField()
    preprocessing = models.JSONField(help_text="The PreprocessSpec this version was trained with.")
    tta = models.CharField(max_length=10, choices=TTA.choices, default=TTA.NONE)
    weights = models.FileField(upload_to="classifiers/", storage=models_storage, max_length=300)
    weights_sha256 = models.CharField(max_length=64)
    metrics = models.JSONField(default=dict, blank=True)
    temperature = models.FloatField(null=True, blank=True, help_text="Calibration temperature.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.CANDIDATE)
    state_reason = models.TextField(
        blank=True, help_text="Why it is in this state (e.g. the gate)."
    )
    is_demo = models.BooleanField(
        default=False, help_text="A demo model, not trained on real photos: pages say so."
    )
    source = models.CharField(max_length=300, blank=True, help_text="Where it came from.")
    licence = models.CharField(max_length=100, blank=True)
    citation = models.TextField(blank=True)
    description = models.TextField(blank=True)
    model_card = models.JSONField(default=dict, blank=True, help_text="Imported config and notes.")
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign"],
                condition=Q(state="active"),
                name="one_active_version_per_campaign",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.pk})"

    @property
    def label(self) -> str:
        """How pages name the model: its name and registry number."""
        return f"{self.name} v{self.pk}"


class ClassifierLabel(models.Model):
    """Output index -> taxon. A label with no taxon stays a raw label, shown as such."""

    version = models.ForeignKey(ClassifierVersion, on_delete=models.CASCADE, related_name="labels")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=300)
    taxon = models.ForeignKey(
        Taxon, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["version", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "index"], name="classifier_label_index_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Prediction(models.Model):
    """One rank of a version's top 5 for a sighting (photo empty) or for one of its photos."""

    observation = models.ForeignKey(
        Observation, on_delete=models.CASCADE, related_name="predictions"
    )
    photo = models.ForeignKey(
        Photo, null=True, blank=True, on_delete=models.CASCADE, related_name="predictions"
    )
    version = models.ForeignKey(
        ClassifierVersion, on_delete=models.CASCADE, related_name="predictions"
    )
    rank = models.PositiveSmallIntegerField()
    taxon = models.ForeignKey(
        Taxon, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    label = models.CharField(max_length=300)
    probability = models.FloatField()
    tta = models.CharField(max_length=10)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["observation", "version", "photo", "rank"]
        constraints = [
            # Re-running a task never duplicates: one row per (sighting, version, rank) for the
            # merged top 5, and per (photo, version, rank) for each photo's own.
            models.UniqueConstraint(
                fields=["observation", "version", "rank"],
                condition=Q(photo__isnull=True),
                name="prediction_observation_version_rank_unique",
            ),
            models.UniqueConstraint(
                fields=["photo", "version", "rank"],
                condition=Q(photo__isnull=False),
                name="prediction_photo_version_rank_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.label} {self.probability:.2f}"
