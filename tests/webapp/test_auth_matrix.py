"""Who may reach what: every route of the site, every method, every role.

The routes come from the URL resolver, so a new endpoint cannot be forgotten: a route (or a
method of it) without a row in ACCESS below fails the test until someone decides who may use it.
For each role (anonymous, the observer, another visitor, a curator of the campaign, a curator of
another campaign, an admin) a refused request must be refused the way the route's kind refuses
(API: 401 anonymous, 403 signed in; pages: the sign-in page, then 403), and an allowed one must
get past the checks (no 401/403, no 5xx). Methods a route does not list answer 405.

What others may see of a sighting they reach (positions, names, curation) is checked below the
matrix, beyond what tests/observations/test_no_position_leaks.py sweeps.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token

from classifier.engine.preprocessing import PreprocessSpec
from classifier.models import DatasetSnapshot, TrainingRun
from classifier.services.registry import version_activate, version_register
from observations.models import Observation
from observations.roles import CURATOR_GROUP
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from tests.conftest import ORDESA
from tests.factories import CampaignFactory, UserFactory
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

ANYONE, CURATORS, ADMINS = "anyone", "curators", "admins"
ROLES = ["anonymous", "observer", "other visitor", "curator", "other campaign's curator", "admin"]
ALLOWED = {
    ANYONE: set(ROLES),
    CURATORS: {"curator", "other campaign's curator", "admin"},
    ADMINS: {"admin"},
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# Plain views that answer every method alike: probes, the development media server, and the
# sign-in page (it sends a signed-in user on before looking at the method).
ANY_METHOD = {"healthz", "readyz", "^media/(?P<path>.*)$", "accounts/login/"}

# Every route but Django's own admin site (it has its own staff check), by its pattern.
ACCESS: dict[str, dict[str, str]] = {
    # -- the API ----------------------------------------------------------------------------
    "api/schema/": {"GET": ANYONE},
    "api/docs/": {"GET": ANYONE},
    "api/redoc/": {"GET": ANYONE},
    "api/v1/observations/": {"GET": ANYONE, "POST": ANYONE},
    "api/v1/observations/<str:uuid>/": {"GET": ANYONE},
    "api/v1/identify/": {"POST": ANYONE},
    "api/v1/review/queue/": {"GET": CURATORS},
    "api/v1/review/next/": {"POST": CURATORS},
    "api/v1/review/bulk/": {"POST": CURATORS},
    "api/v1/observations/<uuid:uuid>/reviews/": {"GET": CURATORS, "POST": CURATORS},
    "api/v1/observations/<uuid:uuid>/release/": {"POST": CURATORS},
    "api/v1/control/": {"GET": CURATORS},
    "api/v1/observations/<uuid:uuid>/control/": {"POST": CURATORS},
    "api/v1/classifiers/": {"GET": CURATORS},
    "api/v1/classifiers/<int:pk>/": {"GET": CURATORS},
    "api/v1/classifiers/<int:pk>/activate/": {"POST": ADMINS},
    "api/v1/classifiers/rollback/": {"POST": ADMINS},
    "api/v1/exports/csv/": {"GET": ADMINS},
    "api/v1/exports/geojson/": {"GET": ADMINS},
    "api/v1/exports/dwca/": {"GET": ADMINS},
    "api/v1/datasets/": {"GET": ADMINS, "POST": ADMINS},
    "api/v1/training-runs/": {"GET": ADMINS, "POST": ADMINS},
    "api/v1/training-runs/<int:pk>/": {"GET": ADMINS},
    "api/v1/training-runs/<int:pk>/cancel/": {"POST": ADMINS},
    # -- pages --------------------------------------------------------------------------------
    "": {"GET": ANYONE, "POST": ANYONE},
    "healthz": {"GET": ANYONE},
    "readyz": {"GET": ANYONE},
    "sightings/": {"GET": ANYONE},
    "sightings/<uuid:uuid>/": {"GET": ANYONE},
    "sightings/<uuid:uuid>/status.json": {"GET": ANYONE},
    "accounts/signup/": {"GET": ANYONE, "POST": ANYONE},
    "accounts/login/": {"GET": ANYONE, "POST": ANYONE},
    "accounts/logout/": {"POST": ANYONE},
    "^media/(?P<path>.*)$": {"GET": ANYONE},
    "review/": {"GET": CURATORS},
    "review/next/": {"POST": CURATORS},
    "review/bulk/": {"POST": CURATORS},
    "review/control/": {"GET": CURATORS},
    "review/control/<uuid:uuid>/": {"POST": CURATORS},
    "review/<uuid:uuid>/": {"GET": CURATORS},
    "review/<uuid:uuid>/decide/": {"POST": CURATORS},
    "review/<uuid:uuid>/release/": {"POST": CURATORS},
    "dashboard/": {"GET": ADMINS},
    "dashboard/map.json": {"GET": ADMINS},
    "dashboard/classifiers/": {"GET": ADMINS},
    "dashboard/classifiers/rollback/": {"POST": ADMINS},
    "dashboard/classifiers/<int:pk>/promote/": {"POST": ADMINS},
    "dashboard/classifiers/<int:pk>/plots/<slug:kind>.png": {"GET": ADMINS},
    "dashboard/training/": {"GET": ADMINS},
    "dashboard/training/start/": {"POST": ADMINS},
    "dashboard/training/snapshots/": {"POST": ADMINS},
    "dashboard/training/<int:pk>/cancel/": {"POST": ADMINS},
    "dashboard/training/<int:pk>/progress.json": {"GET": ADMINS},
}


def site_routes() -> list[str]:
    """Every route pattern of the URL configuration, includes flattened, admin site left out."""

    def walk(patterns, prefix: str = ""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                yield route

    return [route for route in walk(get_resolver().url_patterns) if not route.startswith("admin/")]


def fill(route: str, values: dict[str, str]) -> str:
    if route.startswith("^"):  # the media route: a regular expression
        return "/" + route.strip("^$").replace("(?P<path>.*)", values["path"])
    for name, value in values.items():
        for converter in ("str", "uuid", "int", "slug", "path"):
            route = route.replace(f"<{converter}:{name}>", value)
    assert "<" not in route, f"No value for a parameter of {route}: teach fill()"
    return "/" + route


# -- the people and things -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(visitor, other_visitor, curator, admin_user, campaign):
    elsewhere = CampaignFactory(name="Conus of the Western Atlantic", slug="conus")
    other_curator = UserFactory(username="conus-curator", role=CURATOR_GROUP)
    elsewhere.curators.add(other_curator)
    campaign.curators.add(curator)
    return {
        "anonymous": None,
        "observer": visitor,
        "other visitor": other_visitor,
        "curator": curator,
        "other campaign's curator": other_curator,
        "admin": admin_user,
    }


def submit(observer, *, seed: int, **fields) -> Observation:
    return observation_submit(
        photos=[photo_upload(width=64, height=48, seed=seed)],
        observer=observer,
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        accuracy_m=3,
        observed_at=datetime(2026, 6, 1, 10, 30),
        **fields,
    ).observation


@pytest.fixture
def things(people, campaign, taxa, tmp_path):
    """A sighting of the observer's, a classifier version and a training run."""
    sighting = submit(people["observer"], seed=1)
    weights = tmp_path / "fake.keras"
    weights.write_bytes(b"not a real model")
    version = version_activate(
        version=version_register(
            name="Matrix model",
            campaign=campaign,
            backend="keras",
            weights_path=weights,
            labels=sorted(taxon.scientific_name for taxon in taxa),
            spec=PreprocessSpec.xception(32),
        )
    )
    snapshot = DatasetSnapshot.objects.create(campaign=campaign, version=1)
    run = TrainingRun.objects.create(campaign=campaign, snapshot=snapshot)
    return {"sighting": sighting, "version": version, "run": run}


