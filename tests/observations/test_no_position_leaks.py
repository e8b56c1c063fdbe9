"""The exact position of a sensitive sighting reaches no one but its observer and the curators.

A sighting is sensitive by its reviewed taxon, the visitor's guess, or any AI top-1 (the
sighting's, or one photo's). For each of those routes, every page and endpoint of the URL
configuration is fetched as another visitor and as an anonymous client, before and after the
review, and none may contain the coordinates in any format the app could write them in. New
routes are swept too: a route with a parameter this test cannot fill makes it fail.
"""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from classifier.services.inference import classify_pending
from observations.geoprivacy import is_sensitive
from observations.models import Observation, Taxon
from observations.selectors import ai_predictions, observation_get
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from tests.classifier.support import register_tiny_classifier
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

# Inside the Ordesa test park, with enough digits that every rounding is distinct from the
# 0.1 degree cell (42.65, -0.05) the others see.
SPOT = (42.6378123, -0.0412345)
JUNE_FIRST = datetime(2026, 6, 1, 10, 30)
ROUTES = ["final_taxon", "guess", "ai_top_1", "one_photos_ai_top_1"]


def secrets(latitude: float, longitude: float) -> list[str]:
    """The coordinates as the app could write them: repr, fixed decimals, comma decimals."""
    found = set()
    for value in (latitude, longitude):
        for text in (f"{value}", f"{value:.6f}", f"{value:.5f}", f"{value:.4f}"):
            found |= {text, text.replace(".", ",")}
        # Without the sign too (e.g. "0.04123 W"), at 5+ decimals so no probability matches.
        for text in (f"{abs(value)}", f"{abs(value):.6f}", f"{abs(value):.5f}"):
            found |= {text, text.replace(".", ",")}
    return sorted(found)


def leaked(body: bytes, observation: Observation) -> list[str]:
    text = body.decode("utf-8", errors="replace")
    return [
        secret for secret in secrets(observation.latitude, observation.longitude) if secret in text
    ]


# -- the URL configuration, every route filled with this sighting's values ---------------------


def _walk(patterns, namespace: str = "", route: str = "", params: tuple = ()):
    for pattern in patterns:
        names = tuple(pattern.pattern.regex.groupindex)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(
                pattern.url_patterns, inner, route + str(pattern.pattern), params + names
            )
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}{pattern.name}" if pattern.name else None
            yield name, route + str(pattern.pattern), params + names


def _param_values(observation: Observation) -> dict[str, list[str]]:
    photos = list(observation.photos.all())
    versions = list(observation.predictions.values_list("version_id", flat=True).distinct())
    return {
        "uuid": [str(observation.uuid)],
        "pk": [str(pk) for pk in versions] or ["1"],
        "id": [str(observation.pk)],
        "object_id": [str(observation.pk)],
        "content_type_id": [str(ContentType.objects.get_for_model(Observation).pk)],
        "app_label": ["observations"],
        "path": [name for photo in photos for name in (photo.image.name, photo.thumbnail.name)],
        "url": ["observations/observation/"],
        "kind": ["curves", "confusion"],  # a model card's plots
    }


def _fill(route: str, kwargs: dict) -> str | None:
    """A nameless route pattern (`<conv:name>` only) with its parameters put in."""
    for key, value in kwargs.items():
        for converter in ("", "str:", "int:", "uuid:", "path:", "slug:"):
            route = route.replace(f"<{converter}{key}>", value)
    return None if "<" in route or "(?P" in route or "^" in route else "/" + route


def site_urls(observation: Observation, *, admin: bool) -> list[str]:
    """Every GET-able URL of the site for this sighting (the admin's, or all but the admin's)."""
    values = _param_values(observation)
    urls, unfillable = [], []
    campaign, park = observation.campaign.slug, observation.park.slug
    for name, route, params in _walk(get_resolver().url_patterns):
        if route.startswith("admin/") != admin:
            continue
        if any(param not in values for param in params):
            unfillable.append(route)
            continue
        filled = []
        for combination in itertools.product(*(values[param] for param in params)):
            kwargs = dict(zip(params, combination, strict=True))
            if name is None:
                url = _fill(route, kwargs)
            else:
                try:
                    url = reverse(name, kwargs=kwargs)
                except NoReverseMatch:
                    url = None
            if url is not None:
                filled.append(url)
        if not filled and not (admin and name is None):
            unfillable.append(route)
        urls += filled
        if not params:  # lists: with the filters a visitor may pass as well
            urls += [
                f"{url}?campaign={campaign}&park={park}&status=confirmed&mine=0" for url in filled
            ]
    assert not unfillable, f"Routes this test cannot fill in, teach _param_values: {unfillable}"
    return urls


def sweep(clients: dict, observations: list[Observation], *, admin: bool = False) -> dict:
    """GET every URL with every client; return the responses and any leaks found."""
    leaks, seen = [], {}
    for observation in observations:
        for url in site_urls(observation, admin=admin):
            for who, client in clients.items():
                response = client.get(url)
                seen[(who, url)] = response
                body = b"".join(response) if response.streaming else response.content
                for secret in leaked(body, observation):
                    leaks.append((who, url, response.status_code, secret))
    assert not leaks, f"Exact coordinates leaked: {leaks}"
    return seen


# -- the sightings -----------------------------------------------------------------------------


def submit(observer, *, seeds=(1,), guess=None) -> Observation:
    return observation_submit(
        photos=[photo_upload(width=64, height=48, seed=seed) for seed in seeds],
        observer=observer,
        latitude=SPOT[0],
        longitude=SPOT[1],
        accuracy_m=4,
        observed_at=JUNE_FIRST,
        guess=guess,
    ).observation


