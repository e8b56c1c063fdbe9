"""The curators' pages: the review queue, one sighting's review screen, and control follow-up.

Thin views: a form, one service or selector call, a template. Every write goes through
`observations.services.review` or `.control`; a ParkWatchError they raise is shown to the
curator as a message with its status code (a 409 for another curator's claim), never a 500.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_POST

from observations.errors import ParkWatchError
from observations.models import Observation, Review, Taxon
from observations.review_forms import (
    CONTROL_ORDER,
    BulkDecisionForm,
    ControlAdvanceForm,
    DecisionForm,
    QueueFilterForm,
)
from observations.roles import is_admin, is_curator
from observations.selectors import (
    ai_predictions,
    campaign_taxa,
    control_cases,
    curator_campaigns,
    nearby_confirmed,
    observation_get,
    observation_queryset,
    review_history,
    review_queue,
)
from observations.services.control import control_advance
from observations.services.review import (
    DECIDED_STATUSES,
    is_lead,
    review_bulk_decide,
    review_claim_next,
    review_decide,
    review_release,
)
from observations.timezones import local_text, park_zone

QUEUE_PER_PAGE = 25
CONTROL_PER_PAGE = 20
# The queue's filters, kept for "take next" and for the next sighting after a decision.
SESSION_FILTERS = "parkwatch_review_filters"
NEARBY_RADIUS_M = 1000
SHORTCUTS = [
    ("1–5", "confirm the AI's suggestion of that rank"),
    ("r", "reject (choose a reason first)"),
    ("u", "unidentifiable"),
    ("i", "needs more information"),
    ("s", "skip: give the sighting back"),
    ("n", "next sighting"),
]


def curator_required(view: Callable) -> Callable:
    """Curators and admins only: anonymous visitors sign in first, others get a 403 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            # After signing in, a POST's address would answer 405: come back to a page instead.
            target = request.get_full_path() if request.method == "GET" else reverse("review-queue")
            return redirect_to_login(target)
        if not is_curator(request.user):
            return render(request, "review/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


# --- small helpers ----------------------------------------------------------------------------


def _zone(observation: Observation) -> ZoneInfo:
    return park_zone(observation.park)


def _local_text(moment: datetime, zone: ZoneInfo) -> str:
    return local_text(moment, zone, month="%b")


def _percent_text(probability: float | None) -> str:
    if probability is None:
        return ""
    if 0 < probability < 0.005:
        return "<1%"
    return f"{round(probability * 100)}%"


def _ago(moment: datetime) -> str:
    seconds = (timezone.now() - moment).total_seconds()
    if seconds < 60:
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


def _distance_text(metres: float) -> str:
    return f"{metres / 1000:.1f} km" if metres >= 1000 else f"{round(metres)} m"


def _short(observation: Observation) -> str:
    """How a sighting is named in messages: the start of its reference."""
    return str(observation.uuid)[:8]


def _taxon_text(taxon: Taxon | None) -> str:
    return taxon.display_name if taxon else "no taxon"


def _uncertainty(entropy: float | None, outcomes: int) -> dict | None:
    """The AI's spread over its top 5 as low / medium / high (entropy over its maximum)."""
    if entropy is None:
        return None
    maximum = math.log(max(2, min(outcomes or 5, 5)))
    share = min(max(entropy / maximum, 0.0), 1.0)
    level = "low" if share < 0.4 else "medium" if share < 0.7 else "high"
    return {"level": level, "share": share, "percent": round(share * 100), "entropy": entropy}


def _suggestions(observation: Observation) -> list[dict]:
    """The AI's top 5 (newest version), or its top-1 fields when no rows were written."""
    rows = ai_predictions(observation)
    if rows:
        items = [
            {
                "rank": row.rank,
                "taxon": row.taxon,
                "label": row.label,
                "probability": row.probability,
            }
            for row in rows
        ]
    elif observation.ai_taxon_id or observation.ai_label:
        items = [
            {
                "rank": 1,
                "taxon": observation.ai_taxon,
                "label": observation.ai_label,
                "probability": observation.ai_score,
            }
        ]
    else:
        items = []
    for item in items:
        probability = item["probability"]
        item["percent_text"] = _percent_text(probability)
        item["width"] = f"{min(max(probability or 0.0, 0.0), 1.0) * 100:.1f}"
    return items


def _queue_url(filters: dict | None) -> str:
    url = reverse("review-queue")
    query = {key: ("on" if value is True else value) for key, value in (filters or {}).items()}
    return f"{url}?{urlencode(query)}" if query else url


def _saved_filters(request: HttpRequest) -> dict:
    filters = request.session.get(SESSION_FILTERS)
    return filters if isinstance(filters, dict) else {}


SESSION_SKIPPED = "review_skipped"


def _next_filters(request: HttpRequest) -> dict:
    """The saved filters, leaving out the sightings this curator skipped in this session."""
    skipped = request.session.get(SESSION_SKIPPED) or []
    return {**_saved_filters(request), "exclude": skipped} if skipped else _saved_filters(request)


def _back_to_queue(request: HttpRequest) -> str:
    """The queue page the form was sent from (same filters and page), if it is one of ours."""
    target = request.POST.get("return_to", "")
    queue = reverse("review-queue")
    if (
        target.startswith(queue)
        and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
        and not target.startswith(queue + "/")
    ):
        return target
    return _queue_url(_saved_filters(request))


def _is_lead_anywhere(curator) -> bool:
    return is_admin(curator) or curator.led_campaigns.exists()


def _active_claims(curator):
    claims = Observation.objects.filter(
        status=Observation.Status.IN_REVIEW, claim_expires_at__gt=timezone.now()
    )
    campaigns = curator_campaigns(curator)
    return claims.filter(campaign__in=campaigns) if campaigns is not None else claims


# --- the queue --------------------------------------------------------------------------------


def _queue_row(observation: Observation) -> dict:
    photos = list(observation.photos.all())
    zone = _zone(observation)
    suggestions = _suggestions(observation)
    top = suggestions[0] if suggestions else None
    return {
        "observation": observation,
        "photo": photos[0] if photos else None,
        "photo_count": len(photos),
        "observed_text": _local_text(observation.observed_at, zone),
        "observed_local": observation.observed_at.astimezone(zone),
        "received_ago": _ago(observation.received_at),
        "top": top,
        "likely_invasive": bool(getattr(observation, "likely_invasive", 0)),
        "uncertainty": _uncertainty(observation.ai_entropy, len(suggestions)),
        "claim_expired": observation.status == Observation.Status.IN_REVIEW,
    }


@curator_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    """Sightings waiting for this curator, most urgent first, with filters and bulk decisions."""
    curator = request.user
    form = QueueFilterForm(request.GET if _has_filters(request) else None, curator=curator)
    filters = form.filters()
    request.session[SESSION_FILTERS] = filters
    waiting = review_queue(curator=curator, filters=filters)
    page = Paginator(waiting, QUEUE_PER_PAGE).get_page(request.GET.get("page"))
    everything = review_queue(curator=curator)
    lead = _is_lead_anywhere(curator)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "filters": filters,
        "page_obj": page,
        "rows": [_queue_row(observation) for observation in page.object_list],
        "page_query": query.urlencode(),
        "counts": {
            "waiting": everything.exclude(status=Observation.Status.CONFLICT).count(),
            "conflicts": everything.filter(status=Observation.Status.CONFLICT).count()
            if lead
            else None,
            "in_review": _active_claims(curator).count(),
            "matching": page.paginator.count,
        },
        "own_claim": _own_claim(curator),
        "bulk_form": BulkDecisionForm(),
        "return_to": request.get_full_path(),
        "invasive_threshold": round(settings.REVIEW_INVASIVE_THRESHOLD * 100),
    }
    return render(request, "review/queue.html", context)


