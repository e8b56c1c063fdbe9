"""The curators' API: the review queue, claiming the next sighting, decisions, control work.

Thin views around `observations.services.review`, `observations.services.control` and the
review selectors. Every endpoint is for curators (and admins): visitors get 403, anonymous
clients 401. Curators see exact positions, so nothing here goes through `position_for`.
"""

from __future__ import annotations

from functools import partial

from django.db.models import Prefetch
from django.urls import path
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from observations.api.permissions import IsCurator
from observations.api.serializers import (
    ControlCaseSerializer,
    ControlEventSerializer,
    ObservationOutputSerializer,
    ReviewQueueItemSerializer,
    ReviewSerializer,
    error_responses,
    observation_context,
)
from observations.api.views import API_AUTHENTICATION, API_RENDERERS, ObservationPagination
from observations.errors import ParkWatchError
from observations.models import ControlEvent, Observation, Review, Taxon
from observations.selectors import (
    ai_predictions,
    control_cases,
    observation_get,
    review_history,
    review_queue,
)
from observations.services.control import control_advance
from observations.services.review import (
    review_bulk_decide,
    review_claim_next,
    review_decide,
    review_release,
)

BULK_MAX = 100
BULK_DECISIONS = (Review.Decision.CONFIRM, Review.Decision.REJECT)
CONTROL_STEPS = " -> ".join(Observation.ControlStatus.values)
AI_RANKS = 5
_NOT_FOUND = ParkWatchError("No such sighting.", code="not_found", status=404)

ERROR_DESCRIPTIONS = {
    400: "Invalid input; `field` names the culprit.",
    401: "Not signed in.",
    403: "Curators and admins only.",
    404: "No such sighting.",
    409: "Another curator holds the claim, the sighting already has a verdict, or curators "
    "disagree and a lead curator must decide.",
    415: "The body is not JSON, a URL-encoded form or multipart.",
}


_errors = partial(error_responses, descriptions=ERROR_DESCRIPTIONS)


def _sighting_or_404(uuid) -> Observation:
    observation = observation_get(uuid=uuid)
    if observation is None:
        raise exceptions.NotFound("No such sighting.")
    return observation


def _curator_detail(request, uuid) -> dict:
    """The sighting as a curator sees it, read again after a write."""
    observation = _sighting_or_404(uuid)
    return ObservationOutputSerializer(observation, context=observation_context(request)).data


class CuratorApi(APIView):
    authentication_classes = API_AUTHENTICATION
    renderer_classes = API_RENDERERS
    permission_classes = [IsCurator]


# -- the queue and "next" --------------------------------------------------------------------


@extend_schema_serializer(component_name="ReviewQueueFilter")
class ReviewFilterSerializer(serializers.Serializer):
    campaign = serializers.SlugField(required=False, allow_blank=True, help_text="Campaign slug.")
    park = serializers.SlugField(required=False, allow_blank=True, help_text="Park slug.")
    ai_taxon = serializers.IntegerField(
        required=False, allow_null=True, help_text="Only sightings whose AI top-1 is this taxon."
    )
    invasive_only = serializers.BooleanField(
        required=False, default=False, help_text="Only sightings the AI finds likely invasive."
    )
    duplicates_only = serializers.BooleanField(
        required=False, default=False, help_text="Only possible duplicates of another sighting."
    )

    def filters(self) -> dict:
        return {key: value for key, value in self.validated_data.items() if value}


class ReviewQueueApi(CuratorApi):
    pagination_class = ObservationPagination

    @extend_schema(
        operation_id="review_queue",
        summary="The review queue",
        description="Sightings waiting for this curator, most urgent first: likely invasive, "
        "then the most uncertain for the AI, then the oldest. Claimed sightings are left out "
        "until their claim expires; conflicts are listed for lead curators and admins only; a "
        "sighting this curator already reviewed is never listed again.",
        parameters=[ReviewFilterSerializer],
        responses={200: ReviewQueueItemSerializer(many=True), **_errors(400, 401, 403)},
    )
    def get(self, request):
        filters = ReviewFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queue = review_queue(curator=request.user, filters=filters.filters()).select_related(
            "claimed_by"
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queue, request, view=self)
        rows = ReviewQueueItemSerializer(page, many=True, context={"request": request})
        return paginator.get_paginated_response(rows.data)


