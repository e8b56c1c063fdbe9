"""Schemathesis against the OpenAPI schema: no 5xx and no answer the schema does not describe.

Every operation of the schema drf-spectacular generates is sent cases Hypothesis draws from it
(valid ones and, for the admin, deliberately invalid ones) through the real WSGI application,
with the middleware, authentication and exception handler of production. Each answer must be
documented: its status code, its content type and its body's shape. Bounded and seeded: a few
cases per operation, the same ones on every run.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime

import pytest
import schemathesis
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from classifier.engine.preprocessing import PreprocessSpec
from classifier.models import DatasetSnapshot, Prediction, TrainingRun
from classifier.services.registry import version_activate, version_register
from observations.models import Observation
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from tests.conftest import ORDESA
from tests.images import make_photo, photo_upload

pytestmark = pytest.mark.django_db


def no_server_error(ctx, response, case):
    """No 5xx, but the documented 503 of identify when no inference worker answers in time."""
    if response.status_code == 503 and "503" in case.operation.definition.raw["responses"]:
        return True
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@functools.cache
def api_schema():
    """The schema drf-spectacular generates (as /api/schema/ serves it), loaded by Schemathesis;
    made on first use, not while pytest collects the suite."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(generated)))


def operations() -> list[tuple[str, str, object]]:
    """(method, path, operation) for every operation of the schema."""
    found = [operation.ok() for operation in api_schema().get_all_operations()]
    return sorted(((op.method.upper(), op.path, op) for op in found), key=lambda row: row[:2])