def values_for(route: str, things: dict) -> dict[str, str]:
    pk = things["run"].pk if "training" in route else things["version"].pk
    return {
        "uuid": str(things["sighting"].uuid),
        "pk": str(pk),
        "kind": "curves",
        "path": things["sighting"].photos.first().image.name,
    }


def client_for(user, route: str) -> Client:
    """The API with a token (as apps use it), pages with a session (as browsers do)."""
    client = Client()
    if user is None:
        return client
    if route.startswith("api/"):
        token = Token.objects.get_or_create(user=user)[0]
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    else:
        client.force_login(user)
    return client


def refusal_problem(route: str, who: str, response) -> str | None:
    """None when the response refuses the way this kind of route refuses this client."""
    status = response.status_code
    if who != "anonymous":
        return None if status == 403 else f"expected 403, got {status}"
    if route.startswith("api/"):
        return None if status == 401 else f"expected 401, got {status}"
    to_login = status == 302 and response["Location"].startswith(reverse("login"))
    # Data a dashboard page fetches (JSON, PNG) is refused outright, never redirected.
    data = route.endswith((".json", ".png"))
    return None if (to_login or (data and status == 403)) else f"expected sign-in, got {status}"


def is_refusal(route: str, response) -> bool:
    status = response.status_code
    return status in (401, 403) or (
        status == 302 and response["Location"].startswith(reverse("login"))
    )


# -- the matrix ----------------------------------------------------------------------------------


def test_every_route_has_a_row_and_no_row_is_stale():
    routes = site_routes()

    missing = [route for route in routes if route not in ACCESS]
    stale = [route for route in ACCESS if route not in routes]

    assert not missing, f"Decide who may use these routes and add them to ACCESS: {missing}"
    assert not stale, f"These rows of ACCESS match no route any more: {stale}"


