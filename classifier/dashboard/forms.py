"""Forms of the dashboard: start a training run, freeze a dataset, promote, roll back, export.

They only shape the input; the services (`training_run_create`, `snapshot_create`,
`version_promote`, `version_rollback`) decide what is allowed and raise a ParkWatchError for
anything they refuse, which the views show. The export form is only drawn: its three buttons
send it to the export API, which checks the filters.
"""

from __future__ import annotations

from django import forms
from django.conf import settings

from classifier.engine.training import ARCHITECTURES
from classifier.models import DatasetSnapshot
from observations.exports.records import EXACT, PUBLIC
from observations.models import Campaign, Park, Taxon

ARCHITECTURE_LABELS = {
    "xception": "Xception",
    "mobilenet_v3_small": "MobileNetV3 small",
    "efficientnet_b0": "EfficientNet-B0",
    "resnet50": "ResNet-50",
    "small_cnn": "Small CNN",
}
START_FROM = [
    ("active", "Active model"),
    ("imagenet", "ImageNet"),
    ("scratch", "Scratch"),
]


def _campaign_field(**options) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=Campaign.objects.order_by("-is_default", "name"), empty_label=None, **options
    )


def _default_campaign() -> Campaign | None:
    return Campaign.objects.order_by("-is_default", "name").first()


class TrainingRunForm(forms.Form):
    """The parameters of a new run; empty numbers take the TRAINING_DEFAULTS settings."""

    campaign = _campaign_field()
    architecture = forms.ChoiceField(
        choices=[(name, ARCHITECTURE_LABELS.get(name, name)) for name in ARCHITECTURES],
        help_text="Xception is DEEP-OC's; MobileNet is small and fast; Small CNN is for tests.",
    )
    start_from = forms.ChoiceField(
        choices=START_FROM,
        label="Starting point",
        help_text="Fine-tune the active model, or start from ImageNet or random weights.",
    )
    image_size = forms.IntegerField(min_value=16, max_value=1024, label="Image size (px)")
    epochs = forms.IntegerField(min_value=1, max_value=1000)
    batch_size = forms.IntegerField(min_value=1, max_value=1024, label="Batch size")
    learning_rate = forms.FloatField(
        min_value=1e-7, max_value=1.0, label="Learning rate (head)", initial=1e-3
    )
    backbone_learning_rate = forms.FloatField(
        min_value=0,
        max_value=1.0,
        required=False,
        label="Learning rate (backbone)",
        help_text="Empty: a tenth of the head's when starting from trained weights.",
    )
    augmentation = forms.BooleanField(
        required=False, initial=True, help_text="Flips, rotation, zoom, colour jitter."
    )
    class_weights = forms.BooleanField(
        required=False, initial=True, help_text="Rare taxa weigh more in the loss."
    )
    snapshot = forms.ModelChoiceField(
        queryset=DatasetSnapshot.objects.none(),
        required=False,
        label="Dataset",
        empty_label="Freeze a new snapshot now",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        defaults = settings.TRAINING_DEFAULTS
        self.fields["architecture"].initial = defaults.get("architecture", "xception")
        self.fields["image_size"].initial = defaults.get("image_size", 299)
        self.fields["epochs"].initial = defaults.get("epochs", 15)
        self.fields["batch_size"].initial = defaults.get("batch_size", 16)
        self.fields["start_from"].initial = "active"
        self.fields["campaign"].initial = _default_campaign()
        self.fields["snapshot"].queryset = DatasetSnapshot.objects.select_related(
            "campaign"
        ).order_by("-created_at", "-pk")
        self.fields["snapshot"].label_from_instance = lambda snapshot: (
            f"{snapshot.campaign.name}: dataset v{snapshot.version}"
        )
        for field in self.fields.values():
            if isinstance(field.widget, forms.NumberInput):
                field.widget.attrs.setdefault("inputmode", "decimal")
        self.fields["learning_rate"].widget.attrs["step"] = "any"
        self.fields["backbone_learning_rate"].widget.attrs["step"] = "any"

    def parameters(self) -> dict:
        """The run's parameters as `training_run_create` takes them."""
        data = self.cleaned_data
        parameters = {
            "architecture": data["architecture"],
            "image_size": data["image_size"],
            "epochs": data["epochs"],
            "batch_size": data["batch_size"],
            "learning_rate": data["learning_rate"],
            "class_weights": data["class_weights"],
            "start_from": data["start_from"],
        }
        if data.get("backbone_learning_rate") is not None:
            parameters["backbone_learning_rate"] = data["backbone_learning_rate"]
        if not data["augmentation"]:
            parameters["augmentation"] = None
        return parameters


class CampaignForm(forms.Form):
    """Which campaign to freeze a dataset for, or to roll back."""

    campaign = _campaign_field()


class PromoteForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        label="Why",
        widget=forms.TextInput(attrs={"placeholder": "e.g. better recall on knotweed"}),
    )


class ExportForm(forms.Form):
    """The export API's filters (`observations.exports.records.export_filters`), as fields."""

    campaign = forms.ChoiceField(required=False)
    park = forms.ChoiceField(required=False)
    taxon = forms.ChoiceField(required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    invasive_only = forms.BooleanField(
        required=False, label="Invasive taxa only", widget=forms.CheckboxInput({"value": "1"})
    )
    positions = forms.ChoiceField(
        choices=[
            (PUBLIC, "Public: sensitive taxa generalised to a 0.1° cell (to share)"),
            (EXACT, "Exact: the stored positions (for park managers)"),
        ],
        initial=PUBLIC,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, campaigns: list[Campaign], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["campaign"].choices = [("", "All campaigns")] + [
            (campaign.slug, campaign.name) for campaign in campaigns
        ]
        self.fields["park"].choices = [("", "All parks")] + list(
            Park.objects.order_by("name").values_list("slug", "name")
        )
        self.fields["taxon"].choices = [("", "All taxa")] + [
            (str(pk), name)
            for pk, name in Taxon.objects.order_by("scientific_name").values_list(
                "pk", "scientific_name"
            )
        ]
