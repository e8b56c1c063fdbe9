"""The retraining loop's endpoints (admins): datasets, training runs, rollback."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier.api import ClassifierVersionSerializer
from classifier.models import DatasetSnapshot, PromotionEvent, TrainingRun
from classifier.selectors import version_list
from classifier.services.datasets import snapshot_create
from classifier.services.promotion import version_rollback
from classifier.services.training import training_run_cancel, training_run_create
from observations.api.permissions import IsAdmin
from observations.api.serializers import error_responses
from observations.api.views import API_AUTHENTICATION, API_RENDERERS
from observations.errors import ParkWatchError
from observations.models import Campaign
from observations.selectors import campaign_for_upload

_errors = error_responses


def _campaign(slug: str | None) -> Campaign:
    campaign = campaign_for_upload(slug or None)
    if campaign is None:
        raise ParkWatchError("Unknown campaign.", code="unknown_campaign", field="campaign")
    return campaign


class AdminApi(APIView):
    authentication_classes = API_AUTHENTICATION
    renderer_classes = API_RENDERERS
    permission_classes = [IsAdmin]


class CampaignInputSerializer(serializers.Serializer):
    campaign = serializers.SlugField(
        required=False, allow_blank=True, help_text="Default: the default campaign."
    )


class SnapshotSerializer(serializers.ModelSerializer):
    campaign = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = DatasetSnapshot
        fields = [
            "id",
            "campaign",
            "version",
            "created_at",
            "labels",
            "counts",
            "confirmed_photos",
            "note",
        ]


class PromotionSerializer(serializers.Serializer):
    action = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()


class TrainingRunSerializer(serializers.ModelSerializer):
    campaign = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    snapshot = SnapshotSerializer(read_only=True, allow_null=True)
    percent = serializers.SerializerMethodField()
    result_version = ClassifierVersionSerializer(read_only=True, allow_null=True)
    promotion = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "campaign",
            "snapshot",
            "parameters",
            "state",
            "percent",
            "progress",
            "log",
            "error",
            "cancel_requested",
            "resumed_from",
            "result_version",
            "evaluation",
            "promotion",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
        ]

    def get_percent(self, run) -> float:
        """How far the run is, from its last progress report."""
        if run.state == TrainingRun.State.SUCCEEDED:
            return 100.0
        progress = run.progress or {}
        epochs, epoch = progress.get("epochs") or 0, progress.get("epoch") or 0
        steps, step = progress.get("steps") or 0, progress.get("step") or 0
        if not epochs:
            return 0.0
        done = (
            epoch - 1 + (step / steps if steps else 0) if progress.get("event") == "step" else epoch
        )
        return round(max(0.0, min(100.0, 100 * done / epochs)), 1)

    @extend_schema_field(PromotionSerializer(allow_null=True))
    def get_promotion(self, run) -> dict | None:
        if not run.result_version_id:
            return None
        event = (
            PromotionEvent.objects.filter(version_id=run.result_version_id)
            .order_by("-created_at")
            .first()
        )
        return PromotionSerializer(event).data if event else None


class TrainingRunInputSerializer(serializers.Serializer):
    campaign = serializers.SlugField(required=False, allow_blank=True)
    parameters = serializers.DictField(
        required=False,
        default=dict,
        help_text="architecture (xception, mobilenet_v3_small, efficientnet_b0, resnet50, small_cnn), "
        "image_size, epochs, batch_size, learning_rate, backbone_learning_rate, augmentation, "
        "class_weights, early_stopping_patience, start_from (active, imagenet, scratch).",
    )
    snapshot = serializers.IntegerField(
        required=False, allow_null=True, help_text="A dataset snapshot id."
    )
    resume_from = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="A failed or cancelled run to resume from its checkpoint.",
    )


def _runs():
    return TrainingRun.objects.select_related(
        "campaign", "snapshot__campaign", "result_version__campaign"
    )


class TrainingRunCollectionApi(AdminApi):
    """`GET`: recent training runs. `POST`: freeze a dataset snapshot and queue a run."""

    @extend_schema(
        operation_id="training_runs_list",
        responses={200: TrainingRunSerializer(many=True), **_errors(401, 403)},
    )
    def get(self, request):
        return Response(TrainingRunSerializer(_runs()[:50], many=True).data)

    @extend_schema(
        operation_id="training_runs_create",
        request=TrainingRunInputSerializer,
        responses={201: TrainingRunSerializer, **_errors(400, 401, 403, 415)},
    )
    def post(self, request):
        data = TrainingRunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = _campaign(data.validated_data.get("campaign"))
        snapshot = resume_from = None
        if data.validated_data.get("snapshot"):
            snapshot = DatasetSnapshot.objects.filter(pk=data.validated_data["snapshot"]).first()
            if snapshot is None:
                raise ParkWatchError(
                    "No such dataset snapshot.", code="unknown_snapshot", field="snapshot"
                )
        if data.validated_data.get("resume_from"):
            resume_from = TrainingRun.objects.filter(pk=data.validated_data["resume_from"]).first()
            if resume_from is None:
                raise ParkWatchError(
                    "No such training run.", code="unknown_run", field="resume_from"
                )
        run = training_run_create(
            campaign=campaign,
            parameters=data.validated_data["parameters"],
            snapshot=snapshot,
            created_by=request.user,
            resume_from=resume_from,
        )
        return Response(
            TrainingRunSerializer(_runs().get(pk=run.pk)).data, status=status.HTTP_201_CREATED
        )


class TrainingRunDetailApi(AdminApi):
    @extend_schema(
        operation_id="training_runs_retrieve",
        responses={200: TrainingRunSerializer, **_errors(401, 403, 404)},
    )
    def get(self, request, pk: int):
        return Response(TrainingRunSerializer(get_object_or_404(_runs(), pk=pk)).data)


class TrainingRunCancelApi(AdminApi):
    @extend_schema(
        operation_id="training_runs_cancel",
        request=None,
        responses={200: TrainingRunSerializer, **_errors(401, 403, 404)},
    )
    def post(self, request, pk: int):
        training_run_cancel(run=get_object_or_404(TrainingRun, pk=pk))
        return Response(TrainingRunSerializer(_runs().get(pk=pk)).data)


class SnapshotCollectionApi(AdminApi):
    """Dataset snapshots: list them, or freeze a new one."""

    @extend_schema(
        operation_id="datasets_list",
        responses={200: SnapshotSerializer(many=True), **_errors(401, 403)},
    )
    def get(self, request):
        return Response(
            SnapshotSerializer(
                DatasetSnapshot.objects.select_related("campaign")[:100], many=True
            ).data
        )

    @extend_schema(
        operation_id="datasets_create",
        request=CampaignInputSerializer,
        responses={201: SnapshotSerializer, **_errors(400, 401, 403, 415)},
    )
    def post(self, request):
        data = CampaignInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        snapshot = snapshot_create(
            campaign=_campaign(data.validated_data.get("campaign")), created_by=request.user
        )
        return Response(SnapshotSerializer(snapshot).data, status=status.HTTP_201_CREATED)


class ClassifierRollbackApi(AdminApi):
    """Go back to the version active before the current one; recorded."""

    @extend_schema(
        operation_id="classifiers_rollback",
        request=CampaignInputSerializer,
        responses={200: ClassifierVersionSerializer, **_errors(400, 401, 403, 415)},
    )
    def post(self, request):
        data = CampaignInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = version_rollback(
            campaign=_campaign(data.validated_data.get("campaign")), user=request.user
        )
        return Response(ClassifierVersionSerializer(version_list().get(pk=event.version_id)).data)


urlpatterns = [
    path("classifiers/rollback/", ClassifierRollbackApi.as_view(), name="api-classifier-rollback"),
    path("datasets/", SnapshotCollectionApi.as_view(), name="api-datasets"),
    path("training-runs/", TrainingRunCollectionApi.as_view(), name="api-training-runs"),
    path("training-runs/<int:pk>/", TrainingRunDetailApi.as_view(), name="api-training-run-detail"),
    path(
        "training-runs/<int:pk>/cancel/",
        TrainingRunCancelApi.as_view(),
        name="api-training-run-cancel",
    ),
]
