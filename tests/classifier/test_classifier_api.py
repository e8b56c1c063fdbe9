import pytest
from rest_framework.test import APIClient

from classifier.models import ClassifierVersion
from tests.classifier.support import register_tiny_classifier
from tests.images import photo_upload

pytestmark = pytest.mark.django_db


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def test_curators_see_the_registry_with_model_cards(campaign, curator, tmp_path):
    version = register_tiny_classifier(campaign, tmp_path)

    response = client_for(curator).get("/api/v1/classifiers/")

    assert response.status_code == 200
    (card,) = response.json()
    assert card["id"] == version.pk
    assert card["state"] == "active"
    assert card["preprocessing"]["mode"] == "xception"
    assert card["weights_sha256"] == version.weights_sha256
    assert [label["taxon"]["scientific_name"] for label in card["labels"]] == sorted(
        campaign.taxa.values_list("scientific_name", flat=True)
    )


@pytest.mark.parametrize("who", [None, "visitor"])
def test_visitors_cannot_reach_the_registry(who, visitor, campaign):
    response = client_for(visitor if who else None).get("/api/v1/classifiers/")

    assert response.status_code in (401, 403)
    assert "error" in response.json()


def test_an_admin_activates_a_version_and_the_previous_one_retires(
    campaign, admin_user, curator, tmp_path
):
    old = register_tiny_classifier(campaign, tmp_path, seed=1)
    new = register_tiny_classifier(campaign, tmp_path, seed=2, activate=False)

    refused = client_for(curator).post(f"/api/v1/classifiers/{new.pk}/activate/")
    response = client_for(admin_user).post(f"/api/v1/classifiers/{new.pk}/activate/")

    assert refused.status_code == 403
    assert response.status_code == 200
    assert response.json()["state"] == "active"
    old.refresh_from_db()
    assert old.state == ClassifierVersion.State.RETIRED


def test_identify_answers_503_when_no_worker_answers(campaign, settings, tmp_path):
    register_tiny_classifier(campaign, tmp_path)
    settings.IDENTIFY_TIMEOUT_SECONDS = 1

    response = client_for().post(
        "/api/v1/identify/", {"photos": [photo_upload()]}, format="multipart"
    )

    assert response.status_code == 503
    assert response.json()["error"] == "inference_unavailable"


def test_identify_refuses_a_bad_photo_before_asking_a_worker(campaign):
    from tests.images import upload

    response = client_for().post(
        "/api/v1/identify/", {"photos": [upload(b"GIF89a" + b"\0" * 50)]}, format="multipart"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_type"