def _own_claim(curator) -> dict | None:
    observation = (
        _active_claims(curator)
        .filter(claimed_by=curator)
        .select_related("park")
        .order_by("claim_expires_at")
        .first()
    )
    if observation is None:
        return None
    return {
        "observation": observation,
        "until": _local_text(observation.claim_expires_at, _zone(observation)),
    }


def _has_filters(request: HttpRequest) -> bool:
    return any(key in request.GET for key in QueueFilterForm.base_fields)


@curator_required
@require_POST
def take_next(request: HttpRequest) -> HttpResponse:
    """Claim the next sighting of the (filtered) queue and open it; or say nothing is waiting.

    Taking next from the queue page starts afresh: skipped sightings may come back.
    """
    current = request.POST.get("current", "")
    request.session.pop(SESSION_SKIPPED, None)
    filters = _saved_filters(request)
    try:
        observation = review_claim_next(curator=request.user, filters=filters)
    except ParkWatchError as error:
        messages.error(request, error.detail)
        return redirect(_queue_url(filters))
    if observation is None:
        messages.info(
            request, "Nothing waiting that matches your filters." if filters else "Nothing waiting."
        )
        return redirect(_queue_url(filters))
    if current and current == str(observation.uuid):
        messages.info(
            request,
            "You still hold this sighting: decide on it, or skip it (s) to give it back first.",
        )
    return redirect("review-sighting", uuid=observation.uuid)


