"""What the API shows of a sighting, and the shape of its errors.

Positions come from `position_for(observation, viewer)` only: the model's own latitude and
longitude never reach a viewer who may not see them. The serializers need the request (for
absolute URLs) and the viewer in their context: see `observation_context`.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from observations.geoprivacy import Position, Viewer, position_for
from observations.models import Observation
from observations.requests import viewer_from_request
from observations.selectors import ai_predictions


def observation_context(request) -> dict:
    """The context every observation serializer needs: the request and who is looking."""
    return {"request": request, "viewer": viewer_from_request(request)}


class ErrorSerializer(serializers.Serializer):
    """Every 4xx answer: a stable code, a readable reason and, when one is to blame, the field."""

    error = serializers.CharField(help_text="A stable code, e.g. `position_missing`.")
    detail = serializers.CharField(help_text="What went wrong, in words a visitor can act on.")
    field = serializers.CharField(required=False, help_text="The input field at fault, if any.")
    errors = serializers.DictField(
        required=False, help_text="Every field's validation errors, when the input was invalid."
    )


class TaxonSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    scientific_name = serializers.CharField()
    common_name = serializers.CharField()
    is_invasive = serializers.BooleanField()


class CampaignSummarySerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()


class ParkSummarySerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()


class PositionSerializer(serializers.Serializer):
    latitude = serializers.FloatField()
    longitude = serializers.FloatField()
    accuracy_m = serializers.FloatField(allow_null=True, help_text="Radius in metres, if known.")
    generalised = serializers.BooleanField(
        help_text="True when the taxon is sensitive and the viewer may not see the exact point: "
        "the point is then the centre of its 0.1 degree cell."
    )
    note = serializers.CharField(help_text="Why the position is generalised (empty otherwise).")


class PhotoSerializer(serializers.Serializer):
    """A photo's public copies (re-encoded, no EXIF). The original is never linked."""

    id = serializers.IntegerField()
    image = serializers.SerializerMethodField(help_text="Public copy, orientation applied.")
    thumbnail = serializers.SerializerMethodField()
    width = serializers.IntegerField(help_text="Of the photo as sent, after orientation.")
    height = serializers.IntegerField()

    def _absolute(self, field_file) -> str:
        request = self.context.get("request")
        url = field_file.url
        return request.build_absolute_uri(url) if request is not None else url

    @extend_schema_field(OpenApiTypes.URI)
    def get_image(self, photo) -> str:
        return self._absolute(photo.image)

    @extend_schema_field(OpenApiTypes.URI)
    def get_thumbnail(self, photo) -> str:
        return self._absolute(photo.thumbnail)


class AiSuggestionSerializer(serializers.Serializer):
    taxon = TaxonSummarySerializer(source="ai_taxon", allow_null=True)
    label = serializers.CharField(source="ai_label", help_text="Raw top-1 label of the model.")
    score = serializers.FloatField(source="ai_score", allow_null=True)
    entropy = serializers.FloatField(source="ai_entropy", allow_null=True)
    classified_at = serializers.DateTimeField(allow_null=True)


class PredictionSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    taxon = TaxonSummarySerializer(allow_null=True, help_text="Null: a raw label with no taxon.")
    label = serializers.CharField()
    probability = serializers.FloatField()
    model_version = serializers.CharField(source="version.label")
    model_version_id = serializers.IntegerField(source="version_id")
    model_is_demo = serializers.BooleanField(
        source="version.is_demo", help_text="A demo model, not trained on real photos."
    )
    tta = serializers.CharField(help_text="Test-time augmentation used: none, flip or ten-crop.")


class ReviewOutcomeSerializer(serializers.Serializer):
    final_taxon = TaxonSummarySerializer(allow_null=True)


@extend_schema_serializer(component_name="Observation")
class ObservationOutputSerializer(serializers.Serializer):
    """A sighting as this viewer may see it."""

    uuid = serializers.UUIDField()
    url = serializers.SerializerMethodField(help_text="The sighting's page.")
    status = serializers.ChoiceField(choices=Observation.Status.choices)
    status_display = serializers.CharField(source="get_status_display")
    status_detail = serializers.CharField()
    campaign = CampaignSummarySerializer()
    park = ParkSummarySerializer(allow_null=True)
    position = serializers.SerializerMethodField()
    altitude_m = serializers.SerializerMethodField()
    position_source = serializers.ChoiceField(choices=Observation.PositionSource.choices)
    observed_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    notes = serializers.CharField()
    guess = TaxonSummarySerializer(allow_null=True)
    licence = serializers.ChoiceField(choices=Observation.Licence.choices)
    photos = PhotoSerializer(many=True)
    possible_duplicate_of = serializers.SerializerMethodField()
    observer = serializers.SerializerMethodField()
    ai = AiSuggestionSerializer(source="*")
    predictions = serializers.SerializerMethodField()
    review = ReviewOutcomeSerializer(source="*")
    control_status = serializers.SerializerMethodField()

    @property
    def _viewer(self) -> Viewer:
        return self.context.get("viewer") or Viewer()

    def _position(self, observation) -> Position:
        return position_for(observation, self._viewer)

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, observation) -> str:
        url = observation.get_absolute_url()
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url

    @extend_schema_field(PositionSerializer)
    def get_position(self, observation) -> dict:
        return PositionSerializer(self._position(observation)).data

    @extend_schema_field(
        serializers.FloatField(allow_null=True, help_text="Null when the position is generalised.")
    )
    def get_altitude_m(self, observation) -> float | None:
        return None if self._position(observation).generalised else observation.altitude_m

    @extend_schema_field(
        serializers.UUIDField(allow_null=True, help_text="Shown to curators and admins only.")
    )
    def get_possible_duplicate_of(self, observation) -> str | None:
        if observation.possible_duplicate_of_id is None or not self._viewer.sees_everything:
            return None
        return str(observation.possible_duplicate_of.uuid)

    @extend_schema_field(
        serializers.CharField(allow_null=True, help_text="Username; null for anonymous visitors.")
    )
    def get_observer(self, observation) -> str | None:
        return observation.observer.get_username() if observation.observer_id else None

    @extend_schema_field(PredictionSerializer(many=True))
    def get_predictions(self, observation) -> list:
        return PredictionSerializer(ai_predictions(observation), many=True).data

    @extend_schema_field(
        serializers.ChoiceField(choices=Observation.ControlStatus.choices, allow_null=True)
    )
    def get_control_status(self, observation) -> str | None:
        return observation.control_status or None