class ReviewNextApi(CuratorApi):
    @extend_schema(
        operation_id="review_next",
        summary="Claim the next sighting",
        description="The curator's own unfinished claim first; otherwise the top of the queue "
        "(with the body's filters), claimed for `REVIEW_CLAIM_MINUTES`. Two curators asking at "
        "the same moment never get the same sighting. 204 when nothing is waiting.",
        request=ReviewFilterSerializer,
        responses={
            200: ObservationOutputSerializer,
            204: OpenApiResponse(description="Nothing is waiting for this curator."),
            **_errors(400, 401, 403, 415),
        },
    )
    def post(self, request):
        filters = ReviewFilterSerializer(data=request.data)
        filters.is_valid(raise_exception=True)
        observation = review_claim_next(curator=request.user, filters=filters.filters())
        if observation is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_curator_detail(request, observation.uuid))


class ObservationReleaseApi(CuratorApi):
    @extend_schema(
        operation_id="review_release",
        summary="Give a claim back",
        description="The sighting goes back to the queue in the state it had before the claim. "
        "Admins may free anyone's claim.",
        request=None,
        responses={200: ObservationOutputSerializer, **_errors(401, 403, 404, 409)},
    )
    def post(self, request, uuid):
        observation = _sighting_or_404(uuid)
        review_release(curator=request.user, observation=observation)
        return Response(_curator_detail(request, uuid))


# -- decisions -------------------------------------------------------------------------------


@extend_schema_serializer(component_name="ReviewDecide")
class ReviewDecideSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Review.Decision.choices)
    taxon = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="For confirm: a taxon id or scientific name (or give `rank` instead).",
    )
    rank = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=AI_RANKS,
        help_text="For confirm: take the taxon of this rank of the AI's top 5.",
    )
    reject_reason = serializers.ChoiceField(
        choices=Review.RejectReason.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text="Required to reject.",
    )
    comment = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=5000, help_text="For curators."
    )
    message_to_observer = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=5000,
        help_text="Shown to the visitor; required for needs_info.",
    )

    def validate(self, attrs: dict) -> dict:
        name = (attrs.get("taxon") or "").strip()
        rank = attrs.get("rank")
        if name and rank is not None:
            raise serializers.ValidationError(
                {"rank": "Give a taxon or an AI rank, not both."}, code="taxon_and_rank"
            )
        attrs["taxon"] = None
        if name:
            attrs["taxon"] = self._taxon_named(name)
        elif rank is not None:
            attrs["taxon"] = self._taxon_ranked(rank)
        return attrs

    @staticmethod
    def _taxon_named(name: str) -> Taxon:
        taxa = Taxon.objects.all()
        taxon = (
            taxa.filter(pk=int(name)).first()
            if name.isdigit()
            else taxa.filter(scientific_name__iexact=name).first()
        )
        if taxon is None:
            raise serializers.ValidationError(
                {"taxon": f"No taxon {name!r}."}, code="unknown_taxon"
            )
        return taxon

    def _taxon_ranked(self, rank: int) -> Taxon:
        rows = {row.rank: row for row in ai_predictions(self.context["observation"])}
        row = rows.get(rank)
        if row is None:
            raise serializers.ValidationError(
                {"rank": f"The AI has no suggestion of rank {rank} for this sighting."},
                code="no_such_rank",
            )
        if row.taxon is None:
            raise serializers.ValidationError(
                {"rank": f"Rank {rank} is a raw label ({row.label}) with no taxon: name one."},
                code="rank_without_taxon",
            )
        return row.taxon


class ReviewDecisionSerializer(serializers.Serializer):
    review = ReviewSerializer()
    status = serializers.ChoiceField(
        choices=Observation.Status.choices, help_text="The sighting's status after this review."
    )
    final = serializers.BooleanField(
        help_text="True when this review reached a verdict or a conflict; false while more "
        "curators must agree."
    )
    observation = ObservationOutputSerializer()


