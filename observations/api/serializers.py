"""What the API shows of a sighting, and the shape of its errors.

Positions come from `position_for(observation, viewer)` only: the model's own latitude and
longitude never reach a viewer who may not see them. The serializers need the request (for
absolute URLs) and the viewer in their context: see `observation_context`.
"""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from observations.geoprivacy import Position, Viewer, position_for
from observations.models import Observation, Review
from observations.requests import viewer_from_request
from observations.selectors import ai_predictions, nearby_confirmed, review_history

# Curators see the confirmed sightings around the one they review within this radius.
NEARBY_RADIUS_M = 1000


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


def error_responses(*codes: int, descriptions: Mapping[int, str] | None = None) -> dict:
    """OpenAPI responses for these 4xx/5xx codes, all in the error format."""
    descriptions = descriptions or {}
    return {
        code: OpenApiResponse(ErrorSerializer, description=descriptions.get(code, ""))
        for code in codes
    }


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


# -- review history and what curators see of one sighting -----------------------------------


class AiSnapshotRowSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    label = serializers.CharField()
    taxon = serializers.CharField(allow_null=True, help_text="Scientific name; null: raw label.")
    probability = serializers.FloatField()


class AiSnapshotSerializer(serializers.Serializer):
    """What the AI said when the curator decided (kept with the review, never updated)."""

    version = serializers.CharField(allow_null=True, help_text="The classifier version's label.")
    top5 = AiSnapshotRowSerializer(many=True)
    ai_taxon = serializers.CharField(allow_null=True)
    ai_score = serializers.FloatField(allow_null=True)


@extend_schema_serializer(component_name="Review")
class ReviewSerializer(serializers.Serializer):
    """One curator's decision: an immutable row of the audit trail."""

    id = serializers.IntegerField()
    curator = serializers.SerializerMethodField()
    decision = serializers.ChoiceField(choices=Review.Decision.choices)
    taxon = TaxonSummarySerializer(allow_null=True)
    reject_reason = serializers.CharField(help_text="Empty unless the decision is reject.")
    comment = serializers.CharField()
    message_to_observer = serializers.CharField()
    by_lead = serializers.BooleanField(help_text="A lead curator's (or admin's) final say.")
    round = serializers.IntegerField(help_text="A new round starts after each verdict.")
    ai_snapshot = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.CharField(help_text="Username."))
    def get_curator(self, review) -> str:
        return review.curator.get_username()

    @extend_schema_field(AiSnapshotSerializer)
    def get_ai_snapshot(self, review) -> dict:
        return review.ai_snapshot


class NearbySightingSerializer(serializers.Serializer):
    uuid = serializers.UUIDField()
    final_taxon = TaxonSummarySerializer(allow_null=True)
    observed_at = serializers.DateTimeField()
    latitude = serializers.FloatField()
    longitude = serializers.FloatField()
    distance_m = serializers.IntegerField(help_text="From the sighting under review, in metres.")


class CurationSerializer(serializers.Serializer):
    """What only curators see of one sighting: the claim, the review history, the neighbours."""

    claimed_by = serializers.SerializerMethodField()
    claim_expires_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    reviews = serializers.SerializerMethodField()
    nearby_confirmed = serializers.SerializerMethodField()

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Username."))
    def get_claimed_by(self, observation) -> str | None:
        return observation.claimed_by.get_username() if observation.claimed_by_id else None

    @extend_schema_field(ReviewSerializer(many=True))
    def get_reviews(self, observation) -> list:
        return ReviewSerializer(review_history(observation), many=True).data

    @extend_schema_field(
        NearbySightingSerializer(
            many=True, help_text=f"Confirmed sightings within {NEARBY_RADIUS_M} m, nearest first."
        )
    )
    def get_nearby_confirmed(self, observation) -> list:
        nearby = nearby_confirmed(observation, radius_m=NEARBY_RADIUS_M)
        return NearbySightingSerializer(nearby, many=True).data


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
    message_to_observer = serializers.SerializerMethodField()
    control_status = serializers.SerializerMethodField()
    curation = serializers.SerializerMethodField()

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
        serializers.CharField(
            allow_null=True,
            help_text="The observer's username for themselves and curators; for others the name "
            "they chose to be credited with, or null.",
        )
    )
    def get_observer(self, observation) -> str | None:
        # Others see only the name the observer chose to be credited with (or nothing).
        viewer = self._viewer
        if observation.observer_id and (viewer.sees_everything or viewer.owns(observation)):
            return observation.observer.get_username()
        return observation.observer_credit or None

    @extend_schema_field(PredictionSerializer(many=True))
    def get_predictions(self, observation) -> list:
        return PredictionSerializer(ai_predictions(observation), many=True).data

    @extend_schema_field(
        serializers.CharField(
            help_text="What a curator asked the visitor to add (needs more information); "
            "shown to the observer and curators only, empty otherwise."
        )
    )
    def get_message_to_observer(self, observation) -> str:
        viewer = self._viewer
        if viewer.sees_everything or viewer.owns(observation):
            return observation.message_to_observer
        return ""

    @extend_schema_field(
        serializers.ChoiceField(choices=Observation.ControlStatus.choices, allow_null=True)
    )
    def get_control_status(self, observation) -> str | None:
        return observation.control_status or None

    @extend_schema_field(
        CurationSerializer(
            allow_null=True,
            help_text="Curators and admins, one sighting at a time (null in lists): the claim, "
            "the review history and the confirmed sightings nearby.",
        )
    )
    def get_curation(self, observation) -> dict | None:
        if not self._viewer.sees_everything or self.parent is not None:
            return None
        return CurationSerializer(observation).data


