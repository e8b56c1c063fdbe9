"""The control follow-up page: confirmed invasive sightings, their steps, and recording the next."""

from __future__ import annotations

import html as html_module
import re
from datetime import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from observations.models import ControlEvent, Observation
from observations.services.control import control_advance
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from tests.conftest import ORDESA
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

CONTROL = reverse("control-cases")
_seeds = iter(range(9000, 100_000))


def confirmed(curator, taxon) -> Observation:
    """A sighting confirmed by a curator through the review service (follow-up opens)."""
    observation = observation_submit(
        photos=[photo_upload(width=64, height=48, seed=next(_seeds))],
        latitude=ORDESA[0],
        longitude=ORDESA[1],
        accuracy_m=10,
        observed_at=datetime(2026, 6, 1, 10, 30),
    ).observation
    review_decide(observation=observation, curator=curator, decision="confirm", taxon=taxon)
    observation.refresh_from_db()
    return observation


def advance_url(observation) -> str:
    return reverse("control-advance", kwargs={"uuid": observation.uuid})


def text_of(response) -> str:
    content = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", "", content)).split())


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def case_text(response, observation) -> str:
    content = response.content.decode()
    start = content.index(f'id="case-{observation.uuid}"')
    end = content.find('<li class="card control-case"', start)
    chunk = content[start : end if end != -1 else None]
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", "", chunk)).split())


@pytest.fixture
def curator_client(client, curator):
    client.force_login(curator)
    return client


@pytest.fixture
def knotweed(taxa):
    return taxa[1]


def test_it_refuses_visitors(client, visitor, curator, campaign, knotweed):
    case = confirmed(curator, knotweed)
    anonymous = client.get(CONTROL)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("login"))

    client.force_login(visitor)
    assert client.get(CONTROL).status_code == 403
    refused = client.post(advance_url(case), {"to_status": "assessed", "note": "Seen it."})
    assert refused.status_code == 403
    case.refresh_from_db()
    assert case.control_status == "reported"


def test_it_lists_open_cases_with_their_status_and_history(curator_client, curator, campaign, taxa):
    knotweed, orchid = taxa[1], taxa[3]
    open_case = confirmed(curator, knotweed)
    finished = confirmed(curator, taxa[2])
    for step in ("assessed", "treated", "monitoring", "eradicated"):
        control_advance(observation=finished, user=curator, to_status=step, note=f"Step {step}.")
    not_invasive = confirmed(curator, orchid)

    response = curator_client.get(CONTROL)

    assert response.status_code == 200
    page = response.content.decode()
    assert f'id="case-{open_case.uuid}"' in page
    assert f'id="case-{finished.uuid}"' not in page
    assert str(not_invasive.uuid) not in page
    text = case_text(response, open_case)
    assert "Japanese knotweed (Reynoutria japonica)" in text
    assert "Reported" in text
    assert "curator" in text and "Confirmed invasive sighting: follow-up opened." in text
    assert "Open 1" in text_of(response) and "All 2" in text_of(response)

    everything = curator_client.get(CONTROL, {"show": "all"})
    finished_text = case_text(everything, finished)
    assert "Eradicated" in finished_text
    assert "Step monitoring." in finished_text and "from monitoring" in finished_text


def test_it_moves_a_case_to_the_next_status_with_a_note(
    curator_client, curator, campaign, knotweed
):
    case = confirmed(curator, knotweed)

    response = curator_client.post(
        advance_url(case),
        {"to_status": "assessed", "note": "About 40 stems along 15 m of the bank."},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == f"{CONTROL}#case-{case.uuid}"
    assert (
        f"{str(case.uuid)[:8]}: Japanese knotweed (Reynoutria japonica) is now assessed."
        in messages_of(response)
    )
    case.refresh_from_db()
    assert case.control_status == "assessed"
    event = ControlEvent.objects.filter(observation=case).last()
    assert (event.from_status, event.to_status, event.user) == ("reported", "assessed", curator)
    assert event.note == "About 40 stems along 15 m of the bank."
    assert "About 40 stems along 15 m of the bank." in case_text(response, case)


def test_the_form_proposes_the_next_step(curator_client, curator, campaign, knotweed):
    case = confirmed(curator, knotweed)
    control_advance(observation=case, user=curator, to_status="assessed", note="Looked.")

    page = curator_client.get(CONTROL).content.decode()

    assert '<option value="treatment_scheduled" selected>' in page
    assert '<option value="assessed"' not in page.split(f'id="case-{case.uuid}"')[1]


def test_an_invalid_transition_is_refused_with_a_message(
    curator_client, curator, campaign, knotweed
):
    case = confirmed(curator, knotweed)
    control_advance(observation=case, user=curator, to_status="treated", note="Cut and covered.")
    events = ControlEvent.objects.count()

    response = curator_client.post(
        advance_url(case), {"to_status": "reported", "note": "Oops, start again."}
    )

    assert response.status_code == 400
    detail = "A follow-up cannot go back from treated to reported."
    assert f"{str(case.uuid)[:8]}: {detail}" in messages_of(response)
    assert detail in case_text(response, case)
    assert "Oops, start again." in case_text(response, case)  # the note is kept to fix
    case.refresh_from_db()
    assert case.control_status == "treated"
    assert ControlEvent.objects.count() == events


def test_a_step_needs_a_note(curator_client, curator, campaign, knotweed):
    case = confirmed(curator, knotweed)

    response = curator_client.post(advance_url(case), {"to_status": "assessed", "note": "  "})

    assert response.status_code == 400
    assert "Add a note: what was done or seen." in case_text(response, case)
    case.refresh_from_db()
    assert case.control_status == "reported"


def test_the_page_does_not_query_per_case(curator_client, curator, campaign, knotweed):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert curator_client.get(CONTROL).status_code == 200
        return len(queries)

    confirmed(curator, knotweed)
    few = queries_for_page()
    for _ in range(4):
        case = confirmed(curator, knotweed)
        control_advance(observation=case, user=curator, to_status="assessed", note="Looked.")

    assert queries_for_page() == few
