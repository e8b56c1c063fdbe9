"""Classifier endpoints: the registry (list, model card, activate) and identify.

`POST /api/v1/identify/` checks the photos in the web process (type, size, bombs) and hands
small copies to an inference worker by task name; the web process never loads a model.
"""

from __future__ import annotations

import base64
import logging

from celery import current_app
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import include, path
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier.models import ClassifierVersion
from classifier.selectors import version_list
from classifier.services.promotion import version_promote
from observations.api.permissions import IsAdmin, IsCurator
from observations.api.serializers import TaxonSummarySerializer, error_responses
from observations.api.views import API_AUTHENTICATION, API_RENDERERS, UploadMultiPartParser
from observations.errors import ParkWatchError
from observations.models import Campaign, Taxon
from observations.selectors import campaign_for_upload
from observations.services.photos import photo_inspect
from observations.throttling import UploadRateThrottle

logger = logging.getLogger(__name__)
IDENTIFY_TASK = "classifier.tasks.identify_photos"


class LabelSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    name = serializers.CharField()
    taxon = TaxonSummarySerializer(allow_null=True)


class ClassifierVersionSerializer(serializers.ModelSerializer):
    campaign = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    labels = LabelSerializer(many=True, read_only=True)

    class Meta:
        model = ClassifierVersion
        fields = [
            "id",
            "name",
            "campaign",
            "backend",
            "architecture",
            "input_size",
            "preprocessing",
            "tta",
            "weights_sha256",
            "metrics",
            "temperature",
            "state",
            "state_reason",
            "is_demo",
            "source",
            "licence",
            "citation",
            "description",
            "model_card",
            "created_at",
            "activated_at",
            "labels",
        ]


_errors = error_responses


class ClassifierListApi(APIView):
    """The model registry: every version with its model card (curators and admins)."""

    authentication_classes = API_AUTHENTICATION
    renderer_classes = API_RENDERERS
    permission_classes = [IsCurator]

    @extend_schema_serializer(component_name="ClassifierFilter")
    class FilterSerializer(serializers.Serializer):
        campaign = serializers.SlugField(required=False, allow_blank=True)

    @extend_schema(
        operation_id="classifiers_list",
        parameters=[FilterSerializer],
        responses={200: ClassifierVersionSerializer(many=True), **_errors(400, 401, 403)},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        versions = version_list(campaign_slug=filters.validated_data.get("campaign") or None)
        return Response(ClassifierVersionSerializer(versions, many=True).data)


class ClassifierDetailApi(APIView):
    authentication_classes = API_AUTHENTICATION
    renderer_classes = API_RENDERERS
    permission_classes = [IsCurator]

    @extend_schema(
        operation_id="classifiers_retrieve",
        responses={200: ClassifierVersionSerializer, **_errors(401, 403, 404)},
    )
    def get(self, request, pk: int):
        version = get_object_or_404(version_list(), pk=pk)
        return Response(ClassifierVersionSerializer(version).data)


class ClassifierActivateApi(APIView):
    """Promote this version by hand (admins): recorded; running workers follow at once."""

    authentication_classes = API_AUTHENTICATION
    renderer_classes = API_RENDERERS
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="classifiers_activate",
        request=None,
        responses={200: ClassifierVersionSerializer, **_errors(400, 401, 403, 404)},
    )
    def post(self, request, pk: int):
        version = get_object_or_404(ClassifierVersion, pk=pk)
        if version.state != ClassifierVersion.State.ACTIVE:
            # Recorded as a promotion by hand; sightings awaiting review are classified again.
            version_promote(
                version=version,
                user=request.user,
                reasons=[f"Promoted by hand by {request.user.get_username()}."],
            )
        return Response(ClassifierVersionSerializer(version_list().get(pk=version.pk)).data)


class IdentifyThrottle(UploadRateThrottle):
    """Per client (the user, else the address), as uploads, with its own rate."""

    scope = "identify"


class IdentifyResultSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    label = serializers.CharField()
    probability = serializers.FloatField()
    taxon = TaxonSummarySerializer(allow_null=True)


class IdentifyOutputSerializer(serializers.Serializer):
    model_version = serializers.CharField()
    model_version_id = serializers.IntegerField()
    model_is_demo = serializers.BooleanField()
    tta = serializers.CharField()
    not_sure = serializers.BooleanField(
        help_text="Top-1 below the campaign's confidence threshold."
    )
    results = IdentifyResultSerializer(many=True)


