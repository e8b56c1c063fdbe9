"""The sightings API: thin views around `observation_submit` and the observation selectors."""

from __future__ import annotations

from functools import partial
from uuid import UUID

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from observations.api.serializers import (
    ObservationOutputSerializer,
    error_responses,
    observation_context,
)
from observations.errors import ParkWatchError
from observations.models import Observation
from observations.requests import remember_own_sighting, viewer_from_request
from observations.selectors import (
    campaign_for_upload,
    campaign_taxa,
    observation_get,
    observation_list,
)
from observations.services.submission import observation_submit
from observations.throttling import UploadRateThrottle

# Token first: a refused anonymous upload then gets 401 with `WWW-Authenticate: Token`
# (DRF answers 403 when the first class names no scheme, as SessionAuthentication does).
# Session users still pass DRF's CSRF check.
API_AUTHENTICATION = [TokenAuthentication, SessionAuthentication]
# JSON only: the contract promises JSON bodies (errors included); the docs are at /api/docs/.
API_RENDERERS = [JSONRenderer]
# Multipart framing and the form fields, on top of the photos themselves.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024


class UploadMultiPartParser(MultiPartParser):
    """Multipart, refused before reading when the request is larger than any sighting can be."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        meta = getattr(request, "META", {})
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except (TypeError, ValueError):
            length = 0
        limit = settings.PHOTO_MAX_COUNT * settings.PHOTO_MAX_BYTES + MULTIPART_OVERHEAD_BYTES
        if length > limit:
            raise ParkWatchError(
                f"The request is {length / 2**20:.0f} MiB; a sighting is at most "
                f"{settings.PHOTO_MAX_COUNT} photos of {settings.PHOTO_MAX_BYTES / 2**20:.0f} MiB.",
                code="request_too_large",
                field="photos",
            )
        return super().parse(stream, media_type, parser_context)


class UploadsOpen(BasePermission):
    """Anonymous visitors may send sightings unless ALLOW_ANONYMOUS_UPLOADS is off."""

    def has_permission(self, request, view) -> bool:
        if request.method != "POST" or settings.ALLOW_ANONYMOUS_UPLOADS:
            return True
        if not request.user.is_authenticated:
            raise exceptions.NotAuthenticated("Sign in to send a sighting.")
        return True


class ObservationPagination(LimitOffsetPagination):
    max_limit = 200


class ObservedAtField(serializers.DateTimeField):
    """ISO 8601; a value without an offset stays naive: the service reads it in the park's zone."""

    def enforce_timezone(self, value):
        return value


ERROR_DESCRIPTIONS = {
    400: "Invalid input; `field` names the culprit.",
    401: "Not signed in (anonymous uploads are off), or the token sent is not valid.",
    403: "Forbidden (e.g. CSRF check failed for a session).",
    404: "No such sighting, or not visible to you.",
    409: "The client_uuid belongs to another user's sighting.",
    415: "Unsupported media type.",
    429: "Too many uploads; retry after the Retry-After header's seconds.",
}
_errors = partial(error_responses, descriptions=ERROR_DESCRIPTIONS)


