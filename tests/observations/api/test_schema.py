"""The OpenAPI schema documents the API and validates without a single warning."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_schema_endpoint_documents_the_sightings_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    schema = response.json()
    create = schema["paths"]["/api/v1/observations/"]["post"]
    assert "multipart/form-data" in create["requestBody"]["content"]
    assert {"201", "200", "400", "401", "429"} <= set(create["responses"])
    assert "get" in schema["paths"]["/api/v1/observations/"]
    assert "404" in schema["paths"]["/api/v1/observations/{uuid}/"]["get"]["responses"]
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "detail"}


def test_the_swagger_ui_is_served(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_the_schema_validates_with_no_warnings(tmp_path):
    target = tmp_path / "schema.yaml"

    # --fail-on-warn raises on any warning or error; --validate checks it against OpenAPI 3.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    schema = yaml.safe_load(target.read_text())
    assert "/api/v1/observations/{uuid}/" in schema["paths"]