def _bulk_message(verb: str, items: list[tuple[Observation, str]]) -> str:
    named = ", ".join(f"{_short(observation)} ({detail})" for observation, detail in items[:10])
    more = f" and {len(items) - 10} more" if len(items) > 10 else ""
    count = "1 sighting" if len(items) == 1 else f"{len(items)} sightings"
    return f"{verb} {count}: {named}{more}."


BULK_EXPLANATIONS = {
    "taxon_missing": "the AI made no suggestion to confirm",
}


@curator_required
@require_POST
def bulk_decide(request: HttpRequest) -> HttpResponse:
    """Confirm the AI's top-1 or reject (one reason) for the selected rows; say which failed."""
    back = _back_to_queue(request)
    form = BulkDecisionForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(back)
    data = form.cleaned_data
    confirm = data["action"] == "confirm"
    selected = data["selected"]
    found = {
        str(observation.uuid): observation
        for observation in review_queue(curator=request.user).filter(uuid__in=selected)
    }
    results = review_bulk_decide(
        curator=request.user,
        observations=[found[reference] for reference in selected if reference in found],
        decision=Review.Decision.CONFIRM if confirm else Review.Decision.REJECT,
        reject_reason="" if confirm else data["reject_reason"],
    )
    decided, pending, failed = [], [], []
    for observation, error in results:
        if error is not None:
            failed.append((observation, BULK_EXPLANATIONS.get(error.code, error.detail)))
            continue
        observation.refresh_from_db(fields=["status"])
        detail = _taxon_text(observation.ai_taxon) if confirm else "rejected"
        if observation.status in DECIDED_STATUSES:
            decided.append((observation, detail))
        else:
            pending.append((observation, detail))
    missing = [reference for reference in selected if reference not in found]
    verb = "Confirmed" if confirm else "Rejected"
    if decided:
        messages.success(request, _bulk_message(verb, decided))
    if pending:
        messages.info(
            request,
            _bulk_message("Your review is recorded; another curator's is needed for", pending),
        )
    if failed:
        messages.error(request, _bulk_message(f"Not {verb.lower()}", failed))
    if missing:
        count = "1 selected sighting is" if len(missing) == 1 else f"{len(missing)} are"
        messages.error(
            request,
            f"{count} no longer waiting in your queue (decided, or claimed by another curator): "
            + ", ".join(reference[:8] for reference in missing[:10])
            + ".",
        )
    return redirect(back)


