"""Forms of the pages: the upload form and the sign-up form.

The forms only shape the input; `observation_submit` decides what a sighting may be and raises
ParkWatchError for anything it refuses, which the view shows at the field it names.
"""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError

from observations.models import Campaign, Observation, Taxon
from observations.selectors import campaign_taxa

DATETIME_LOCAL_FORMATS = [
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
]

LICENCE_EXPLANATIONS = {
    Observation.Licence.CC0: "Anyone may use the photos for anything, without naming you.",
    Observation.Licence.CC_BY: "Anyone may use the photos if they name you as the author.",
    Observation.Licence.CC_BY_NC: "Like CC BY, but not for commercial purposes.",
}


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class PhotosField(forms.Field):
    """Several files under one name (the camera and the file chooser both send `photos`)."""

    widget = MultipleFileInput
    default_error_messages = {"required": "Choose at least one photo of the organism."}

    def to_python(self, data) -> list:
        if not data:
            return []
        if not isinstance(data, list | tuple):
            data = [data]
        return [upload for upload in data if upload]

    def validate(self, value) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")


class LocalDateTimeField(forms.DateTimeField):
    """A `datetime-local` value, kept naive: the service reads it in the park's time zone."""

    widget = forms.DateTimeInput(
        attrs={"type": "datetime-local", "step": 60}, format="%Y-%m-%dT%H:%M"
    )

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("input_formats", DATETIME_LOCAL_FORMATS)
        super().__init__(**kwargs)

    def to_python(self, value) -> datetime | None:
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            return value.replace(tzinfo=None)
        for fmt in self.input_formats:
            try:
                return datetime.strptime(str(value).strip(), fmt)
            except ValueError:
                continue
        raise ValidationError("Enter a date and time, like 2025-06-01 10:30.", code="invalid")


class TaxonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Taxon) -> str:
        return obj.display_name


class SightingForm(forms.Form):
    """One sighting from the upload page. Everything but the photos may be left to the EXIF."""

    photos = PhotosField()
    latitude = forms.FloatField(
        required=False,
        min_value=-90,
        max_value=90,
        widget=forms.NumberInput(
            attrs={"step": "any", "inputmode": "decimal", "placeholder": "42.64151"}
        ),
    )
    longitude = forms.FloatField(
        required=False,
        min_value=-180,
        max_value=180,
        widget=forms.NumberInput(
            attrs={"step": "any", "inputmode": "decimal", "placeholder": "-0.05320"}
        ),
    )
    accuracy_m = forms.FloatField(
        required=False,
        min_value=0,
        label="Accuracy (metres)",
        widget=forms.NumberInput(
            attrs={"step": "any", "inputmode": "decimal", "placeholder": "10"}
        ),
    )
    position_source = forms.ChoiceField(
        required=False,
        choices=[("", "")] + Observation.PositionSource.choices,
        widget=forms.HiddenInput,
    )
    observed_at = LocalDateTimeField(required=False, label="Date and time")
    guess = TaxonChoiceField(
        queryset=Taxon.objects.none(),
        required=False,
        empty_label="I don't know",
        label="What do you think it is?",
    )
    notes = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Habitat, number of plants, size…"}),
    )
    licence = forms.ChoiceField(
        choices=Observation.Licence.choices,
        initial=Observation.Licence.CC_BY,
        widget=forms.RadioSelect,
        label="Licence of your photos",
    )
    email = forms.EmailField(
        required=False,
        label="Your e-mail (optional)",
        help_text="Only the experts see it, to ask about or tell you the outcome of this sighting.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    credit_name = forms.CharField(
        required=False,
        max_length=150,
        label="Credit me as (optional)",
        help_text="The name shown with your sighting in public records and data shared with GBIF. "
        "Leave it empty to stay anonymous.",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    client_uuid = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, campaign: Campaign | None = None, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["guess"].queryset = campaign_taxa(campaign)
        if getattr(user, "is_authenticated", False):
            del self.fields["email"]

    def clean(self):
        cleaned = super().clean()
        has_latitude = cleaned.get("latitude") is not None
        has_longitude = cleaned.get("longitude") is not None
        if (
            has_latitude != has_longitude
            and not self.errors.get("latitude")
            and not self.errors.get("longitude")
        ):
            missing = "longitude" if has_latitude else "latitude"
            self.add_error(missing, "Give both latitude and longitude, or neither.")
        return cleaned

    def add_error(self, field, error) -> None:
        """Also point each field with an error at its message, for screen readers."""
        super().add_error(field, error)
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs["aria-describedby"] = f"{self[name].auto_id}-errors"

    @property
    def max_photos(self) -> int:
        return settings.PHOTO_MAX_COUNT

    @property
    def licence_options(self) -> list[dict]:
        """The licence choices with a one-line explanation each, for the template."""
        current = self["licence"].value() or Observation.Licence.CC_BY
        return [
            {
                "value": value,
                "label": label,
                "explanation": LICENCE_EXPLANATIONS.get(value, ""),
                "checked": value == current,
            }
            for value, label in Observation.Licence.choices
        ]


class SignupForm(UserCreationForm):
    email = forms.EmailField(
        required=True,
        help_text="To tell you what the experts said about your sightings.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise ValidationError("An account with this e-mail already exists; sign in instead.")
        return email
