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


def datasets_storage():
    """Private storage for imported dataset images and snapshot exports."""
    return named_storage("models")


class DatasetImage(models.Model):
    """An image from an imported dataset (e.g. a DEEP-OC `images/` folder), with its label."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="dataset_images")
    source = models.CharField(max_length=200, help_text="Name of the imported dataset.")
    relative_path = models.CharField(max_length=500, help_text="Path inside the imported dataset.")
    file = models.FileField(upload_to="datasets/", storage=datasets_storage, max_length=500)
    sha256 = models.CharField(max_length=64, db_index=True)
    taxon = models.ForeignKey(Taxon, on_delete=models.PROTECT, related_name="+")
    label = models.CharField(max_length=300, help_text="The class name as the dataset wrote it.")
    class_index = models.PositiveIntegerField(help_text="Its line in the dataset's classes.txt.")
    # The split the dataset gave it (train/val/test); kept, so imported test images stay test.
    split = models.CharField(max_length=5)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["source", "relative_path"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "relative_path"], name="dataset_image_path_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.relative_path}"


class Split(models.TextChoices):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class SplitAssignment(models.Model):
    """The split a sighting belongs to, fixed once given: a test sighting stays test forever."""

    observation = models.OneToOneField(
        Observation, on_delete=models.CASCADE, related_name="split_assignment"
    )
    split = models.CharField(max_length=5, choices=Split.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.observation_id}: {self.split}"


class DatasetSnapshot(models.Model):
    """A frozen, versioned list of (photo, taxon, split) to train and evaluate on."""

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="snapshots")
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labels = models.JSONField(default=list, help_text="Scientific names, in output order.")
    counts = models.JSONField(default=dict, help_text="{taxon: {train, val, test}}.")
    confirmed_photos = models.PositiveIntegerField(default=0, help_text="Pool size when frozen.")
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["campaign", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "version"], name="snapshot_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.campaign.slug} dataset v{self.version}"


class DatasetItem(models.Model):
    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="items")
    photo = models.ForeignKey(
        Photo, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    image = models.ForeignKey(
        DatasetImage, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    taxon = models.ForeignKey(Taxon, on_delete=models.PROTECT, related_name="+")
    split = models.CharField(max_length=5, choices=Split.choices)

    class Meta:
        ordering = ["snapshot", "split", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(photo__isnull=False) ^ Q(image__isnull=False),
                name="dataset_item_one_source",
            )
        ]

    def __str__(self) -> str:
        return f"{self.split}: {self.taxon}"


class TrainingRun(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="training_runs")
    snapshot = models.ForeignKey(
        DatasetSnapshot, on_delete=models.PROTECT, related_name="training_runs"
    )
    parameters = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    progress = models.JSONField(default=dict, help_text="Epoch, step, loss and metrics so far.")
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    workdir = models.CharField(max_length=500, blank=True, help_text="Checkpoints of this run.")
    resumed_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    result_version = models.ForeignKey(
        ClassifierVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_runs",
    )
    evaluation = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Training run {self.pk} ({self.state})"


class PromotionEvent(models.Model):
    """Every change of the active version: by the gate, by hand, or a roll-back; and holds."""

    class Action(models.TextChoices):
        PROMOTED = "promoted"
        HELD = "held", "held back by the gate"
        MANUAL_PROMOTION = "manual_promotion", "promoted by hand"
        ROLLBACK = "rollback", "rolled back"

    version = models.ForeignKey(
        ClassifierVersion, on_delete=models.CASCADE, related_name="promotion_events"
    )
    previous = models.ForeignKey(
        ClassifierVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    reasons = models.JSONField(default=list)
    comparison = models.JSONField(default=dict, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.version}"
