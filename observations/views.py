"""The visitor's pages: about + upload, one sighting (and its status as JSON), my sightings, sign-up.

Thin views: a form, one service or selector call, a template. Positions reach a page only
through `position_for`, so a sensitive sighting is generalised for everyone who may not see it.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import requires_csrf_token
from django.views.decorators.http import require_GET, require_http_methods

from observations.errors import Conflict, ParkWatchError
from observations.forms import SightingForm, SignupForm
from observations.geoprivacy import Position, is_sensitive, position_for
from observations.models import Campaign, Observation, Taxon
from observations.requests import remember_own_sighting, viewer_from_request
from observations.roles import VISITOR_GROUP, is_curator
from observations.selectors import (
    ai_predictions,
    campaign_for_upload,
    observation_get,
    observation_list,
)
from observations.services.adoption import observations_adopt
from observations.services.submission import observation_submit
from observations.throttling import UploadRateThrottle
from observations.timezones import local_text, park_zone

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
    "credit_name",
}
FIELD_ALIASES = {
    "observer_email": "email",
    "position_source": "latitude",
    "observer_credit": "credit_name",
}


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
            observer_credit=data.get("credit_name") or "",
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


def _taxon_json(taxon: Taxon | None) -> dict | None:
    if taxon is None:
        return None
    return {
        "scientific_name": taxon.scientific_name,
        "common_name": taxon.common_name,
        "display_name": taxon.display_name,
        "is_invasive": taxon.is_invasive,
    }


NOT_SURE = "Not sure"
DEMO_WARNING = "Demo model, not trained on real photos: its suggestions are meaningless."


def _percent_text(probability: float | None) -> str:
    if probability is None:
        return ""
    if 0 < probability < 0.005:
        return "<1%"
    return f"{round(probability * 100)}%"


def _prediction_json(
    *, taxon: Taxon | None, label: str, probability: float | None, rank: int = 1
) -> dict:
    """One line of the top 5, as the page and sighting.js both draw it."""
    return {
        "rank": rank,
        "name": taxon.display_name if taxon else f"raw label: {label}",
        "common_name": taxon.common_name if taxon else "",
        "scientific_name": taxon.scientific_name if taxon else "",
        "raw_label": "" if taxon else label,
        "is_invasive": bool(taxon and taxon.is_invasive),
        "probability": probability,
        "percent": round(probability * 100) if probability is not None else None,
        "percent_text": _percent_text(probability),
        # A string, so that no locale turns the CSS width into "34,5%".
        "width": f"{min(max(probability or 0.0, 0.0), 1.0) * 100:.1f}",
    }


def _row_json(row) -> dict:
    return _prediction_json(
        taxon=row.taxon, label=row.label, probability=row.probability, rank=row.rank
    )


def _model_json(row) -> dict:
    version = row.version
    # The TTA choices' labels, read through the model's metadata (no classifier import).
    tta_labels = dict(version._meta.get_field("tta").choices or [])
    return {
        "label": version.label,
        "is_demo": version.is_demo,
        "tta": row.tta,
        "tta_display": str(tta_labels.get(row.tta, row.tta or "none")),
    }


def _headline(top: dict, *, confident: bool) -> str:
    """The one line a visitor reads first; it never names a taxon confidently when unsure."""
    if confident:
        return f"{top['name']} ({top['percent_text']})" if top["percent_text"] else top["name"]
    maybe = top["scientific_name"] or f"raw label: {top['raw_label']}"
    return f"{NOT_SURE} — maybe {maybe}" + (
        f" ({top['percent_text']})" if top["percent_text"] else ""
    )


def _ai_summary(observation: Observation, *, curator: bool = False) -> dict:
    """The AI suggestion of a sighting: state, honest headline, top 5 bars, model, failure.

    `status_detail` (why classification failed) is for curators only.
    """
    rows = ai_predictions(observation)
    has_suggestion = bool(rows) or observation.ai_taxon_id is not None or bool(observation.ai_label)
    threshold = observation.campaign.confidence_threshold if observation.campaign_id else 0.5
    if observation.status == Observation.Status.CLASSIFICATION_FAILED:
        state = "failed"
    elif has_suggestion:
        state = "suggested"
    elif observation.status == Observation.Status.RECEIVED:
        state = "waiting"
    else:
        state = "none"

    if rows:
        predictions = [_row_json(row) for row in rows]
        model = _model_json(rows[0])
    elif has_suggestion:  # AI fields without prediction rows (written before rows existed)
        predictions = [
            _prediction_json(
                taxon=observation.ai_taxon,
                label=observation.ai_label,
                probability=observation.ai_score,
            )
        ]
        model = None
    else:
        predictions, model = [], None
    top = predictions[0] if predictions else None
    score = top["probability"] if top else observation.ai_score
    confident = score is not None and score >= threshold
    show_reason = curator and state in ("failed", "waiting") and bool(observation.status_detail)
    return {
        "state": state,
        "taxon": _taxon_json(observation.ai_taxon),
        "label": observation.ai_label,
        "name": top["name"] if top else "",
        "score": score,
        "percent": round(score * 100) if score is not None else None,
        "confident": confident,
        "threshold_percent": round(threshold * 100),
        "headline": _headline(top, confident=confident) if top else "",
        "top": top,
        "predictions": predictions if state == "suggested" else [],
        "model": model,
        "demo_warning": DEMO_WARNING if model and model["is_demo"] else "",
        "reason": observation.status_detail if show_reason else "",
    }


def _photo_tops(observation: Observation, photos: list) -> list[dict]:
    """Each photo's own top-1 (for curators): which photo the classifier liked, and which not."""
    tops = []
    for photo in photos:
        rows = ai_predictions(observation, photo=photo)
        tops.append({"id": photo.pk, "top": _row_json(rows[0]) if rows else None})
    return tops


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


