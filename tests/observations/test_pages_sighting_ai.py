"""The AI suggestion on a sighting's page and in its status.json, from real classifier rows.

Prediction rows come from the real registry and inference service (a tiny Keras model), so the
page is tested against what the workers actually write.
"""

import html as html_module
import re
from datetime import datetime

import pytest
from django.urls import reverse

from classifier.models import ClassifierVersion, Prediction
from classifier.services.inference import classify_pending
from observations.models import Observation
from observations.services.submission import observation_submit
from tests.classifier.support import register_tiny_classifier
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

JUNE_FIRST = datetime(2025, 6, 1, 10, 30)
EXACT = (42.64151, -0.05320)
FAILED_REASON = "No active classifier for this campaign: an admin must activate one."


def submit(*, seeds=(1,), **kwargs) -> Observation:
    photos = [photo_upload(gps=EXACT, taken_at=JUNE_FIRST, seed=seed) for seed in seeds]
    return observation_submit(photos=photos, **kwargs).observation


def classify(observation: Observation) -> Observation:
    classify_pending(hint_ids=[observation.pk])
    return Observation.objects.get(pk=observation.pk)


def page_html(client, observation) -> str:
    response = client.get(reverse("sighting-detail", kwargs={"uuid": observation.uuid}))
    assert response.status_code == 200
    return response.content.decode()


def status_ai(client, observation) -> dict:
    return client.get(reverse("sighting-status", kwargs={"uuid": observation.uuid})).json()["ai"]


def ai_card(html: str) -> str:
    """The AI card's markup: what a visitor sees there (not the page's JSON config)."""
    start = html.index('<div id="ai-body">')
    return html[start : html.index("</section>", start)]


def visible(markup: str) -> str:
    """Text as a reader gets it: tags dropped, whitespace collapsed."""
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", "", markup)).split())


def percent_text(probability: float) -> str:
    return "<1%" if probability < 0.005 else f"{round(probability * 100)}%"


def merged_rows(observation) -> list[Prediction]:
    return list(
        Prediction.objects.filter(observation=observation, photo=None)
        .select_related("taxon", "version")
        .order_by("rank")
    )


def set_threshold(campaign, value: float) -> None:
    campaign.confidence_threshold = value
    campaign.save(update_fields=["confidence_threshold"])


@pytest.fixture
def version(campaign, tmp_path):
    return register_tiny_classifier(campaign, tmp_path, tta="flip")


def test_it_draws_the_top_5_as_bars_with_names_percentages_and_the_model(client, campaign, version):
    observation = classify(submit())
    set_threshold(campaign, 0.0)
    rows = merged_rows(observation)

    card = ai_card(page_html(client, observation))
    text = visible(card)

    assert observation.status == Observation.Status.CLASSIFIED
    assert len(rows) == 4  # the campaign's four taxa: all of them, best first
    assert card.count('<li class="ai-bar') == len(rows)
    for row in rows:
        tag = " invasive" if row.taxon.is_invasive else ""
        assert f"{row.taxon.display_name}{tag} {percent_text(row.probability)}" in text
        common = html_module.escape(row.taxon.common_name)
        assert f"{common} (<i>{row.taxon.scientific_name}</i>)" in card
        assert f'style="width: {row.probability * 100:.1f}%"' in card
    invasive_rows = [row for row in rows if row.taxon.is_invasive]
    # One tag per invasive bar, and one in the headline when the top-1 is invasive.
    assert card.count(">invasive</span>") == len(invasive_rows) + rows[0].taxon.is_invasive
    assert len(invasive_rows) == 3  # the orchid is not invasive
    assert f"Model: Tiny test model 0 v{version.pk}" in text
    assert "test-time augmentation: horizontal flip" in text
    assert "Not sure" not in text
    assert "Demo model" not in text


def test_status_json_carries_the_same_bars_for_the_script(client, campaign, version):
    observation = classify(submit())
    set_threshold(campaign, 0.0)
    rows = merged_rows(observation)

    ai = status_ai(client, observation)

    assert ai["state"] == "suggested"
    assert [p["scientific_name"] for p in ai["predictions"]] == [
        row.taxon.scientific_name for row in rows
    ]
    assert [p["percent"] for p in ai["predictions"]] == [
        round(row.probability * 100) for row in rows
    ]
    assert ai["predictions"][0]["is_invasive"] is rows[0].taxon.is_invasive
    assert ai["model"] == {
        "label": f"Tiny test model 0 v{version.pk}",
        "is_demo": False,
        "tta": "flip",
        "tta_display": "horizontal flip",
    }
    assert ai["confident"] is True
    assert ai["headline"] == f"{rows[0].taxon.display_name} ({round(rows[0].probability * 100)}%)"
    assert ai["demo_warning"] == ""


