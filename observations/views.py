"""The visitor's pages: about + upload, one sighting (and its status as JSON), my sightings, sign-up.

Thin views: a form, one service or selector call, a template. Positions reach a page only
through `position_for`, so a sensitive sighting is generalised for everyone who may not see it.
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.models import Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from observations.errors import Conflict, ParkWatchError
from observations.forms import SightingForm, SignupForm
from observations.geoprivacy import Position, is_sensitive, position_for
from observations.models import Campaign, Observation, Taxon
from observations.requests import remember_own_sighting, viewer_from_request
from observations.roles import VISITOR_GROUP
from observations.selectors import (
    ai_predictions,
    campaign_for_upload,
    observation_get,
    observation_list,
)
from observations.services.submission import observation_submit
from observations.throttling import UploadRateThrottle

SIGHTINGS_PER_PAGE = 20

STATUS_SENTENCES = {
    Observation.Status.RECEIVED: "The image classifier will look at the photos in a moment.",
    Observation.Status.CLASSIFIED: "The classifier has made its suggestion; an expert will review the sighting.",
    Observation.Status.CLASSIFICATION_FAILED: (
        "The classifier could not process the photos yet; it will try again. An expert will still review them."
    ),
    Observation.Status.IN_REVIEW: "An expert is reviewing this sighting now.",
    Observation.Status.CONFIRMED: "An expert confirmed the identification. Thank you!",
    Observation.Status.REJECTED: "An expert rejected this sighting: it is not a species this campaign records.",
    Observation.Status.UNIDENTIFIABLE: "An expert could not identify the organism from these photos.",
    Observation.Status.NEEDS_INFO: "An expert needs more information (for example a closer photo) to decide.",
}
DECIDED = {
    Observation.Status.CONFIRMED,
    Observation.Status.REJECTED,
    Observation.Status.UNIDENTIFIABLE,
    Observation.Status.NEEDS_INFO,
}
# Form fields a ParkWatchError may name; any other field (client_uuid, campaign...) is shown at the top.
VISIBLE_FIELDS = {
    "photos",
    "latitude",
    "longitude",
    "accuracy_m",
    "observed_at",
    "guess",
    "notes",
    "licence",
    "email",
}
FIELD_ALIASES = {"observer_email": "email", "position_source": "latitude"}


# --- upload -------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """About ParkWatch, and the form that sends a sighting (multipart POST to this page)."""
    campaign = campaign_for_upload()
    may_upload = request.user.is_authenticated or settings.ALLOW_ANONYMOUS_UPLOADS
    if request.method == "POST":
        if not may_upload:
            return redirect_to_login(request.get_full_path())
        return _submit(request, campaign)
    form = SightingForm(campaign=campaign, user=request.user) if may_upload else None
    return _render_home(request, form, campaign, may_upload=may_upload)


def _submit(request: HttpRequest, campaign: Campaign | None) -> HttpResponse:
    form = SightingForm(request.POST, request.FILES, campaign=campaign, user=request.user)
    throttle = UploadRateThrottle()
    if not throttle.allow_request(request, None):
        wait = throttle.wait() or 60
        form.add_error(
            None,
            f"You have sent many sightings in a short time. Please try again in {_minutes(wait)}.",
        )
        return _render_home(request, form, campaign, status=429, nothing_stored=True)
    if not form.is_valid():
        return _render_home(request, form, campaign, status=400, nothing_stored=True)

    data = form.cleaned_data
    try:
        result = observation_submit(
            photos=data["photos"],
            observer=request.user,
            observer_email=data.get("email") or "",
            campaign=campaign,
            latitude=data["latitude"],
            longitude=data["longitude"],
            accuracy_m=data["accuracy_m"],
            position_source=data["position_source"] or None,
            observed_at=data["observed_at"],
            notes=data["notes"],
            guess=data["guess"],
            licence=data["licence"],
            client_uuid=data["client_uuid"],
        )
    except ParkWatchError as error:
        _add_error(form, error.field, error.detail)
        return _render_home(
            request,
            form,
            campaign,
            status=error.status_code,
            nothing_stored=not isinstance(error, Conflict),
        )
    except (
        ValidationError
    ) as error:  # a model validator the service let through: still the user's input
        for field, problems in getattr(error, "message_dict", {None: error.messages}).items():
            for problem in problems:
                _add_error(form, field, problem)
        return _render_home(request, form, campaign, status=400, nothing_stored=True)

    observation = result.observation
    remember_own_sighting(request, observation)
    if result.created:
        messages.success(request, "Thank you! Your sighting was received.")
    else:
        messages.info(request, "This sighting had already been received; here it is.")
    return redirect(observation.get_absolute_url())


def _add_error(form: SightingForm, field: str | None, message: str) -> None:
    field = FIELD_ALIASES.get(field, field)
    if field not in VISIBLE_FIELDS or field not in form.fields:
        field = None
    form.add_error(field, message)


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _render_home(
    request: HttpRequest,
    form: SightingForm | None,
    campaign: Campaign | None,
    *,
    may_upload: bool = True,
    status: int = 200,
    nothing_stored: bool = False,
) -> HttpResponse:
    parks = list(campaign.parks.all()) if campaign else []
    context = {
        "form": form,
        "campaign": campaign,
        "may_upload": may_upload,
        "nothing_stored": nothing_stored,
        "map_config": {
            "parks": [{"name": park.name, "boundary": park.boundary} for park in parks],
            "maxPhotos": settings.PHOTO_MAX_COUNT,
            "maxBytes": settings.PHOTO_MAX_BYTES,
        },
    }
    return render(request, "observations/home.html", context, status=status)


# --- one sighting -------------------------------------------------------------------------------


def _sighting_or_404(uuid) -> Observation:
    observation = observation_get(uuid=uuid)
    if observation is None:
        raise Http404("No sighting with this link.")
    return observation


def _local_zone(observation: Observation) -> ZoneInfo:
    name = observation.park.timezone if observation.park else settings.PARKWATCH_DEFAULT_TIMEZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.PARKWATCH_DEFAULT_TIMEZONE)


def _utc_offset(moment: datetime) -> str:
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def _local_text(moment: datetime) -> str:
    """'1 June 2026, 10:30 (UTC+02:00)': the wall-clock time where it happened, and its offset."""
    return f"{moment.day} {moment:%B %Y, %H:%M} ({_utc_offset(moment)})"


def _taxon_json(taxon: Taxon | None) -> dict | None:
    if taxon is None:
        return None
    return {
        "scientific_name": taxon.scientific_name,
        "common_name": taxon.common_name,
        "display_name": taxon.display_name,
        "is_invasive": taxon.is_invasive,
    }


def _ai_summary(observation: Observation) -> dict:
    has_suggestion = observation.ai_taxon_id is not None or bool(observation.ai_label)
    threshold = observation.campaign.confidence_threshold if observation.campaign_id else 0.5
    score = observation.ai_score
    if observation.status == Observation.Status.RECEIVED and not has_suggestion:
        state = "waiting"
    elif has_suggestion:
        state = "suggested"
    elif observation.status == Observation.Status.CLASSIFICATION_FAILED:
        state = "failed"
    else:
        state = "none"
    return {
        "state": state,
        "taxon": _taxon_json(observation.ai_taxon),
        "label": observation.ai_label,
        "name": observation.ai_taxon.display_name if observation.ai_taxon else observation.ai_label,
        "score": score,
        "percent": round(score * 100) if score is not None else None,
        "confident": score is not None and score >= threshold,
        "alternatives": [
            {
                "name": row.taxon.display_name if row.taxon else row.label,
                "percent": round(row.probability * 100),
            }
            for row in ai_predictions(observation)
            if row.rank > 1
        ]
        if has_suggestion
        else [],
    }


def _verdict_summary(observation: Observation) -> dict:
    decided = observation.status in DECIDED
    confirmed = observation.status == Observation.Status.CONFIRMED
    taxon = observation.final_taxon if confirmed else None
    return {
        "decided": decided,
        "status": observation.status,
        "status_display": observation.get_status_display(),
        "taxon": _taxon_json(taxon),
        "name": taxon.display_name if taxon else "",
        "sentence": STATUS_SENTENCES[observation.status]
        if decided
        else _pending_verdict(observation),
    }


def _pending_verdict(observation: Observation) -> str:
    if observation.status == Observation.Status.IN_REVIEW:
        return "An expert is looking at it now."
    return "Not reviewed yet. An expert will look at it after the classifier."


def _position_json(position: Position) -> dict:
    return {
        "latitude": position.latitude,
        "longitude": position.longitude,
        "accuracy_m": position.accuracy_m,
        "generalised": position.generalised,
        "note": position.note,
        "text": _coordinates_text(position),
    }


def _coordinates_text(position: Position) -> str:
    digits = 2 if position.generalised else 5
    return f"{position.latitude:.{digits}f}, {position.longitude:.{digits}f}"


def _status_payload(observation: Observation, position: Position) -> dict:
    return {
        "uuid": str(observation.uuid),
        "status": observation.status,
        "status_display": observation.get_status_display(),
        "status_sentence": STATUS_SENTENCES[observation.status],
        "ai": _ai_summary(observation),
        "verdict": _verdict_summary(observation),
        "position": _position_json(position),
    }


@require_GET
def sighting_detail(request: HttpRequest, uuid) -> HttpResponse:
    """Anyone with the link sees the sighting; its position as `position_for` allows."""
    observation = _sighting_or_404(uuid)
    viewer = viewer_from_request(request)
    position = position_for(observation, viewer)
    zone = _local_zone(observation)
    local_time = observation.observed_at.astimezone(zone)
    owns = viewer.owns(observation)
    context = {
        "observation": observation,
        "photos": list(observation.photos.all()),
        "position": position,
        "coordinates": _coordinates_text(position),
        "owns": owns,
        "sensitive_note": owns and not position.generalised and is_sensitive(observation),
        "observed_local": local_time,
        "observed_text": _local_text(local_time),
        "received_text": _local_text(observation.received_at.astimezone(zone)),
        "zone_name": str(zone),
        "status_sentence": STATUS_SENTENCES[observation.status],
        "ai": _ai_summary(observation),
        "verdict": _verdict_summary(observation),
        "page_config": {
            "statusUrl": reverse("sighting-status", kwargs={"uuid": observation.uuid}),
            "status": observation.status,
            "position": _position_json(position),
        },
    }
    return render(request, "observations/sighting_detail.html", context)


@never_cache
@require_GET
def sighting_status(request: HttpRequest, uuid) -> JsonResponse:
    """What the sighting page polls while the classifier works: status, AI, verdict, position."""
    observation = _sighting_or_404(uuid)
    position = position_for(observation, viewer_from_request(request))
    return JsonResponse(_status_payload(observation, position))


# --- my sightings ------------------------------------------------------------------------------


@require_GET
def my_sightings(request: HttpRequest) -> HttpResponse:
    """The visitor's own sightings: signed in, plus those this browser sent anonymously."""
    viewer = viewer_from_request(request)
    paginator = Paginator(observation_list(viewer=viewer, mine=True), SIGHTINGS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    return render(
        request, "observations/my_sightings.html", {"page_obj": page, "sightings": page.object_list}
    )


# --- accounts ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """A visitor account: signed in at once, in the "visitor" group."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        next_url = ""
    if request.user.is_authenticated:
        return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        user.groups.add(Group.objects.get_or_create(name=VISITOR_GROUP)[0])
        login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
        messages.success(request, f"Welcome, {user.get_username()}! Your account is ready.")
        return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "registration/signup.html", {"form": form, "next": next_url}, status=status
    )
