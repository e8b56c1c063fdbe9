"""The admins' dashboard: figures and map, the classifier registry, training runs and datasets.

Thin views: a selector or one service call, a template. Pages answer a 403 page to anyone who
is not an admin (anonymous visitors sign in first); the JSON and PNG endpoints answer 403 to
anyone who is not an admin. Every write goes through a service (`training_run_create`,
`training_run_cancel`, `snapshot_create`, `version_promote`, `version_rollback`); a
ParkWatchError it raises is shown as a message or at the form's field, never as a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from classifier.dashboard import selectors
from classifier.dashboard.forms import CampaignForm, ExportForm, PromoteForm, TrainingRunForm
from classifier.models import ClassifierVersion, PromotionEvent, TrainingRun
from classifier.services.datasets import snapshot_create
from classifier.services.promotion import version_promote, version_rollback
from classifier.services.training import training_run_cancel, training_run_create
from observations.errors import ParkWatchError
from observations.models import Campaign
from observations.roles import is_admin
from observations.storage import named_storage

EXPORT_FORMATS = (
    ("csv", "CSV", "api-export-csv", "A spreadsheet: one row per confirmed sighting."),
    ("geojson", "GeoJSON", "api-export-geojson", "Points for a GIS (QGIS, ArcGIS)."),
    ("dwca", "Darwin Core Archive", "api-export-dwca", "A zip for GBIF (CC0, CC BY, CC BY-NC)."),
)


def admin_required(view: Callable) -> Callable:
    """Admins only: anonymous visitors sign in first, others get a 403 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            # After signing in, a POST's address would answer 405: come back to a page instead.
            target = (
                request.get_full_path()
                if request.method == "GET"
                else reverse("dashboard:overview")
            )
            return redirect_to_login(target)
        if not is_admin(request.user):
            return render(request, "dashboard/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


def admin_only(view: Callable) -> Callable:
    """For data a page fetches (JSON, PNG): a 403 to anyone who is not an admin."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_admin(request.user):
            return JsonResponse(
                {"error": "forbidden", "detail": "The dashboard is for admins only."}, status=403
            )
        return view(request, *args, **kwargs)

    return wrapper


def _campaign_filter(request: HttpRequest) -> Campaign | None:
    slug = request.GET.get("campaign", "").strip()
    if not slug or "\x00" in slug:  # PostgreSQL refuses NUL in a query; no such campaign
        return None
    return Campaign.objects.filter(slug=slug).first()


def _query(campaign: Campaign | None) -> str:
    return f"?{urlencode({'campaign': campaign.slug})}" if campaign else ""


# --- overview ---------------------------------------------------------------------------------


@admin_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    """Figures, map, review backlog, control follow-up, the AI against the experts, exports."""
    campaign = _campaign_filter(request)
    campaigns = selectors.campaigns()
    weeks = selectors.week_counts(campaign=campaign)
    export_form = ExportForm(
        initial={"campaign": campaign.slug if campaign else ""}, campaigns=campaigns
    )
    context = {
        "campaign": campaign,
        "campaigns": campaigns,
        "headline": selectors.headline_counts(campaign=campaign),
        "statuses": selectors.status_counts(campaign=campaign),
        "weeks": weeks,
        "weeks_width": 10 * len(weeks),
        "taxa": selectors.taxon_counts(campaign=campaign),
        "parks": selectors.park_counts(campaign=campaign),
        "backlog": selectors.review_backlog(campaign=campaign),
        "control": selectors.control_overview(campaign=campaign),
        "ai": selectors.ai_vs_experts(campaign=campaign),
        "export_form": export_form,
        "export_formats": [
            {"name": name, "title": title, "url": reverse(url_name), "help": help_text}
            for name, title, url_name, help_text in EXPORT_FORMATS
        ],
        "map_config": {
            "dataUrl": reverse("dashboard:map") + _query(campaign),
            "parks": selectors.map_parks(campaign=campaign),
            "statuses": [
                {"status": status, "label": str(label), "colour": selectors.STATUS_COLOURS[status]}
                for status, label in selectors.Status.choices
            ],
        },
    }
    return render(request, "dashboard/overview.html", context)


@never_cache
@admin_only
@require_GET
def map_data(request: HttpRequest) -> JsonResponse:
    """The sightings as GeoJSON for the dashboard's map: exact positions (admins only)."""
    return JsonResponse(selectors.map_features(campaign=_campaign_filter(request)))


# --- classifiers ------------------------------------------------------------------------------


def _render_classifiers(
    request: HttpRequest,
    *,
    failed: tuple[int, PromoteForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    versions = selectors.classifier_versions()
    targets = selectors.rollback_targets()
    groups: dict[int, dict] = {}
    for version in versions:
        group = groups.setdefault(
            version.campaign_id,
            {"campaign": version.campaign, "active": None, "versions": [], "rollback_to": None},
        )
        if version.state == ClassifierVersion.State.ACTIVE:
            group["active"] = version
            group["rollback_to"] = targets.get(version.pk)
        form = PromoteForm(prefix=f"v{version.pk}")
        if failed and failed[0] == version.pk:
            form = failed[1]
        group["versions"].append(
            {"version": version, "card": selectors.model_card(version), "promote_form": form}
        )
    context = {
        "groups": list(groups.values()),
        "history": selectors.promotion_history(),
    }
    return render(request, "dashboard/classifiers.html", context, status=status)


@admin_required
@require_GET
def classifiers(request: HttpRequest) -> HttpResponse:
    """Versions with their model cards, promote and roll back, and the promotion history."""
    return _render_classifiers(request)


@admin_required
@require_POST
def promote(request: HttpRequest, pk: int) -> HttpResponse:
    """Make a version its campaign's active classifier by hand, with the reason; recorded."""
    version = get_object_or_404(ClassifierVersion.objects.select_related("campaign"), pk=pk)
    form = PromoteForm(request.POST, prefix=f"v{version.pk}")
    if not form.is_valid():
        messages.error(request, f"{version.label} was not promoted: say why first.")
        return _render_classifiers(request, failed=(version.pk, form), status=400)
    try:
        version_promote(
            version=version,
            user=request.user,
            action=PromotionEvent.Action.MANUAL_PROMOTION,
            reasons=[form.cleaned_data["reason"]],
        )
    except ParkWatchError as error:
        messages.error(request, f"{version.label}: {error.detail}")
        return redirect("dashboard:classifiers")
    messages.success(
        request,
        f"{version.label} is now the active classifier of {version.campaign.name}; sightings "
        "waiting for review are being classified again.",
    )
    return redirect("dashboard:classifiers")


@admin_required
@require_POST
def rollback(request: HttpRequest) -> HttpResponse:
    """Go back to the version active before the current one; recorded."""
    form = CampaignForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the campaign to roll back.")
        return redirect("dashboard:classifiers")
    try:
        event = version_rollback(campaign=form.cleaned_data["campaign"], user=request.user)
    except ParkWatchError as error:
        messages.error(request, error.detail)
        return redirect("dashboard:classifiers")
    messages.success(
        request, f"Rolled back: {event.version.label} is active again (was {event.previous.label})."
    )
    return redirect("dashboard:classifiers")


@admin_only
@require_GET
def plot(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """A model card's PNG (training curves, confusion matrix) from the private models storage.

    The file is the one the version's card names: a URL cannot reach any other stored file.
    """
    version = get_object_or_404(ClassifierVersion, pk=pk)
    name = selectors.plot_name(version, kind)
    if name is None:
        raise Http404("This model card has no such plot.")
    try:
        handle = named_storage("models").open(name, "rb")
    except (FileNotFoundError, OSError):
        raise Http404("The plot's file is missing from storage.") from None
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- training ---------------------------------------------------------------------------------


def _render_training(
    request: HttpRequest, *, form: TrainingRunForm | None = None, status: int = 200
) -> HttpResponse:
    campaigns = selectors.campaigns()
    context = {
        "form": form or TrainingRunForm(),
        "runs": [
            {
                "run": run,
                "progress": selectors.run_progress(run),
                "parameters": selectors.run_parameters_text(run),
            }
            for run in selectors.training_runs()
        ],
        "snapshots": selectors.dataset_snapshots(),
        "campaigns": campaigns,
        "default_campaign": campaigns[0] if campaigns else None,
        "poll_seconds": 3,
    }
    return render(request, "dashboard/training.html", context, status=status)


@admin_required
@require_GET
def training(request: HttpRequest) -> HttpResponse:
    """Training runs with live progress, the form to start one, and the dataset snapshots."""
    return _render_training(request)


@admin_required
@require_POST
def training_start(request: HttpRequest) -> HttpResponse:
    """Queue a run for the training worker (a new snapshot is frozen unless one is chosen)."""
    form = TrainingRunForm(request.POST)
    if not form.is_valid():
        return _render_training(request, form=form, status=400)
    try:
        run = training_run_create(
            campaign=form.cleaned_data["campaign"],
            parameters=form.parameters(),
            snapshot=form.cleaned_data["snapshot"],
            created_by=request.user,
        )
    except ParkWatchError as error:
        form.add_error(error.field if error.field in form.fields else None, error.detail)
        return _render_training(request, form=form, status=error.status_code)
    messages.success(
        request,
        f"Training run {run.pk} queued on dataset v{run.snapshot.version}: "
        "it starts when the training worker is free.",
    )
    return redirect(f"{reverse('dashboard:training')}#run-{run.pk}")


@admin_required
@require_POST
def training_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Stop a run: a queued one at once, a running one at its next step."""
    run = get_object_or_404(TrainingRun, pk=pk)
    if run.state not in (TrainingRun.State.QUEUED, TrainingRun.State.RUNNING):
        messages.error(request, f"Training run {run.pk} had already {run.state}.")
        return redirect(f"{reverse('dashboard:training')}#run-{run.pk}")
    run = training_run_cancel(run=run)
    if run.state == TrainingRun.State.CANCELLED:
        messages.success(request, f"Training run {run.pk} cancelled.")
    elif run.state == TrainingRun.State.RUNNING:
        messages.info(request, f"Training run {run.pk} stops at its next step.")
    else:
        messages.error(request, f"Training run {run.pk} had already {run.state}.")
    return redirect(f"{reverse('dashboard:training')}#run-{run.pk}")


@never_cache
@admin_only
@require_GET
def training_progress(request: HttpRequest, pk: int) -> JsonResponse:
    """What the training page polls: state, percent, epoch, step, loss and metrics, log tail."""
    run = get_object_or_404(TrainingRun.objects.select_related("result_version"), pk=pk)
    return JsonResponse(selectors.run_progress(run))


@admin_required
@require_POST
def snapshot_freeze(request: HttpRequest) -> HttpResponse:
    """Freeze the campaign's confirmed photos (and imported images) as a new dataset version."""
    form = CampaignForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the campaign whose dataset to freeze.")
        return redirect("dashboard:training")
    try:
        snapshot = snapshot_create(campaign=form.cleaned_data["campaign"], created_by=request.user)
    except ParkWatchError as error:
        messages.error(request, error.detail)
        return redirect("dashboard:training")
    total = sum(sum(splits.values()) for splits in snapshot.counts.values())
    messages.success(
        request,
        f"Dataset v{snapshot.version} of {snapshot.campaign.name} frozen: {total} photo"
        f"{'s' if total != 1 else ''} of {len(snapshot.labels)} taxa.",
    )
    return redirect(f"{reverse('dashboard:training')}#snapshot-{snapshot.pk}")
