"""The site-wide banner says when the default campaign's classifier is a demo, or missing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from classifier.models import ClassifierVersion
from tests.classifier.support import register_tiny_classifier

pytestmark = pytest.mark.django_db

DEMO = "Demo model active: AI suggestions are not trained on real photos"
NONE = "No classifier active: sightings wait for one"


def home(client) -> str:
    return client.get(reverse("home")).content.decode()


def test_it_says_no_classifier_is_active_when_none_is(client, campaign):
    html = home(client)

    assert NONE in html
    assert DEMO not in html


def test_it_warns_on_every_page_while_a_demo_model_is_active(client, campaign, tmp_path):
    version = register_tiny_classifier(campaign, tmp_path)
    ClassifierVersion.objects.filter(pk=version.pk).update(is_demo=True)

    pages = [home(client), client.get(reverse("my-sightings")).content.decode()]

    for html in pages:
        assert DEMO in html
        assert NONE not in html


def test_it_is_hidden_once_a_real_model_is_active(client, campaign, tmp_path):
    register_tiny_classifier(campaign, tmp_path)

    html = home(client)

    assert DEMO not in html and NONE not in html
    assert 'id="classifier-banner"' not in html


def test_a_candidate_or_retired_demo_does_not_count_as_active(client, campaign, tmp_path):
    version = register_tiny_classifier(campaign, tmp_path, activate=False)
    ClassifierVersion.objects.filter(pk=version.pk).update(is_demo=True)

    assert NONE in home(client)


def test_it_shows_nothing_before_any_campaign_exists(client, db):
    html = home(client)

    assert 'id="classifier-banner"' not in html


def test_it_costs_one_query_per_request(client, campaign, tmp_path):
    register_tiny_classifier(campaign, tmp_path)

    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("home"))

    versions = [q["sql"] for q in queries if "classifier_classifierversion" in q["sql"]]
    assert len(versions) == 1