class ObservationReviewsApi(CuratorApi):
    @extend_schema(
        operation_id="reviews_list",
        summary="A sighting's review history",
        description="Every review, oldest first: who, when, the decision, the taxon and what "
        "the AI said at the time.",
        responses={200: ReviewSerializer(many=True), **_errors(401, 403, 404)},
    )
    def get(self, request, uuid):
        observation = _sighting_or_404(uuid)
        return Response(ReviewSerializer(review_history(observation), many=True).data)

    @extend_schema(
        operation_id="reviews_create",
        summary="Decide on a sighting",
        description="confirm (with `taxon` or `rank`), reject (with `reject_reason`), "
        "unidentifiable, or needs_info (with `message_to_observer`). With a campaign needing "
        "several agreeing reviews the sighting waits for other curators; disagreement is a "
        "conflict that a lead curator settles. A lead curator (or admin) decides alone and may "
        "correct a verdict.",
        request=ReviewDecideSerializer,
        responses={201: ReviewDecisionSerializer, **_errors(400, 401, 403, 404, 409, 415)},
    )
    def post(self, request, uuid):
        observation = _sighting_or_404(uuid)
        data = ReviewDecideSerializer(data=request.data, context={"observation": observation})
        data.is_valid(raise_exception=True)
        decided = data.validated_data
        result = review_decide(
            observation=observation,
            curator=request.user,
            decision=decided["decision"],
            taxon=decided["taxon"],
            reject_reason=decided["reject_reason"],
            comment=decided["comment"],
            message_to_observer=decided["message_to_observer"],
        )
        detail = _curator_detail(request, uuid)
        body = {
            "review": ReviewSerializer(result.review).data,
            "status": detail["status"],
            "final": result.final,
            "observation": detail,
        }
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema_serializer(component_name="ReviewBulk")
class ReviewBulkSerializer(serializers.Serializer):
    uuids = serializers.ListField(
        child=serializers.UUIDField(), min_length=1, max_length=BULK_MAX, help_text="Sightings."
    )
    # All decisions in the schema (one enum for `decision` everywhere); two are accepted.
    decision = serializers.ChoiceField(
        choices=Review.Decision.choices,
        help_text="confirm (each sighting's AI top-1) or reject.",
    )
    reject_reason = serializers.ChoiceField(
        choices=Review.RejectReason.choices, required=False, allow_blank=True, default=""
    )

    def validate(self, attrs: dict) -> dict:
        if attrs["decision"] not in BULK_DECISIONS:
            raise serializers.ValidationError(
                {
                    "decision": "Decide in bulk only to confirm or reject; review the others one by one."
                },
                code="invalid_decision",
            )
        if attrs["decision"] == Review.Decision.REJECT and not attrs["reject_reason"]:
            raise serializers.ValidationError(
                {"reject_reason": "Rejecting needs a reason."}, code="reject_reason_missing"
            )
        attrs["uuids"] = list(dict.fromkeys(attrs["uuids"]))  # once each, in the given order
        return attrs


class BulkResultSerializer(serializers.Serializer):
    uuid = serializers.UUIDField()
    ok = serializers.BooleanField()
    status = serializers.ChoiceField(
        choices=Observation.Status.choices, allow_null=True, help_text="Null: no such sighting."
    )
    error = serializers.CharField(allow_null=True, help_text="The error code when not ok.")
    detail = serializers.CharField(allow_null=True)