# --- one sighting -----------------------------------------------------------------------------


def _observation_or_404(uuid) -> Observation:
    observation = observation_get(uuid=uuid)
    if observation is None:
        raise Http404("No sighting with this reference.")
    return observation


def _history_row(review: Review, zone: ZoneInfo) -> dict:
    snapshot = review.ai_snapshot or {}
    top = (snapshot.get("top5") or [None])[0]
    if top:
        said = top.get("taxon") or f"raw label: {top.get('label', '')}"
        said = f"{said} {_percent_text(top.get('probability'))}"
    elif snapshot.get("ai_taxon"):
        said = f"{snapshot['ai_taxon']} {_percent_text(snapshot.get('ai_score'))}"
    else:
        said = "no suggestion"
    return {
        "review": review,
        "when": _local_text(review.created_at, zone),
        "ai_said": said.strip(),
        "ai_version": snapshot.get("version") or "",
    }


def _claim_summary(observation: Observation, curator) -> dict:
    now = timezone.now()
    active = (
        observation.status == Observation.Status.IN_REVIEW
        and observation.claimed_by_id is not None
        and observation.claim_expires_at is not None
        and observation.claim_expires_at > now
    )
    return {
        "active": active,
        "mine": active and observation.claimed_by_id == curator.pk,
        "by": observation.claimed_by if active else None,
        "expires_at": observation.claim_expires_at if active else None,
        "expires_text": _local_text(observation.claim_expires_at, _zone(observation))
        if active
        else "",
        "expired": observation.status == Observation.Status.IN_REVIEW and not active,
    }


def _render_review(
    request: HttpRequest, observation: Observation, form: DecisionForm, *, status: int = 200
) -> HttpResponse:
    curator = request.user
    zone = _zone(observation)
    photos = list(observation.photos.all())
    suggestions = _suggestions(observation)
    rows = ai_predictions(observation)
    nearby = nearby_confirmed(observation, radius_m=NEARBY_RADIUS_M)
    threshold = observation.campaign.confidence_threshold
    top = suggestions[0] if suggestions else None
    gallery = []
    for index, photo in enumerate(photos):
        own = ai_predictions(observation, photo=photo)
        gallery.append(
            {
                "photo": photo,
                "number": index + 1,
                "top": own[0] if own else None,
                "top_percent": _percent_text(own[0].probability) if own else "",
            }
        )
    context = {
        "observation": observation,
        "gallery": gallery,
        "suggestions": suggestions,
        "model": rows[0].version if rows else None,
        "model_tta": rows[0].tta if rows else "",
        "confident": bool(top and top["probability"] is not None)
        and top["probability"] >= threshold,
        "threshold_percent": round(threshold * 100),
        "uncertainty": _uncertainty(observation.ai_entropy, len(suggestions)),
        "form": form,
        "taxa": campaign_taxa(observation.campaign),
        "claim": _claim_summary(observation, curator),
        "lead": is_lead(curator, observation.campaign),
        "decided": observation.status in DECIDED_STATUSES,
        "history": [_history_row(review, zone) for review in review_history(observation)],
        "duplicates": list(observation.possible_duplicates.order_by("received_at")),
        "nearby": [
            {"observation": other, "distance": _distance_text(other.distance_m)} for other in nearby
        ],
        "coordinates": f"{observation.latitude:.5f}, {observation.longitude:.5f}",
        "observed_text": _local_text(observation.observed_at, zone),
        "observed_local": observation.observed_at.astimezone(zone),
        "received_text": _local_text(observation.received_at, zone),
        "zone_name": str(zone),
        "filters": _saved_filters(request),
        "queue_url": _queue_url(_saved_filters(request)),
        "shortcuts": SHORTCUTS,
        "review_config": {
            "position": {
                "latitude": observation.latitude,
                "longitude": observation.longitude,
                "accuracy_m": observation.accuracy_m,
            },
            "radius_m": NEARBY_RADIUS_M,
            "nearby": [
                {
                    "latitude": other.latitude,
                    "longitude": other.longitude,
                    "name": other.final_taxon.display_name if other.final_taxon else "confirmed",
                    "distance": _distance_text(other.distance_m),
                    "url": reverse("review-sighting", kwargs={"uuid": other.uuid}),
                }
                for other in nearby
            ],
        },
    }
    return render(request, "review/sighting.html", context, status=status)