def test_each_role_reaches_exactly_what_its_row_allows(people, things):
    problems = []
    for route, methods in ACCESS.items():
        url = fill(route, values_for(route, things))
        for method, policy in methods.items():
            for who in ROLES:
                client = client_for(people[who], route)
                response = client.generic(method, url)
                where = f"{method} {url} as {who}"
                if response.status_code >= 500:
                    problems.append(f"{where}: {response.status_code}")
                elif who in ALLOWED[policy]:
                    if is_refusal(route, response):
                        problems.append(f"{where}: refused ({response.status_code}), but allowed")
                else:
                    problem = refusal_problem(route, who, response)
                    if problem:
                        problems.append(f"{where}: {problem}")

    assert not problems, "\n".join(problems)


def test_a_method_a_row_does_not_list_answers_405(people, things):
    problems = []
    for route, methods in ACCESS.items():
        if route in ANY_METHOD:
            continue
        url = fill(route, values_for(route, things))
        for method in METHODS:
            if method in methods:
                continue
            response = client_for(people["admin"], route).generic(method, url)
            if response.status_code != 405:
                problems.append(f"{method} {url}: {response.status_code}, not 405")

    assert not problems, "\n".join(problems)


# -- what others get of a sighting ------------------------------------------------------------


def api_get(user, url: str, **params):
    response = client_for(user, "api/").get(url, params)
    assert response.status_code == 200, response.content[:300]
    return response.json()


def test_no_filter_lists_another_visitors_unconfirmed_sightings(people, campaign, park, taxa):
    observer, curator = people["observer"], people["curator"]
    waiting = submit(observer, seed=11)
    asked = submit(observer, seed=12)
    review_decide(
        observation=asked,
        curator=curator,
        decision="needs_info",
        taxon=None,
        message_to_observer="Please add a photo of the leaves.",
    )
    confirmed = submit(observer, seed=13)
    review_decide(observation=confirmed, curator=curator, decision="confirm", taxon=taxa[0])
    private = {str(waiting.uuid), str(asked.uuid)}
    attempts = [
        {},
        {"mine": "1"},
        {"mine": "0", "limit": "200"},
        {"status": "received"},
        {"status": "needs_info"},
        {"campaign": campaign.slug, "park": park.slug},
    ]

    for who in ("other visitor", "anonymous"):
        for params in attempts:
            listed = {
                row["uuid"]
                for row in api_get(people[who], "/api/v1/observations/", **params)["results"]
            }
            assert not listed & private, (who, params)
            if not params.get("status") and params.get("mine") != "1":
                assert str(confirmed.uuid) in listed, (who, params)
        page = client_for(people[who], "sightings/").get("/sightings/")
        assert page.status_code == 200
        assert not any(uuid.encode() in page.content for uuid in private)
    mine = api_get(observer, "/api/v1/observations/", mine="1")["results"]
    assert private <= {row["uuid"] for row in mine}


def test_another_visitor_holding_the_uuid_gets_no_private_part_of_the_sighting(
    people, campaign, taxa
):
    observer, curator = people["observer"], people["curator"]
    orchid = taxa[3]  # sensitive: positions are generalised for others
    first = submit(observer, seed=21, guess=orchid)
    sighting = submit(observer, seed=21, guess=orchid)  # the same photo: a possible duplicate
    review_decide(
        observation=sighting,
        curator=curator,
        decision="needs_info",
        taxon=None,
        message_to_observer="Where exactly? Send the position again.",
    )
    url = f"/api/v1/observations/{sighting.uuid}/"

    own = api_get(observer, url)
    for who in ("other visitor", "anonymous"):
        seen = api_get(people[who], url)
        assert seen["position"]["generalised"] is True
        assert (seen["position"]["latitude"], seen["position"]["longitude"]) != (
            own["position"]["latitude"],
            own["position"]["longitude"],
        )
        assert seen["altitude_m"] is None
        assert seen["observer"] is None
        assert seen["message_to_observer"] == ""
        assert seen["curation"] is None
        assert seen["possible_duplicate_of"] is None
        status = client_for(people[who], "sightings/").get(
            f"/sightings/{sighting.uuid}/status.json"
        )
        assert status.json()["position"]["generalised"] is True
    assert own["position"]["generalised"] is False
    assert own["message_to_observer"].startswith("Where exactly?")
    assert api_get(curator, url)["possible_duplicate_of"] == str(first.uuid)


def test_a_curator_of_another_campaign_is_not_handed_this_campaigns_sightings(people):
    sighting = submit(people["observer"], seed=31)
    elsewhere = client_for(people["other campaign's curator"], "api/")
    here = client_for(people["curator"], "api/")

    queue = elsewhere.get("/api/v1/review/queue/").json()["results"]
    claimed = elsewhere.post("/api/v1/review/next/")

    assert str(sighting.uuid) not in {row["uuid"] for row in queue}
    assert claimed.status_code == 204
    assert here.post("/api/v1/review/next/").json()["uuid"] == str(sighting.uuid)