IDENTIFY_ERRORS = {
    400: "A photo that is not one, damaged, too large; or an unknown campaign.",
    401: "The token sent is not valid (anonymous requests are welcome).",
    403: "A signed-in session without its CSRF token.",
    415: "Not multipart/form-data.",
    429: "Too many requests; retry after the Retry-After header's seconds.",
    503: "No inference worker answered in time, or the classifier failed.",
}


class IdentifyApi(APIView):
    """1-5 photos in, the top 5 out; nothing is stored. Served by the inference workers."""

    authentication_classes = API_AUTHENTICATION
    renderer_classes = API_RENDERERS
    permission_classes = [AllowAny]
    parser_classes = [UploadMultiPartParser]
    throttle_classes = [IdentifyThrottle]

    class InputSerializer(serializers.Serializer):
        photos = serializers.ListField(
            child=serializers.FileField(allow_empty_file=True, use_url=False)
        )
        campaign = serializers.SlugField(required=False, allow_blank=True)

    @extend_schema(
        operation_id="identify",
        request={"multipart/form-data": InputSerializer},
        responses={
            200: IdentifyOutputSerializer,
            **_errors(400, 401, 403, 415, 429, 503, descriptions=IDENTIFY_ERRORS),
        },
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        photos = data.validated_data["photos"]
        if not 1 <= len(photos) <= settings.PHOTO_MAX_COUNT:
            raise ParkWatchError(
                f"Send 1 to {settings.PHOTO_MAX_COUNT} photos of one organism.",
                code="photo_count",
                field="photos",
            )
        campaign = campaign_for_upload(data.validated_data.get("campaign") or None)
        if campaign is None:
            raise ParkWatchError("Unknown campaign.", code="unknown_campaign", field="campaign")
        inspected = [
            photo_inspect(photo, index=index, public_max_side=settings.IDENTIFY_MAX_SIDE)
            for index, photo in enumerate(photos)
        ]
        images = [base64.b64encode(photo.public_jpeg).decode("ascii") for photo in inspected]
        answer = _ask_worker(images, campaign)
        if "error" in answer:
            return Response(answer, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(IdentifyOutputSerializer(_identify_output(answer, campaign)).data)


def _ask_worker(images: list[str], campaign: Campaign) -> dict:
    unavailable = {
        "error": "inference_unavailable",
        "detail": f"No inference worker answered within {settings.IDENTIFY_TIMEOUT_SECONDS:g} s; try again later.",
    }
    try:
        result = current_app.send_task(
            IDENTIFY_TASK, args=[images, campaign.pk], queue="inference", retry=False
        )
    except Exception:
        logger.warning("Could not publish an identify request", exc_info=True)
        return unavailable
    try:
        return result.get(
            timeout=settings.IDENTIFY_TIMEOUT_SECONDS, propagate=True, disable_sync_subtasks=False
        )
    except CeleryTimeout:
        _quietly(result.revoke)
        return unavailable
    except Exception as exc:
        logger.exception("Identify failed in the worker")
        return {"error": "inference_failed", "detail": f"The classifier failed: {exc}"}
    finally:
        _quietly(result.forget)


def _quietly(action) -> None:
    """Revoking or forgetting a result is housekeeping: it must not turn a reply into a 500."""
    try:
        action()
    except Exception:
        logger.debug("Result housekeeping failed", exc_info=True)


def _identify_output(answer: dict, campaign: Campaign) -> dict:
    taxa = Taxon.objects.in_bulk([row["taxon_id"] for row in answer["results"] if row["taxon_id"]])
    results = [{**row, "taxon": taxa.get(row["taxon_id"])} for row in answer["results"]]
    version = answer["version"]
    return {
        "model_version": f"{version['name']} v{version['id']}",
        "model_version_id": version["id"],
        "model_is_demo": version["is_demo"],
        "tta": version["tta"],
        "not_sure": not results or results[0]["probability"] < campaign.confidence_threshold,
        "results": results,
    }


urlpatterns = [
    path("identify/", IdentifyApi.as_view(), name="api-identify"),
    path("classifiers/", ClassifierListApi.as_view(), name="api-classifiers"),
    path("classifiers/<int:pk>/", ClassifierDetailApi.as_view(), name="api-classifier-detail"),
    path(
        "classifiers/<int:pk>/activate/",
        ClassifierActivateApi.as_view(),
        name="api-classifier-activate",
    ),
    path("", include("classifier.api_training")),
]