@curator_required
@require_GET
def sighting(request: HttpRequest, uuid) -> HttpResponse:
    """Everything a curator needs to decide on one sighting, and the decision form."""
    observation = _observation_or_404(uuid)
    form = DecisionForm(campaign=observation.campaign, suggestions=_suggestions(observation))
    return _render_review(request, observation, form)


def _decided_message(result, decision: str, taxon: Taxon | None) -> tuple[Callable, str]:
    observation = result.observation
    reference = _short(observation)
    if observation.status == Observation.Status.CONFLICT:
        return messages.warning, f"{reference}: curators disagree; a lead curator will decide."
    if observation.status not in DECIDED_STATUSES:
        return (
            messages.info,
            f"{reference}: your review is recorded; another curator's review is needed.",
        )
    if observation.status == Observation.Status.CONFIRMED:
        text = f"{reference} confirmed as {_taxon_text(taxon)}."
        alerts = result.review.alerts.count()
        if alerts:
            text += f" Park managers alerted ({alerts} message{'s' if alerts != 1 else ''})."
        return messages.success, text
    return messages.success, f"{reference}: {observation.get_status_display()}."


@curator_required
@require_POST
def decide(request: HttpRequest, uuid) -> HttpResponse:
    """Record the decision, then go straight on to the next sighting (or the empty queue)."""
    observation = _observation_or_404(uuid)
    form = DecisionForm(
        request.POST, campaign=observation.campaign, suggestions=_suggestions(observation)
    )
    if not form.is_valid():
        return _render_review(request, observation, form, status=400)
    data = form.cleaned_data
    try:
        result = review_decide(
            observation=observation,
            curator=request.user,
            decision=data["decision"],
            taxon=data["resolved_taxon"],
            reject_reason=data["reject_reason"],
            comment=data["comment"],
            message_to_observer=data["message_to_observer"],
        )
    except ParkWatchError as error:
        if error.field in ("taxon", "reject_reason", "message_to_observer"):
            form.add_error(error.field, error.detail)
        else:
            messages.error(request, error.detail)
        observation = _observation_or_404(uuid)  # as it is now (another curator's claim...)
        return _render_review(request, observation, form, status=error.status_code)
    notify, text = _decided_message(result, data["decision"], data["resolved_taxon"])
    notify(request, text)
    return _next_or_empty_queue(request)


def _next_or_empty_queue(request: HttpRequest) -> HttpResponse:
    filters = _saved_filters(request)
    try:
        following = review_claim_next(curator=request.user, filters=_next_filters(request))
    except ParkWatchError as error:
        messages.error(request, error.detail)
        following = None
    if following is None:
        messages.info(request, "Queue empty for your filters." if filters else "Queue empty.")
        return redirect(_queue_url(filters))
    return redirect("review-sighting", uuid=following.uuid)


@curator_required
@require_POST
def release(request: HttpRequest, uuid) -> HttpResponse:
    """Give the sighting back to the queue (skip it) and go on to the next one."""
    observation = _observation_or_404(uuid)
    try:
        review_release(curator=request.user, observation=observation)
    except ParkWatchError as error:
        messages.error(request, error.detail)
        return redirect("review-sighting", uuid=observation.uuid)
    skipped = [
        value
        for value in request.session.get(SESSION_SKIPPED) or []
        if value != str(observation.uuid)
    ]
    request.session[SESSION_SKIPPED] = (skipped + [str(observation.uuid)])[-200:]
    messages.info(request, f"{_short(observation)} skipped: it is back in the queue for others.")
    return _next_or_empty_queue(request)