class ReviewBulkApi(CuratorApi):
    @extend_schema(
        operation_id="review_bulk",
        summary="Decide on several clear cases",
        description="Confirm (each with its AI top-1) or reject several sightings at once. "
        "Each is decided on its own: one that cannot be (claimed by another curator, already "
        "decided, no AI taxon) is reported and the others go on.",
        request=ReviewBulkSerializer,
        responses={
            200: inline_serializer(
                "ReviewBulkResult", {"results": BulkResultSerializer(many=True)}
            ),
            **_errors(400, 401, 403, 415),
        },
    )
    def post(self, request):
        data = ReviewBulkSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        uuids = data.validated_data["uuids"]
        found = Observation.objects.select_related("campaign", "ai_taxon").in_bulk(
            uuids, field_name="uuid"
        )
        outcomes = review_bulk_decide(
            curator=request.user,
            observations=[found[uuid] for uuid in uuids if uuid in found],
            decision=data.validated_data["decision"],
            reject_reason=data.validated_data["reject_reason"],
        )
        errors = {observation.uuid: error for observation, error in outcomes}
        statuses = dict(Observation.objects.filter(uuid__in=uuids).values_list("uuid", "status"))
        results = []
        for uuid in uuids:
            error = errors.get(uuid) if uuid in found else _NOT_FOUND
            results.append(
                {
                    "uuid": uuid,
                    "ok": error is None,
                    "status": statuses.get(uuid),
                    "error": error.code if error else None,
                    "detail": error.detail if error else None,
                }
            )
        return Response({"results": BulkResultSerializer(results, many=True).data})


# -- control ---------------------------------------------------------------------------------


class ControlFilterSerializer(serializers.Serializer):
    include_closed = serializers.BooleanField(
        required=False, default=False, help_text="Also list eradicated cases."
    )


class ControlCasesApi(CuratorApi):
    pagination_class = ObservationPagination

    @extend_schema(
        operation_id="control_list",
        summary="Control cases",
        description="Confirmed invasive sightings under follow-up (open ones unless "
        "`include_closed`), oldest verdict first, each with its events.",
        parameters=[ControlFilterSerializer],
        responses={200: ControlCaseSerializer(many=True), **_errors(400, 401, 403)},
    )
    def get(self, request):
        filters = ControlFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        cases = control_cases(open_only=not filters.validated_data["include_closed"])
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(cases, request, view=self)
        data = ControlCaseSerializer(page, many=True, context={"request": request})
        return paginator.get_paginated_response(data.data)


@extend_schema_serializer(component_name="ControlAdvance")
class ControlAdvanceSerializer(serializers.Serializer):
    # Checked by the service, which says which transitions are allowed.
    to_status = serializers.CharField(max_length=30, help_text=f"One of {CONTROL_STEPS}.")
    note = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="What was done or seen."
    )


class ControlAdvanceResultSerializer(serializers.Serializer):
    event = ControlEventSerializer()
    case = ControlCaseSerializer()


class ObservationControlApi(CuratorApi):
    @extend_schema(
        operation_id="control_advance",
        summary="Record a control step",
        description=f"{CONTROL_STEPS}. Steps may be skipped forwards; going back only where field work does "
        "(monitoring back to treatment, eradicated back to monitoring). A note is required.",
        request=ControlAdvanceSerializer,
        responses={201: ControlAdvanceResultSerializer, **_errors(400, 401, 403, 404, 415)},
    )
    def post(self, request, uuid):
        observation = _sighting_or_404(uuid)
        data = ControlAdvanceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = control_advance(
            observation=observation,
            user=request.user,
            to_status=data.validated_data["to_status"],
            note=data.validated_data["note"],
        )
        case = (
            Observation.objects.select_related("campaign", "park", "final_taxon")
            .prefetch_related(
                Prefetch(
                    "control_events",
                    queryset=ControlEvent.objects.select_related("user").order_by("created_at"),
                )
            )
            .get(pk=observation.pk)
        )
        body = {
            "event": ControlEventSerializer(event).data,
            "case": ControlCaseSerializer(case, context={"request": request}).data,
        }
        return Response(body, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("review/queue/", ReviewQueueApi.as_view(), name="api-review-queue"),
    path("review/next/", ReviewNextApi.as_view(), name="api-review-next"),
    path("review/bulk/", ReviewBulkApi.as_view(), name="api-review-bulk"),
    path(
        "observations/<uuid:uuid>/reviews/",
        ObservationReviewsApi.as_view(),
        name="api-observation-reviews",
    ),
    path(
        "observations/<uuid:uuid>/release/",
        ObservationReleaseApi.as_view(),
        name="api-observation-release",
    ),
    path("control/", ControlCasesApi.as_view(), name="api-control"),
    path(
        "observations/<uuid:uuid>/control/",
        ObservationControlApi.as_view(),
        name="api-observation-control",
    ),
]
