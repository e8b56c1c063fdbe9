"""Sign up, sign in and sign out with the site's own pages."""

from datetime import datetime

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from observations.models import Observation
from observations.requests import SESSION_KEY
from observations.roles import VISITOR_GROUP
from tests.conftest import ORDESA
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

PASSWORD = "a-long walk in Ordesa"


def signup(client, **data):
    fields = {
        "username": "walker",
        "email": "walker@example.org",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    return client.post(reverse("signup"), {**fields, **data})


def test_signup_creates_a_visitor_and_signs_them_in(client):
    response = signup(client)

    user = get_user_model().objects.get(username="walker")
    assert response.status_code == 302
    assert response["Location"] == reverse("my-sightings")
    assert list(user.groups.values_list("name", flat=True)) == [VISITOR_GROUP]
    assert user.email == "walker@example.org"
    assert client.get(reverse("my-sightings")).context["user"] == user


def test_signup_goes_back_to_a_local_next_page_only(client):
    local = signup(client, next="/sightings/")
    client.logout()
    elsewhere = signup(
        client, username="walker2", email="w2@example.org", next="https://evil.example/"
    )

    assert local["Location"] == "/sightings/"
    assert elsewhere["Location"] == reverse("my-sightings")


def test_signup_explains_what_is_wrong(client, visitor):
    response = signup(client, password2="something else", email=visitor.email)

    html = response.content.decode()
    assert response.status_code == 400
    assert "The two password fields didn’t match." in html
    assert "An account with this e-mail already exists" in html
    assert not get_user_model().objects.filter(username="walker").exists()


def test_login_page_signs_a_visitor_in_and_logout_signs_them_out(client, visitor):
    page = client.get(reverse("login"))
    signed_in = client.post(
        reverse("login"), {"username": "visitor", "password": "correct horse battery"}
    )
    nav = client.get(reverse("my-sightings")).content.decode()
    signed_out = client.post(reverse("logout"))

    assert "Sign in" in page.content.decode()
    assert signed_in.status_code == 302
    assert signed_in["Location"] == reverse("my-sightings")
    assert "Sign out" in nav
    assert signed_out["Location"] == reverse("home")
    assert "Sign out" not in client.get(reverse("home")).content.decode()


def test_login_says_when_the_password_is_wrong(client, visitor):
    response = client.post(reverse("login"), {"username": "visitor", "password": "wrong"})

    assert response.status_code == 200
    assert "Please enter a correct username and password." in response.content.decode()


def test_the_menu_shows_review_to_curators_and_dashboard_and_admin_to_admins(
    client, curator, admin_user, visitor
):
    client.force_login(visitor)
    as_visitor = client.get(reverse("home")).content.decode()
    client.force_login(curator)
    as_curator = client.get(reverse("home")).content.decode()
    client.force_login(admin_user)
    as_admin = client.get(reverse("home")).content.decode()

    assert 'href="/review/"' not in as_visitor and 'href="/dashboard/"' not in as_visitor
    assert 'href="/review/"' in as_curator and 'href="/dashboard/"' not in as_curator
    assert 'href="/dashboard/"' in as_admin and 'href="/admin/"' in as_admin


# --- anonymous sightings join the account ------------------------------------------------------


def send_anonymously(client) -> Observation:
    response = client.post(
        reverse("home"),
        {
            "photos": [photo_upload(gps=ORDESA, taken_at=datetime(2025, 6, 1, 10, 30))],
            "licence": "CC-BY-4.0",
        },
    )
    assert response.status_code == 302
    return Observation.objects.get(uuid=response["Location"].split("/")[-2])


def test_signing_in_attaches_the_sightings_sent_anonymously_in_this_session(
    client, campaign, visitor
):
    sighting = send_anonymously(client)
    assert sighting.observer is None

    response = client.post(
        reverse("login"), {"username": "visitor", "password": "correct horse battery"}, follow=True
    )

    sighting.refresh_from_db()
    assert sighting.observer == visitor
    assert "1 sighting sent from this browser is now in your account." in response.content.decode()
    assert [s.uuid for s in response.context["sightings"]] == [sighting.uuid]


def test_signing_up_attaches_the_sightings_sent_anonymously_in_this_session(client, campaign):
    first, second = send_anonymously(client), send_anonymously(client)

    response = signup(client)

    user = get_user_model().objects.get(username="walker")
    assert response.status_code == 302
    assert set(user.observations.all()) == {first, second}
    assert client.session[SESSION_KEY] == [str(first.uuid), str(second.uuid)]  # the list stays


def test_signing_in_never_takes_someone_elses_sighting(client, campaign, visitor, other_visitor):
    theirs = send_anonymously(client)
    Observation.objects.filter(pk=theirs.pk).update(observer=other_visitor)

    client.post(reverse("login"), {"username": "visitor", "password": "correct horse battery"})

    theirs.refresh_from_db()
    assert theirs.observer == other_visitor


def test_a_failed_sign_in_attaches_nothing(client, campaign, visitor):
    sighting = send_anonymously(client)

    client.post(reverse("login"), {"username": "visitor", "password": "wrong"})

    sighting.refresh_from_db()
    assert sighting.observer is None
