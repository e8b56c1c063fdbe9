"""A curator works the review queue in a real browser: take next, press "1", on to the next."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from playwright.sync_api import expect

from classifier.models import Prediction
from classifier.services.inference import classify_pending
from observations.models import Alert, Observation, ParkContact, Review
from observations.selectors import review_queue
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from tests.browser.conftest import open_context, screenshot, watch_errors
from tests.classifier.support import register_tiny_classifier
from tests.images import photo_upload

pytestmark = [pytest.mark.browser]

REVIEW_URL = re.compile(r"/review/([0-9a-f-]{36})/$")
EXACT = (42.64151, -0.05320)
TAKEN = datetime(2026, 6, 1, 10, 30)
PASSWORD = "correct horse battery"  # tests.factories.UserFactory's


def sighting(seed: int, *, position=EXACT, photos: int = 1, **fields) -> Observation:
    uploads = [
        photo_upload(gps=position, accuracy=6, taken_at=TAKEN, seed=seed * 10 + n)
        for n in range(photos)
    ]
    return observation_submit(photos=uploads, **fields).observation


def top1(observation) -> Prediction:
    return (
        Prediction.objects.filter(observation=observation, photo=None, rank=1)
        .select_related("taxon")
        .get()
    )


def sign_in(page, user) -> None:
    page.goto("/accounts/login/?next=/review/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/review/$"))


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_a_curator_takes_the_next_sighting_and_confirms_it_with_the_key_1(
    chromium_browser,
    live_server,
    settings,
    transactional_db,
    campaign,
    park,
    taxa,
    curator,
    tmp_path,
    viewport,
):
    ParkContact.objects.create(park=park, name="Ordesa rangers", email="rangers@example.org")
    register_tiny_classifier(campaign, tmp_path)
    # A confirmed sighting 200 m away: the map shows it as a neighbour.
    neighbour = sighting(1, position=(EXACT[0] + 0.0018, EXACT[1]))
    review_decide(observation=neighbour, curator=curator, decision="confirm", taxon=taxa[2])
    waiting = [
        sighting(2, photos=2, guess=taxa[1], notes="Along the river bank."),
        sighting(3, photos=2),
    ]
    classify_pending(hint_ids=[observation.pk for observation in waiting])
    first = review_queue(curator=curator).first()
    second = next(observation for observation in waiting if observation != first)
    expected = top1(first).taxon
    assert expected is not None and expected.is_invasive  # the tiny model's answer, fixed seeds

    context = open_context(chromium_browser, live_server, settings, viewport)
    page = context.new_page()
    errors = watch_errors(page)
    sign_in(page, curator)

    expect(page.locator("#queue .review-row")).to_have_count(2)
    expect(page.locator("#count-waiting")).to_have_text("2 waiting")
    expect(page.locator("#queue .review-row").first).to_have_attribute("data-uuid", str(first.uuid))
    expect(page.locator("#queue img").first).to_have_js_property("complete", True)
    screenshot(page, f"{viewport}-review-queue")

    page.get_by_role("button", name="Take next").click()
    page.wait_for_url(REVIEW_URL)
    assert page.url.endswith(f"/review/{first.uuid}/")
    expect(page.locator("#claim-line")).to_contain_text("Claimed by you until")
    expect(page.locator("#ai-top5 .review-rank")).to_have_count(4)
    expect(page.locator("#ai-top5 .review-rank").first).to_contain_text(expected.scientific_name)
    expect(page.locator("#review-map .leaflet-marker-icon")).to_have_count(1)
    expect(page.locator("#review-map path.leaflet-interactive")).to_have_count(1)  # neighbour
    expect(page.locator("#nearby")).to_contain_text("200 m away")
    expect(page.locator(".review-photo img").first).to_have_js_property("complete", True)
    assert page.locator(".review-photo img").first.evaluate("img => img.naturalWidth") > 0
    screenshot(page, f"{viewport}-review-sighting")

    if viewport == "desktop":
        # The photo viewer: open, zoom to actual size, close with Escape.
        page.locator(".review-photo__link").first.click()
        expect(page.locator("#lightbox")).to_be_visible()
        expect(page.locator("#lightbox-caption")).to_have_text("Photo 1 of 2")
        page.locator("#lightbox-zoom").click()
        expect(page.locator("#lightbox")).to_have_class(re.compile("is-zoomed"))
        screenshot(page, "desktop-review-lightbox")
        page.keyboard.press("Escape")
        expect(page.locator("#lightbox")).to_be_hidden()

    # Keys typed into a field are text, not decisions.
    page.locator("#id_comment").fill("")
    page.locator("#id_comment").type("1 u")
    assert Review.objects.count() == 1  # only the neighbour's
    page.keyboard.press("Escape")
    page.locator("#id_comment").fill("")
    page.locator("body").click(position={"x": 5, "y": 5})

    page.keyboard.press("1")
    page.wait_for_url(re.compile(rf"/review/{second.uuid}/$"))

    expect(page.locator(".messages")).to_contain_text(
        f"{str(first.uuid)[:8]} confirmed as {expected.display_name}."
    )
    expect(page.locator(".messages")).to_contain_text("Park managers alerted")
    first.refresh_from_db()
    assert first.status == Observation.Status.CONFIRMED
    assert first.final_taxon == expected
    review = Review.objects.get(observation=first)
    assert (review.curator, review.taxon, review.comment) == (curator, expected, "")
    alert = Alert.objects.get(observation=first)
    assert (alert.channel, alert.recipients, alert.review) == (
        "email",
        "rangers@example.org",
        review,
    )
    second.refresh_from_db()
    assert (second.status, second.claimed_by) == (Observation.Status.IN_REVIEW, curator)

    # "s" gives the next one back (nothing else waits: back to the queue, which shows it again).
    page.keyboard.press("s")
    page.wait_for_url(re.compile(r"/review/$"))
    expect(page.locator(".messages")).to_contain_text("skipped: it is back in the queue for others")
    expect(page.locator("#queue .review-row")).to_have_count(1)
    second.refresh_from_db()
    assert second.claimed_by is None

    page.goto("/review/control/")
    expect(page.locator(f"#case-{first.uuid}")).to_contain_text("Reported")
    screenshot(page, f"{viewport}-review-control")
    assert errors == []
    context.close()


def test_reject_asks_for_a_reason_first(
    chromium_browser, live_server, settings, transactional_db, campaign, taxa, curator
):
    observation = sighting(4)
    Observation.objects.filter(pk=observation.pk).update(
        status=Observation.Status.CLASSIFIED, ai_taxon=taxa[0], ai_score=0.6
    )
    context = open_context(chromium_browser, live_server, settings, "desktop")
    page = context.new_page()
    errors = watch_errors(page)
    sign_in(page, curator)
    page.get_by_role("button", name="Take next").click()
    page.wait_for_url(REVIEW_URL)

    page.keyboard.press("r")
    expect(page.locator("#reject-fieldset")).to_have_class(re.compile("is-asking"))
    expect(page.locator('input[name="reject_reason"]').first).to_be_focused()
    assert not Review.objects.exists()
    page.get_by_label("Bad photo").check()
    page.keyboard.press("r")
    page.wait_for_url(re.compile(r"/review/$"))

    expect(page.locator(".messages")).to_contain_text("Queue empty.")
    observation.refresh_from_db()
    assert observation.status == Observation.Status.REJECTED
    assert Review.objects.get().reject_reason == "bad_photo"
    assert errors == []
    context.close()