def _settings(examples: int):
    return hypothesis_settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def wsgi_in_test_transaction():
    """The real WSGI handler closes "old" connections at each request's start and end, which
    would end the test's transaction; Django's test client does the same as this."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(campaign, taxa, visitor, other_visitor, curator, admin_user, settings, tmp_path):
    """Sightings, a classifier, a snapshot and a training run, so ids in paths can exist."""
    settings.IDENTIFY_TIMEOUT_SECONDS = 0.05
    mine = observation_submit(
        photos=[photo_upload(width=64, height=48, seed=1)],
        observer=visitor,
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        accuracy_m=5,
        observed_at=datetime(2026, 6, 1, 10, 30),
    ).observation
    confirmed = observation_submit(
        photos=[photo_upload(width=64, height=48, seed=2)],
        observer=other_visitor,
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        observed_at=datetime(2026, 6, 2, 10, 30),
    ).observation
    review_decide(observation=confirmed, curator=curator, decision="confirm", taxon=taxa[0])
    weights = tmp_path / "fake.keras"
    weights.write_bytes(b"not a real model")
    labels = sorted(taxon.scientific_name for taxon in taxa)
    version = version_register(
        name="Fuzz model",
        campaign=campaign,
        backend="keras",
        weights_path=weights,
        labels=labels,
        spec=PreprocessSpec.xception(32),
    )
    version = version_activate(version=version)
    snapshot = DatasetSnapshot.objects.create(campaign=campaign, version=1, labels=labels)
    run = TrainingRun.objects.create(campaign=campaign, snapshot=snapshot, parameters={})
    # The AI's answer for one sighting, a raw label without a taxon among it.
    Prediction.objects.bulk_create(
        [
            Prediction(
                observation=mine,
                version=version,
                rank=1,
                taxon=taxa[1],
                label=taxa[1].scientific_name,
                probability=0.7,
                tta="none",
            ),
            Prediction(
                observation=mine,
                version=version,
                rank=2,
                taxon=None,
                label="background",
                probability=0.3,
                tta="none",
            ),
        ]
    )
    Observation.objects.filter(pk=mine.pk).update(
        status=Observation.Status.CLASSIFIED,
        ai_taxon=taxa[1],
        ai_label=taxa[1].scientific_name,
        ai_score=0.7,
        ai_entropy=0.6,
    )
    assert Observation.objects.count() == 2 and snapshot.pk and run.pk
    return {
        "uuid": [str(mine.uuid), str(confirmed.uuid)],
        "id": [str(version.pk), str(run.pk)],
        "users": {
            "admin": admin_user,
            "curator": curator,
            "visitor": visitor,
        },
    }


def _strategy(operation, mode: GenerationMode, known: dict):
    names = {parameter.name for parameter in operation.path_parameters}
    random = operation.as_strategy(generation_mode=mode)
    if not names:
        return random
    fixed = [
        operation.as_strategy(generation_mode=mode, path_parameters=dict.fromkeys(names, value))
        for name in names
        for value in known[name]
    ]
    return st.one_of(*fixed, random)


def _has_inputs(operation) -> bool:
    """Whether there is anything to send wrong (else negative cases cannot be drawn)."""
    return bool(len(operation.path_parameters) or len(operation.query) or len(operation.body))


def _run(
    operation,
    *,
    headers: dict,
    cookies: dict,
    mode: GenerationMode,
    examples: int,
    known: dict,
    app,
):
    if mode == GenerationMode.NEGATIVE and not _has_inputs(operation):
        return

    @_settings(examples)
    @given(case=_strategy(operation, mode, known))
    def check(case):
        response = case.call(headers=headers, cookies=cookies, app=app)
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()


def _credentials(who: str, users: dict) -> tuple[dict, dict]:
    """(headers, cookies) a client of this kind sends."""
    if who == "anonymous":
        return {}, {}
    if who == "expired token":
        return {"Authorization": "Token 0000000000000000000000000000000000000000"}, {}
    if who == "session without CSRF token":
        # A signed-in browser whose script forgot the CSRF header: its writes are refused.
        browser = Client()
        browser.force_login(users["visitor"])
        return {}, {
            settings.SESSION_COOKIE_NAME: browser.cookies[settings.SESSION_COOKIE_NAME].value
        }
    token = Token.objects.get_or_create(user=users[who])[0]
    return {"Authorization": f"Token {token.key}"}, {}


# Cases per operation: (valid, invalid). The admin reaches every operation's logic; the others
# mostly meet the refusals, which must be documented too.
ROLES = {
    "admin": (15, 10),
    "curator": (6, 4),
    "visitor": (5, 0),
    "anonymous": (5, 0),
    "expired token": (3, 0),
    "session without CSRF token": (3, 0),
}


@pytest.mark.parametrize("who", ROLES)
def test_every_answer_is_documented(who, world, wsgi_in_test_transaction):
    headers, cookies = _credentials(who, world["users"])
    valid, invalid = ROLES[who]
    failures = []
    for method, path, operation in operations():
        for mode, examples in (
            (GenerationMode.POSITIVE, valid),
            (GenerationMode.NEGATIVE, invalid),
        ):
            if not examples:
                continue
            try:
                _run(
                    operation,
                    headers=headers,
                    cookies=cookies,
                    mode=mode,
                    examples=examples,
                    known=world,
                    app=wsgi_in_test_transaction,
                )
            except (Exception, FailureGroup) as exc:  # try them all, report every failure
                failures.append(f"{method} {path} as {who}, {mode.value} cases:\n{exc}")

    assert not failures, "\n\n".join(failures)


def test_a_body_of_another_media_type_is_a_documented_415(world, wsgi_in_test_transaction):
    headers, cookies = _credentials("admin", world["users"])
    failures = []
    for method, path, operation in operations():
        if not len(operation.body):
            continue
        names = {parameter.name for parameter in operation.path_parameters}
        case = operation.Case(
            path_parameters={name: world[name][0] for name in names},
            headers=headers,
            media_type="application/octet-stream",
            body=b"latitude=91",
        )
        response = case.call(cookies=cookies, app=wsgi_in_test_transaction)
        try:
            case.validate_response(response, checks=CHECKS)
            assert response.status_code == 415, (method, path, response.status_code)
            assert response.json()["error"] == "unsupported_media_type"
        except (Exception, FailureGroup) as exc:
            failures.append(f"{method} {path}: {exc}")

    assert not failures, "\n\n".join(failures)


def test_a_sighting_sent_and_sent_again_is_answered_as_documented(world, wsgi_in_test_transaction):
    operation = api_schema()["/api/v1/observations/"]["POST"]
    headers, _ = _credentials("visitor", world["users"])
    body = {
        "photos": [make_photo(width=64, height=48, seed=7)],
        "latitude": ORDESA[0],
        "longitude": ORDESA[1],
        "observed_at": "2026-06-03T10:00:00+02:00",
        "client_uuid": "6f1c1f7e-3f0e-4a51-9d1f-0c0ffee00001",
    }
    statuses = []
    for _attempt in range(2):
        case = operation.Case(headers=headers, body=body, media_type="multipart/form-data")
        response = case.call(app=wsgi_in_test_transaction)
        case.validate_response(response, checks=CHECKS)
        statuses.append(response.status_code)

    assert statuses == [201, 200]
    assert Observation.objects.count() == 3


def test_identify_without_a_worker_is_answered_as_documented(world, wsgi_in_test_transaction):
    operation = api_schema()["/api/v1/identify/"]["POST"]
    case = operation.Case(
        body={"photos": [make_photo(width=64, height=48, seed=8)]},
        media_type="multipart/form-data",
    )

    response = case.call(app=wsgi_in_test_transaction)

    case.validate_response(response, checks=CHECKS)
    assert response.status_code == 503
    assert response.json()["error"] == "inference_unavailable"


def _string_fields(schema: dict) -> list[str]:
    return [
        name
        for name, spec in (schema.get("properties") or {}).items()
        if spec.get("type") == "string" and "format" not in spec
    ]


def test_a_nul_character_in_any_text_input_is_a_documented_4xx(world, wsgi_in_test_transaction):
    # PostgreSQL refuses NUL in text: a value that reaches a query unchecked is a 500 there.
    headers, cookies = _credentials("admin", world["users"])
    failures, tried = [], 0
    for method, path, operation in operations():
        names = {parameter.name for parameter in operation.path_parameters}
        known = {name: world[name][0] for name in names}
        inputs = [("query", parameter.name) for parameter in operation.query]
        raw_body = operation.definition.raw.get("requestBody", {}).get("content", {})
        json_body = raw_body.get("application/json", {}).get("schema")
        if json_body:
            resolved = api_schema().raw_schema["components"]["schemas"][
                json_body["$ref"].split("/")[-1]
            ]
            inputs += [("body", name) for name in _string_fields(resolved)]
        for where, name in inputs:
            value = "ordesa\x00invasives"
            if where == "query":
                case = operation.Case(path_parameters=known, headers=headers, query={name: value})
            else:
                case = operation.Case(
                    path_parameters=known,
                    headers=headers,
                    body={name: value},
                    media_type="application/json",
                )
            response = case.call(cookies=cookies, app=wsgi_in_test_transaction)
            tried += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, FailureGroup) as exc:
                failures.append(f"{method} {path} {where} {name}: {exc}")

    assert not failures, "\n\n".join(failures)
    assert tried > 30  # every text filter and JSON text field, not a handful