# --- control follow-up ------------------------------------------------------------------------


def _control_steps(current: str) -> list[dict]:
    position = CONTROL_ORDER.index(current) if current in CONTROL_ORDER else -1
    labels = dict(Observation.ControlStatus.choices)
    return [
        {
            "value": value,
            "label": labels[value],
            "state": "done" if index < position else "current" if index == position else "todo",
        }
        for index, value in enumerate(CONTROL_ORDER)
    ]


def _render_control(
    request: HttpRequest,
    *,
    show: str,
    page_number,
    failed: tuple[str, ControlAdvanceForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    open_only = show != "all"
    page = Paginator(control_cases(open_only=open_only), CONTROL_PER_PAGE).get_page(page_number)
    cases = []
    for observation in page.object_list:
        form = ControlAdvanceForm(observation=observation)
        if failed and failed[0] == str(observation.uuid):
            form = failed[1]
        photos = list(observation.photos.all())
        zone = _zone(observation)
        cases.append(
            {
                "observation": observation,
                "photo": photos[0] if photos else None,
                "events": [
                    {"event": event, "when": _local_text(event.created_at, zone)}
                    for event in observation.control_events.all()
                ],
                "steps": _control_steps(observation.control_status),
                "form": form,
                "observed_text": _local_text(observation.observed_at, zone),
                "decided_text": _local_text(observation.decided_at, zone)
                if observation.decided_at
                else "",
            }
        )
    context = {
        "show": "all" if not open_only else "open",
        "page_obj": page,
        "cases": cases,
        "counts": {
            "open": control_cases(open_only=True).count(),
            "all": control_cases(open_only=False).count(),
        },
    }
    return render(request, "review/control.html", context, status=status)


@curator_required
@require_GET
def control(request: HttpRequest) -> HttpResponse:
    """Confirmed invasive sightings under follow-up: status, history, and the next step."""
    return _render_control(
        request, show=request.GET.get("show", "open"), page_number=request.GET.get("page")
    )


@curator_required
@require_POST
def control_step(request: HttpRequest, uuid) -> HttpResponse:
    """Record one step of a follow-up (`control_advance`); a refused step is shown at its case."""
    observation = observation_queryset().filter(uuid=uuid).first()
    if observation is None:
        raise Http404("No sighting with this reference.")
    show = "all" if request.POST.get("show") == "all" else "open"
    page_number = request.POST.get("page") or 1
    form = ControlAdvanceForm(request.POST, observation=observation)
    if form.is_valid():
        try:
            event = control_advance(
                observation=observation,
                user=request.user,
                to_status=form.cleaned_data["to_status"],
                note=form.cleaned_data["note"],
            )
        except ParkWatchError as error:
            if error.field in form.fields:
                form.add_error(error.field, error.detail)
            messages.error(request, f"{_short(observation)}: {error.detail}")
            return _render_control(
                request,
                show=show,
                page_number=page_number,
                failed=(str(observation.uuid), form),
                status=error.status_code,
            )
        messages.success(
            request,
            f"{_short(observation)}: {_taxon_text(observation.final_taxon)} is now "
            f"{event.get_to_status_display().lower()}.",
        )
        query = {"show": show} if show == "all" else {}
        if str(page_number) != "1":
            query["page"] = page_number
        url = reverse("control-cases") + (f"?{urlencode(query)}" if query else "")
        return redirect(f"{url}#case-{observation.uuid}")
    messages.error(request, f"{_short(observation)}: the step was not recorded; see the form.")
    return _render_control(
        request,
        show=show,
        page_number=page_number,
        failed=(str(observation.uuid), form),
        status=400,
    )