class ObservationCollectionApi(APIView):
    """`GET`: the sightings this viewer may see. `POST`: send a sighting."""

    authentication_classes = API_AUTHENTICATION
    renderer_classes = API_RENDERERS
    # AllowAny says so in the schema; UploadsOpen refuses anonymous uploads when they are off.
    permission_classes = [AllowAny, UploadsOpen]
    parser_classes = [UploadMultiPartParser]
    pagination_class = ObservationPagination

    class FilterSerializer(serializers.Serializer):
        mine = serializers.BooleanField(
            required=False, default=False, help_text="Only my own sightings (`1`)."
        )
        status = serializers.ChoiceField(
            choices=Observation.Status.choices, required=False, allow_blank=True
        )
        campaign = serializers.SlugField(
            required=False, allow_blank=True, help_text="Campaign slug."
        )
        park = serializers.SlugField(required=False, allow_blank=True, help_text="Park slug.")

    @extend_schema_serializer(component_name="ObservationCreate")
    class InputSerializer(serializers.Serializer):
        photos = serializers.ListField(
            child=serializers.FileField(allow_empty_file=True, use_url=False),
            allow_empty=False,
            help_text="1 to 5 photos of one organism (JPEG, PNG, WebP, HEIC/HEIF); repeat the "
            "field for each photo.",
        )
        latitude = serializers.FloatField(
            required=False,
            allow_null=True,
            min_value=-90,
            max_value=90,
            help_text="WGS 84. Leave out (with longitude) to use the photo's EXIF GPS.",
        )
        longitude = serializers.FloatField(
            required=False, allow_null=True, min_value=-180, max_value=180
        )
        accuracy_m = serializers.FloatField(
            required=False, allow_null=True, min_value=0, help_text="Radius in metres."
        )
        position_source = serializers.ChoiceField(
            choices=[Observation.PositionSource.DEVICE, Observation.PositionSource.MAP],
            required=False,
            allow_blank=True,
            help_text="Where latitude/longitude come from (default device). A position read "
            "from the photo is stored as `exif`.",
        )
        observed_at = ObservedAtField(
            required=False,
            allow_null=True,
            help_text="ISO 8601. Without an offset it is read in the park's time zone. Leave out "
            "to use the photo's EXIF time.",
        )
        client_uuid = serializers.UUIDField(
            required=False,
            allow_null=True,
            help_text="Made by the client: a retry with the same value returns the first sighting.",
        )
        notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
        campaign = serializers.SlugField(
            required=False,
            allow_blank=True,
            help_text="Campaign slug; the default campaign if left out.",
        )
        guess = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=200,
            help_text="Your identification: a taxon id or scientific name of the campaign's taxa.",
        )
        licence = serializers.ChoiceField(
            choices=Observation.Licence.choices, default=Observation.Licence.CC_BY
        )
        email = serializers.EmailField(
            required=False,
            allow_blank=True,
            default="",
            help_text="Anonymous visitors: to hear about the outcome. Never shown publicly.",
        )
        credit_name = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=150,
            default="",
            help_text="The name to credit in public records and exports (recordedBy); leave "
            "empty to stay anonymous.",
        )

        def validate(self, attrs: dict) -> dict:
            slug = attrs.get("campaign") or None
            campaign = campaign_for_upload(slug)
            if slug and campaign is None:
                raise serializers.ValidationError(
                    {"campaign": f"No open campaign is called {slug!r}."}, code="unknown_campaign"
                )
            attrs["campaign"] = campaign
            guess = (attrs.get("guess") or "").strip()
            attrs["guess"] = None
            if guess and campaign is not None:
                taxa = campaign_taxa(campaign)
                if guess.isdigit():
                    taxon = taxa.filter(pk=int(guess)).first()
                else:
                    taxon = taxa.filter(scientific_name__iexact=guess).first()
                if taxon is None:
                    raise serializers.ValidationError(
                        {"guess": f"{guess!r} is not one of the taxa of {campaign.name}."},
                        code="unknown_taxon",
                    )
                attrs["guess"] = taxon
            attrs["position_source"] = attrs.get("position_source") or None
            return attrs

    def get_throttles(self):
        if self.request.method == "POST":
            return [UploadRateThrottle()]
        return super().get_throttles()

    @extend_schema(
        operation_id="observations_list",
        summary="List sightings",
        description="Curators and admins see every sighting; others their own (signed in, or "
        "sent from this browser's session) and the confirmed ones. Positions of sensitive taxa "
        "are generalised for viewers who may not see them.",
        parameters=[FilterSerializer],
        responses={200: ObservationOutputSerializer(many=True), **_errors(400, 401)},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        viewer = viewer_from_request(request)
        observations = observation_list(
            viewer=viewer, mine=filters.validated_data["mine"], filters=filters.validated_data
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(observations, request, view=self)
        data = ObservationOutputSerializer(page, many=True, context=observation_context(request))
        return paginator.get_paginated_response(data.data)

    @extend_schema(
        operation_id="observations_create",
        summary="Send a sighting",
        description="1-5 photos of one organism with where and when (each may be left to the "
        "photos' EXIF). 201 with the sighting; a repeated `client_uuid` answers 200 with the "
        "first one. Session users must send the CSRF token; others use `Authorization: Token`.",
        request={"multipart/form-data": InputSerializer},
        responses={
            201: ObservationOutputSerializer,
            200: OpenApiResponse(
                ObservationOutputSerializer, description="This client_uuid was already sent."
            ),
            **_errors(400, 401, 403, 409, 415, 429),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = observation_submit(
            photos=data["photos"],
            observer=request.user,
            observer_email=data["email"],
            observer_credit=data["credit_name"],
            campaign=data["campaign"],
            latitude=data.get("latitude"),
            longitude=data.get("longitude"),
            accuracy_m=data.get("accuracy_m"),
            position_source=data["position_source"],
            observed_at=data.get("observed_at"),
            notes=data["notes"],
            guess=data["guess"],
            licence=data["licence"],
            client_uuid=data.get("client_uuid"),
        )
        # Also on a retry: the first answer may never have reached this browser.
        remember_own_sighting(request, result.observation)
        observation = observation_get(uuid=result.observation.uuid)
        body = ObservationOutputSerializer(observation, context=observation_context(request)).data
        if not result.created:
            return Response(body, status=status.HTTP_200_OK)
        location = request.build_absolute_uri(
            reverse("api-observation-detail", kwargs={"uuid": observation.uuid})
        )
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


class ObservationDetailApi(APIView):
    authentication_classes = API_AUTHENTICATION
    renderer_classes = API_RENDERERS

    @extend_schema(
        operation_id="observations_retrieve",
        summary="One sighting",
        description="Anyone holding a sighting's UUID may read it, as anyone with the link may "
        "open its page (the UUID is unguessable; lists show only one's own and confirmed ones). "
        "Positions are generalised for sensitive taxa unless the viewer is the observer or a "
        "curator.",
        parameters=[OpenApiParameter("uuid", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: ObservationOutputSerializer, **_errors(401, 404)},
    )
    def get(self, request, uuid: str):
        try:
            uuid = UUID(uuid)
        except ValueError:
            raise exceptions.NotFound("No such sighting.") from None
        # Like the page: the UUID is the link; geoprivacy decides what the position shows.
        observation = observation_get(uuid=uuid)
        if observation is None:
            raise exceptions.NotFound("No such sighting.")
        body = ObservationOutputSerializer(observation, context=observation_context(request)).data
        return Response(body)
