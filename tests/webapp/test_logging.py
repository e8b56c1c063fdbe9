"""LOG_FORMAT=json: one JSON object a line, the sighting's UUID on every line about it.

A real web process's JSON lines are checked in test_gunicorn.py, a real worker's (task id and
name, sighting) in test_time_limits.py.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

import pytest

from observations.logcontext import sighting_context
from observations.models import Alert, Observation, ParkContact
from observations.services.alerts import alert_deliver
from observations.services.review import review_decide
from tests.conftest import ORDESA
from tests.images import photo_upload
from webapp.logs import ContextFilter, JSONFormatter

JUNE_FIRST = datetime(2026, 6, 1, 10, 30)


@pytest.fixture
def json_log():
    """The root logger also writes JSON lines here, as settings.LOGGING does with LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


def upload(client) -> Observation:
    response = client.post(
        "/api/v1/observations/",
        {"photos": [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST, width=320, height=240)]},
    )
    assert response.status_code == 201, response.content
    return Observation.objects.get(uuid=response.json()["uuid"])


# Committed for real, so what runs after commit (alerts published) runs inside the decision.
@pytest.mark.django_db(transaction=True)
def test_upload_review_and_alert_lines_carry_the_sightings_uuid(
    client, park, campaign, taxa, curator, json_log
):
    ParkContact.objects.create(park=park, name="Rangers", email="rangers@ordesa.example")
    observation = upload(client)
    uuid = str(observation.uuid)
    received = [line for line in json_log() if "received" in line["message"]]
    assert [line["observation"] for line in received] == [uuid]

    before_review = len(json_log())
    review_decide(observation=observation, curator=curator, decision="confirm", taxon=taxa[0])
    during_review = json_log()[before_review:]
    assert any("reviewed by" in line["message"] for line in during_review)
    # Every line the decision logged (alerts created, e-mails queued...) names the sighting.
    assert {line.get("observation") for line in during_review} == {uuid}

    alert = Alert.objects.get(observation=observation)
    before_delivery = len(json_log())
    assert alert_deliver(alert_id=alert.pk) is True
    delivery = json_log()[before_delivery:]
    assert any(f"Alert {alert.pk}" in line["message"] for line in delivery)
    assert {line.get("observation") for line in delivery} == {uuid}

    logging.getLogger("parkwatch.test").info("nothing to do with a sighting")
    assert "observation" not in json_log()[-1]


def test_a_line_is_one_json_object_with_the_exception_and_extra_fields(json_log):
    logger = logging.getLogger("parkwatch.test")
    with sighting_context("0b5c3a2e-6f1d-4c1e-9d8a-2f4b5c6d7e8f"):
        try:
            raise ValueError('a "quoted"\nmulti-line reason')
        except ValueError:
            logger.exception("It failed", extra={"attempt": 2, "when": JUNE_FIRST})

    (line,) = json_log()
    assert line["message"] == "It failed"
    assert line["level"] == "ERROR"
    assert line["logger"] == "parkwatch.test"
    assert line["observation"] == "0b5c3a2e-6f1d-4c1e-9d8a-2f4b5c6d7e8f"
    assert line["attempt"] == 2
    assert line["when"] == str(JUNE_FIRST)
    assert 'ValueError: a "quoted"' in line["exception"]
    assert line["time"].endswith("+00:00")