def classify(observation: Observation) -> Observation:
    classify_pending(hint_ids=[observation.pk])
    observation = observation_get(uuid=observation.uuid)
    assert observation.status == Observation.Status.CLASSIFIED
    return observation


def only_sensitive(taxon: Taxon | None) -> None:
    Taxon.objects.update(is_sensitive=False)
    if taxon is not None:
        Taxon.objects.filter(pk=taxon.pk).update(is_sensitive=True)


@pytest.fixture
def sensitive(request, campaign, taxa, tmp_path, visitor):
    """(observation before review, taxon the curator confirms) for one route of sensitivity."""
    buddleja, orchid = taxa[0], taxa[3]
    route = request.param
    if route == "final_taxon":
        only_sensitive(orchid)
        return submit(visitor), orchid
    if route == "guess":
        only_sensitive(orchid)
        return submit(visitor, guess=orchid), buddleja
    register_tiny_classifier(campaign, tmp_path)
    if route == "ai_top_1":
        observation = classify(submit(visitor, seeds=(9,)))
        top = ai_predictions(observation)[0].taxon
        only_sensitive(top)
        assert observation.ai_taxon == top
        return observation, next(taxon for taxon in taxa if taxon != top)
    # One photo's own top-1 differs from the sighting's (seeds found so): only it is sensitive.
    observation = classify(submit(visitor, seeds=(1, 2)))
    merged = ai_predictions(observation)[0].taxon
    photo_tops = [
        ai_predictions(observation, photo=photo)[0].taxon for photo in observation.photos.all()
    ]
    odd = next(taxon for taxon in photo_tops if taxon != merged)
    only_sensitive(odd)
    assert observation.ai_taxon == merged and not merged.is_sensitive
    return observation, merged


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def is_sensitive_now(observation: Observation) -> bool:
    return is_sensitive(observation_get(uuid=observation.uuid))


@pytest.mark.parametrize("sensitive", ROUTES, indirect=True)
def test_no_page_or_endpoint_shows_the_exact_position_to_others(
    sensitive, visitor, other_visitor, curator
):
    observation, taxon = sensitive
    others = {"other visitor": signed_in(other_visitor), "anonymous": Client()}
    if is_sensitive_now(observation):  # every route but the verdict's is sensitive at once
        seen = sweep(others, [observation])
        page = seen[("anonymous", f"/sightings/{observation.uuid}/")]
        assert page.status_code == 200 and b"Position generalised" in page.content

    review_decide(observation=observation, curator=curator, decision="confirm", taxon=taxon)
    observation.refresh_from_db()
    assert observation.status == Observation.Status.CONFIRMED and is_sensitive_now(observation)

    seen = sweep(others, [observation])

    # The sweep did see the sighting, generalised, where it is public.
    for who in others:
        listed = seen[(who, "/api/v1/observations/")].json()["results"]
        (row,) = [row for row in listed if row["uuid"] == str(observation.uuid)]
        assert row["position"]["generalised"] is True
        assert (row["position"]["latitude"], row["position"]["longitude"]) == (42.65, -0.05)
        detail = seen[(who, f"/api/v1/observations/{observation.uuid}/")]
        assert detail.status_code == 200 and detail.json()["position"]["generalised"] is True
        status = seen[(who, f"/sightings/{observation.uuid}/status.json")]
        assert status.status_code == 200 and status.json()["position"]["generalised"] is True
        assert seen[(who, f"/sightings/{observation.uuid}/")].status_code == 200


@pytest.mark.parametrize("sensitive", ROUTES, indirect=True)
def test_the_observer_and_the_curators_see_the_exact_position(
    sensitive, visitor, curator, admin_user
):
    observation, taxon = sensitive
    review_decide(observation=observation, curator=curator, decision="confirm", taxon=taxon)
    latitude, longitude = SPOT

    for user in (visitor, curator, admin_user):
        client = signed_in(user)
        detail = client.get(f"/api/v1/observations/{observation.uuid}/").json()
        assert (detail["position"]["latitude"], detail["position"]["longitude"]) == SPOT
        assert detail["position"]["generalised"] is False
        page = client.get(f"/sightings/{observation.uuid}/").content.decode()
        assert f"{latitude:.5f}, {longitude:.5f}" in page
        status = client.get(f"/sightings/{observation.uuid}/status.json").json()
        assert (status["position"]["latitude"], status["position"]["longitude"]) == SPOT
    mine = signed_in(visitor).get("/api/v1/observations/", {"mine": "1"}).json()["results"]
    assert mine[0]["position"]["latitude"] == latitude


@pytest.mark.parametrize("sensitive", ["guess"], indirect=True)
def test_the_admin_site_shows_nothing_to_visitors(sensitive, other_visitor, visitor):
    observation, _taxon = sensitive
    clients = {"other visitor": signed_in(other_visitor), "observer": signed_in(visitor)}
    clients["anonymous"] = Client()

    seen = sweep(clients, [observation], admin=True)

    change = f"/admin/observations/observation/{observation.pk}/change/"
    assert all(seen[(who, change)].status_code == 302 for who in clients)


def test_the_secrets_cover_the_formats_pages_use():
    assert {"42.6378123", "42.63781", "42.6378", "-0.0412345", "-0.04123", "-0.0412"} <= set(
        secrets(*SPOT)
    )
    assert "0.04123" in secrets(*SPOT) and "0.0412" not in secrets(*SPOT)
    # The generalised cell never matches.
    assert not leaked(
        b'{"latitude": 42.65, "longitude": -0.05}', Observation(latitude=SPOT[0], longitude=SPOT[1])
    )