def _status_payload(observation: Observation, position: Position, *, curator: bool) -> dict:
    payload = {
        "uuid": str(observation.uuid),
        "status": observation.status,
        "status_display": observation.get_status_display(),
        "status_sentence": STATUS_SENTENCES[observation.status],
        "ai": _ai_summary(observation, curator=curator),
        "verdict": _verdict_summary(observation),
        "position": _position_json(position),
    }
    if curator:
        payload["photos"] = _photo_tops(observation, list(observation.photos.all()))
    return payload


@require_GET
def sighting_detail(request: HttpRequest, uuid) -> HttpResponse:
    """Anyone with the link sees the sighting; its position as `position_for` allows."""
    observation = _sighting_or_404(uuid)
    viewer = viewer_from_request(request)
    position = position_for(observation, viewer)
    zone = park_zone(observation.park)
    local_time = observation.observed_at.astimezone(zone)
    owns = viewer.owns(observation)
    curator = is_curator(request.user)
    photos = list(observation.photos.all())
    ai = _ai_summary(observation, curator=curator)
    context = {
        "observation": observation,
        "photos": photos,
        "gallery": [
            {"photo": photo, "ai": entry["top"]}
            for photo, entry in zip(photos, _photo_tops(observation, photos), strict=True)
        ]
        if curator
        else [{"photo": photo, "ai": None} for photo in photos],
        "photo_ai": curator,
        "position": position,
        "coordinates": _coordinates_text(position),
        "owns": owns,
        "sensitive_note": owns and not position.generalised and is_sensitive(observation),
        "observed_local": local_time,
        "observed_text": local_text(local_time, zone),
        "received_text": local_text(observation.received_at, zone),
        "zone_name": str(zone),
        "status_sentence": STATUS_SENTENCES[observation.status],
        "ai": ai,
        "verdict": _verdict_summary(observation),
        "page_config": {
            "statusUrl": reverse("sighting-status", kwargs={"uuid": observation.uuid}),
            "status": observation.status,
            "ai": ai,  # what the page shows now: the script redraws only when it changes
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
    return JsonResponse(_status_payload(observation, position, curator=is_curator(request.user)))


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
        _adopt_own_sightings(request, user)
        return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "registration/signup.html", {"form": form, "next": next_url}, status=status
    )


class LoginView(auth_views.LoginView):
    """Django's sign-in page; the sightings this browser sent anonymously join the account."""

    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        _adopt_own_sightings(self.request, form.get_user())
        return response


def _adopt_own_sightings(request: HttpRequest, user) -> int:
    """Sightings sent from this session before signing in become the account's.

    The session keeps its list, so the pages go on showing them whoever owns them now.
    """
    count = observations_adopt(user=user, uuids=viewer_from_request(request).own_uuids)
    if count:
        sightings = "1 sighting" if count == 1 else f"{count} sightings"
        messages.info(
            request,
            f"{sightings} sent from this browser {'is' if count == 1 else 'are'} now in your account.",
        )
    return count


# --- errors (handler404 / handler500 in webapp.urls) --------------------------------------------

API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Pages get the HTML 404 page; anything under /api/ the API's JSON error body."""
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    if exception is None or isinstance(exception, Resolver404) or not exception.args:
        detail = f"No API endpoint at {request.path}."
    else:
        detail = str(exception.args[0])
    return JsonResponse({"error": "not_found", "detail": detail}, status=404)


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    if not _is_api(request):
        return defaults.server_error(request)
    return JsonResponse(
        {
            "error": "server_error",
            "detail": "ParkWatch could not answer this request; please try again in a moment.",
        },
        status=500,
    )