def test_it_says_not_sure_when_the_top_1_is_below_the_campaign_threshold(client, campaign, version):
    observation = classify(submit())
    top = merged_rows(observation)[0]
    assert top.probability < 0.9  # photo 1 is not an easy one for the tiny model
    set_threshold(campaign, top.probability + 0.01)
    expected = f"Not sure — maybe {top.taxon.scientific_name} ({round(top.probability * 100)}%)"

    text = visible(ai_card(page_html(client, observation)))
    ai = status_ai(client, observation)

    assert text.startswith(expected)  # the headline, before any bar
    assert ai["headline"] == expected
    assert ai["confident"] is False


def test_a_label_that_maps_to_no_taxon_shows_as_a_raw_label(client, campaign, version):
    for label in version.labels.all():
        label.name, label.taxon = f"class_{label.index}", None
        label.save()
    observation = classify(submit())
    set_threshold(campaign, 0.0)
    top = merged_rows(observation)[0]

    card = ai_card(page_html(client, observation))
    ai = status_ai(client, observation)

    assert top.taxon is None
    assert visible(card).count("raw label: class_") == 4 + 1  # the bars, and the headline
    assert f"raw label: class_{top.label[len('class_') :]}" in visible(card)
    assert "<i>" not in card and "invasive" not in card
    assert ai["predictions"][0]["raw_label"] == top.label
    assert ai["predictions"][0]["name"] == f"raw label: {top.label}"


def test_a_demo_model_warns_that_its_suggestions_are_meaningless(client, campaign, version):
    ClassifierVersion.objects.filter(pk=version.pk).update(is_demo=True)
    observation = classify(submit())

    text = visible(ai_card(page_html(client, observation)))
    ai = status_ai(client, observation)

    assert "Demo model, not trained on real photos: its suggestions are meaningless." in text
    assert ai["demo_warning"] == (
        "Demo model, not trained on real photos: its suggestions are meaningless."
    )
    assert ai["model"]["is_demo"] is True


def test_a_failed_classification_says_it_will_be_retried_and_only_curators_see_why(
    client, campaign, curator
):
    observation = classify(submit())  # no active classifier: it fails
    assert observation.status == Observation.Status.CLASSIFICATION_FAILED
    assert observation.status_detail == FAILED_REASON

    as_visitor = page_html(client, observation)
    visitor_json = client.get(reverse("sighting-status", kwargs={"uuid": observation.uuid}))
    client.force_login(curator)
    as_curator = visible(ai_card(page_html(client, observation)))
    curator_ai = status_ai(client, observation)

    assert "Classification failed." in visible(ai_card(as_visitor))
    assert "it will be retried" in visible(ai_card(as_visitor))
    assert FAILED_REASON not in as_visitor
    assert FAILED_REASON not in visitor_json.content.decode()
    assert f"Reason (curators only): {FAILED_REASON}" in as_curator
    assert curator_ai["state"] == "failed"
    assert curator_ai["reason"] == FAILED_REASON


def test_curators_see_each_photos_own_top_1_under_its_thumbnail(client, campaign, version, curator):
    observation = classify(submit(seeds=(1, 2)))
    photos = list(observation.photos.order_by("position"))
    tops = [Prediction.objects.select_related("taxon").get(photo=photo, rank=1) for photo in photos]

    as_visitor = page_html(client, observation)
    client.force_login(curator)
    as_curator = page_html(client, observation)
    curator_json = client.get(reverse("sighting-status", kwargs={"uuid": observation.uuid}))

    assert "data-photo-ai" not in as_visitor
    for photo, top in zip(photos, tops, strict=True):
        caption = re.search(rf'data-photo-ai="{photo.pk}">(.*?)</p>', as_curator).group(1)
        assert visible(caption) == (
            f"AI top-1 for this photo: {top.taxon.scientific_name} {round(top.probability * 100)}%"
        )
    assert [p["top"]["scientific_name"] for p in curator_json.json()["photos"]] == [
        top.taxon.scientific_name for top in tops
    ]


def test_visitors_status_json_has_no_per_photo_predictions(client, campaign, version):
    observation = classify(submit(seeds=(1, 2)))

    payload = client.get(reverse("sighting-status", kwargs={"uuid": observation.uuid})).json()

    assert "photos" not in payload