# -- review queue (curators) ----------------------------------------------------------------


class QueueAiSerializer(serializers.Serializer):
    taxon = TaxonSummarySerializer(source="ai_taxon", allow_null=True)
    label = serializers.CharField(source="ai_label")
    score = serializers.FloatField(source="ai_score", allow_null=True)


@extend_schema_serializer(component_name="ReviewQueueItem")
class ReviewQueueItemSerializer(serializers.Serializer):
    """One row of the review queue (curators: no position generalising needed, none shown)."""

    uuid = serializers.UUIDField()
    received_at = serializers.DateTimeField()
    observed_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=Observation.Status.choices)
    campaign = CampaignSummarySerializer()
    park = ParkSummarySerializer(allow_null=True)
    thumbnails = serializers.SerializerMethodField()
    ai = QueueAiSerializer(source="*", help_text="The AI's top-1.")
    ai_invasive_score = serializers.FloatField(
        allow_null=True, help_text="Highest probability of an invasive taxon in the AI's top 5."
    )
    ai_entropy = serializers.FloatField(allow_null=True, help_text="Uncertainty of the AI.")
    guess = TaxonSummarySerializer(allow_null=True)
    possible_duplicate_of = serializers.SerializerMethodField()
    claimed_by = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.URLField()))
    def get_thumbnails(self, observation) -> list[str]:
        request = self.context.get("request")
        urls = [photo.thumbnail.url for photo in observation.photos.all()]
        return [request.build_absolute_uri(url) for url in urls] if request else urls

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_possible_duplicate_of(self, observation) -> str | None:
        duplicate = observation.possible_duplicate_of
        return str(duplicate.uuid) if duplicate is not None else None

    @extend_schema_field(
        serializers.CharField(
            allow_null=True, help_text="Username of an expired claim that anyone may take over."
        )
    )
    def get_claimed_by(self, observation) -> str | None:
        return observation.claimed_by.get_username() if observation.claimed_by_id else None


# -- control (follow-up of confirmed invasives) ------------------------------------------------


class ControlEventSerializer(serializers.Serializer):
    # Plain strings: one enum per name in the schema (`control_status` carries the choices).
    from_status = serializers.CharField(help_text="Empty for the event that opened the case.")
    to_status = serializers.CharField(help_text="The control status this step reached.")
    user = serializers.SerializerMethodField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Username."))
    def get_user(self, event) -> str | None:
        return event.user.get_username() if event.user_id else None


@extend_schema_serializer(component_name="ControlCase")
class ControlCaseSerializer(serializers.Serializer):
    """A confirmed invasive sighting under follow-up, with every step so far (curators)."""

    uuid = serializers.UUIDField()
    url = serializers.SerializerMethodField()
    campaign = CampaignSummarySerializer()
    park = ParkSummarySerializer(allow_null=True)
    final_taxon = TaxonSummarySerializer()
    latitude = serializers.FloatField()
    longitude = serializers.FloatField()
    accuracy_m = serializers.FloatField(allow_null=True)
    observed_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    control_status = serializers.ChoiceField(choices=Observation.ControlStatus.choices)
    events = ControlEventSerializer(source="control_events.all", many=True)

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, observation) -> str:
        url = observation.get_absolute_url()
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url
