"""A visitor sends a sighting from a real browser: EXIF read before sending, position on the page."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from playwright.sync_api import expect

from classifier.models import ClassifierVersion, Prediction
from classifier.services.inference import classify_pending
from observations.models import Observation
from observations.services.submission import observation_submit
from tests.browser.conftest import SCREENSHOT_DIR, open_context, screenshot, watch_errors
from tests.classifier.support import register_tiny_classifier
from tests.images import make_photo, photo_upload

pytestmark = [pytest.mark.browser]

SIGHTING_URL = re.compile(r"/sightings/[0-9a-f-]{36}/$")
EXACT = (42.64151, -0.05320)


def write_photo(tmp_path, name: str, **kwargs):
    path = tmp_path / name
    path.write_bytes(make_photo(**kwargs))
    return path


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_it_shows_the_photos_exif_position_before_sending_and_on_the_sighting_page(
    chromium_browser, live_server, settings, transactional_db, campaign, park, tmp_path, viewport
):
    photo = write_photo(
        tmp_path, "knotweed.jpg", gps=EXACT, accuracy=5, taken_at=datetime(2025, 6, 1, 10, 30)
    )
    context = open_context(chromium_browser, live_server, settings, viewport)
    page = context.new_page()
    errors = watch_errors(page)

    page.goto("/")
    screenshot(page, f"{viewport}-home")
    page.set_input_files("#id_photos", str(photo))

    expect(page.locator("#exif-readout")).to_have_text(
        "Position from photo: 42.64151, -0.05320 ± 5 m"
    )
    expect(page.locator("#photo-previews img")).to_have_count(1)
    expect(page.locator("#id_observed_at")).to_have_value("2025-06-01T10:30")
    assert page.locator("#id_position_source").input_value() == "exif"
    assert re.fullmatch(r"[0-9a-f-]{36}", page.locator("#id_client_uuid").input_value())
    screenshot(page, f"{viewport}-home-with-photo")

    page.get_by_role("button", name="Send sighting").click()
    page.wait_for_url(SIGHTING_URL)

    expect(page.locator("#coordinates")).to_have_text("42.64151, -0.05320")
    expect(page.get_by_text("Thank you! Your sighting was received.")).to_be_visible()
    expect(page.get_by_text("Waiting for the classifier…")).to_be_visible()
    expect(page.locator(".photo-main img")).to_have_js_property("complete", True)
    assert page.locator(".photo-main img").evaluate("img => img.naturalWidth") > 0
    expect(page.locator("#detail-map .leaflet-marker-icon")).to_have_count(1)
    screenshot(page, f"{viewport}-sighting")

    observation = Observation.objects.get()
    assert page.url.endswith(f"/sightings/{observation.uuid}/")
    assert observation.position_source == Observation.PositionSource.EXIF
    assert (round(observation.latitude, 5), round(observation.longitude, 5)) == EXACT
    assert observation.accuracy_m == 5

    page.get_by_role("navigation", name="Main").get_by_role("link", name="My sightings").click()
    expect(page.locator(f'a[href="/sightings/{observation.uuid}/"]')).to_be_visible()
    screenshot(page, f"{viewport}-my-sightings")
    assert errors == []
    context.close()


def test_use_my_location_sets_a_device_position_for_a_photo_without_gps(
    chromium_browser, live_server, settings, transactional_db, campaign, tmp_path
):
    photo = write_photo(tmp_path, "no-gps.jpg", seed=7)
    context = open_context(
        chromium_browser,
        live_server,
        settings,
        geolocation={"latitude": 42.6601, "longitude": -0.0421, "accuracy": 12},
        permissions=["geolocation"],
    )
    page = context.new_page()
    errors = watch_errors(page)
    page.goto("/")

    page.set_input_files("#id_photos", str(photo))
    expect(page.locator("#exif-readout")).to_contain_text("Your photos carry no GPS position")
    page.get_by_role("button", name="Use my location").click()
    expect(page.locator("#position-status")).to_have_text(
        "Position from your device: 42.66010, -0.04210 ± 12 m"
    )
    page.get_by_role("button", name="Send sighting").click()
    page.wait_for_url(SIGHTING_URL)

    expect(page.locator("#coordinates")).to_have_text("42.66010, -0.04210")
    expect(page.get_by_text("Device location")).to_be_visible()
    observation = Observation.objects.get()
    assert observation.position_source == Observation.PositionSource.DEVICE
    assert observation.accuracy_m == 12
    assert errors == []
    context.close()


def test_a_click_on_the_map_picks_the_position(
    chromium_browser, live_server, settings, transactional_db, campaign, tmp_path
):
    photo = write_photo(tmp_path, "no-gps.jpg", seed=8)
    context = open_context(chromium_browser, live_server, settings, "desktop")
    page = context.new_page()
    page.goto("/")

    page.set_input_files("#id_photos", str(photo))
    box = page.locator("#pick-map").bounding_box()
    page.locator("#pick-map").click(position={"x": box["width"] / 2, "y": box["height"] / 2})

    expect(page.locator("#position-status")).to_contain_text("Position picked on the map:")
    expect(page.locator("#pick-map .leaflet-marker-icon")).to_have_count(1)
    page.get_by_role("button", name="Send sighting").click()
    page.wait_for_url(SIGHTING_URL)
    observation = Observation.objects.get()
    assert observation.position_source == Observation.PositionSource.MAP
    assert observation.park is not None  # the map opens on the campaign's park
    context.close()


def test_the_page_asks_for_a_photo_before_sending_nothing(
    chromium_browser, live_server, settings, transactional_db, campaign
):
    context = open_context(chromium_browser, live_server, settings)
    page = context.new_page()
    page.goto("/")

    page.get_by_role("button", name="Send sighting").click()

    expect(page.locator("#photo-count")).to_have_text("Choose at least one photo of the organism.")
    assert page.url.endswith("/")
    assert Observation.objects.count() == 0
    assert context.blocked_requests  # the map tiles asked for an outside host, and were refused
    context.close()


def test_a_stranger_sees_a_sensitive_sighting_as_a_grid_cell(
    chromium_browser, live_server, settings, transactional_db, campaign, taxa
):
    orchid = taxa[3]
    observation = observation_submit(
        photos=[photo_upload(gps=EXACT, accuracy=5, taken_at=datetime(2025, 6, 1, 10, 30))],
        guess=orchid,
    ).observation
    context = open_context(chromium_browser, live_server, settings)
    page = context.new_page()
    errors = watch_errors(page)

    page.goto(observation.get_absolute_url())

    expect(page.locator("#coordinates")).to_have_text("42.65, -0.05")
    expect(page.get_by_text("Position generalised.")).to_be_visible()
    expect(page.locator("#detail-map .leaflet-marker-icon")).to_have_count(0)
    expect(page.locator("#detail-map .leaflet-overlay-pane path")).to_have_count(
        1
    )  # the 0.1 degree cell
    assert "42.6415" not in page.content()
    screenshot(page, "phone-sighting-generalised")
    assert errors == []
    context.close()


def test_the_sighting_page_shows_the_ai_suggestion_without_a_reload(
    chromium_browser, live_server, settings, transactional_db, campaign, taxa, tmp_path
):
    register_tiny_classifier(campaign, tmp_path)
    observation = observation_submit(
        photos=[photo_upload(gps=EXACT, taken_at=datetime(2025, 6, 1, 10, 30), seed=1)]
    ).observation
    context = open_context(chromium_browser, live_server, settings)
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(observation.get_absolute_url())
    expect(page.get_by_text("Waiting for the classifier…")).to_be_visible()
    expect(page.locator("#ai-body .ai-bar")).to_have_count(0)
    page.evaluate("window.stillTheSamePage = true")

    classify_pending(hint_ids=[observation.pk])  # what the inference worker does
    rows = list(
        Prediction.objects.filter(observation=observation, photo=None)
        .select_related("taxon")
        .order_by("rank")
    )

    bars = page.locator("#ai-body .ai-bar")
    expect(bars).to_have_count(len(rows))
    top = rows[0]
    expect(page.locator("#ai-headline strong")).to_contain_text(top.taxon.display_name)
    expect(page.locator("#ai-headline .score")).to_have_text(f"{round(top.probability * 100)}%")
    for bar, row in zip(bars.all(), rows, strict=True):
        expect(bar.locator(".ai-bar__name")).to_contain_text(row.taxon.scientific_name)
        expect(bar.locator(".ai-bar__name i")).to_have_text(row.taxon.scientific_name)
    expect(bars.first.locator(".ai-bar__percent")).to_have_text(f"{round(top.probability * 100)}%")
    widths = page.locator("#ai-body .ai-bar__fill").evaluate_all(
        "fills => fills.map(fill => fill.getBoundingClientRect().width)"
    )
    track = page.locator("#ai-body .ai-bar__track").first.bounding_box()["width"]
    assert widths == sorted(widths, reverse=True)
    assert abs(widths[0] - track * top.probability) < 2  # the bar is as long as its percentage
    expect(page.locator("#ai-body")).to_contain_text("Model: Tiny test model 0")
    expect(page.locator("#status-badge")).to_have_text("Classified")
    assert page.evaluate("window.stillTheSamePage") is True
    screenshot(page, "phone-sighting-classified-live")
    assert errors == []
    context.close()


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_a_curator_sees_a_classified_sighting_with_bars_demo_warning_and_photo_tops(
    chromium_browser,
    live_server,
    settings,
    transactional_db,
    campaign,
    taxa,
    curator,
    tmp_path,
    viewport,
):
    version = register_tiny_classifier(campaign, tmp_path)
    ClassifierVersion.objects.filter(pk=version.pk).update(is_demo=True)
    campaign.confidence_threshold = 0.8
    campaign.save()
    observation = observation_submit(
        photos=[
            photo_upload(gps=EXACT, accuracy=5, taken_at=datetime(2025, 6, 1, 10, 30), seed=seed)
            for seed in (1, 3)
        ],
        guess=taxa[0],
        notes="Several shrubs along the river path, flowering.",
    ).observation
    classify_pending(hint_ids=[observation.pk])
    context = open_context(chromium_browser, live_server, settings, viewport)
    context.add_cookies(
        [{"name": "sessionid", "value": _session_for(curator), "url": live_server.url}]
    )
    page = context.new_page()
    errors = watch_errors(page)

    page.goto(observation.get_absolute_url())

    expect(page.locator("#classifier-banner")).to_contain_text("Demo model active")
    expect(page.locator("#ai-body .ai-demo")).to_have_text(
        "Demo model, not trained on real photos: its suggestions are meaningless."
    )
    expect(page.locator("#ai-headline")).to_contain_text("Not sure — maybe")
    expect(page.locator("#ai-body .ai-bar")).to_have_count(4)
    expect(page.locator("[data-photo-ai]")).to_have_count(2)
    expect(page.locator("[data-photo-ai]").first).to_contain_text("%")
    for image in page.locator(".photos img").all():
        image.scroll_into_view_if_needed()
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("img => img.naturalWidth") > 0
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    screenshot(page, f"{viewport}-sighting-classified")
    page.locator("#ai-section").screenshot(
        path=str(SCREENSHOT_DIR / f"parkwatch-{viewport}-ai-card.png")
    )
    assert errors == []
    context.close()


def _session_for(user) -> str:
    """A signed-in session for `user`, as its cookie value."""
    from importlib import import_module

    from django.conf import settings as django_settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = import_module(django_settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = django_settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return store.session_key
