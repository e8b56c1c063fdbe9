"""GET /api/v1/observations/: the sightings a viewer may see, with the positions they may see."""

from __future__ import annotations

import pytest

from observations.models import Observation
from observations.services.submission import observation_submit
from tests.conftest import ORDESA, OUTSIDE
from tests.factories import CampaignFactory
from tests.images import make_photo, photo_upload, upload
from tests.observations.api.conftest import API, JUNE_FIRST, post_sighting

pytestmark = pytest.mark.django_db

CONFIRMED = Observation.Status.CONFIRMED
# A point in the test park whose digits appear nowhere else in an answer.
SECRET_SPOT = (42.63917, -0.04781)


def uuids(response) -> set[str]:
    assert response.status_code == 200, response.json()
    return {row["uuid"] for row in response.json()["results"]}


def test_a_visitor_sees_their_own_and_confirmed_sightings_only(
    signed_in, sighting, visitor, other_visitor
):
    mine = sighting(observer=visitor)
    theirs_pending = sighting(observer=other_visitor)
    theirs_confirmed = sighting(observer=other_visitor, status=CONFIRMED)
    anonymous_rejected = sighting(status=Observation.Status.REJECTED)

    shown = uuids(signed_in(visitor).get(API))

    assert shown == {str(mine.uuid), str(theirs_confirmed.uuid)}
    assert str(theirs_pending.uuid) not in shown
    assert str(anonymous_rejected.uuid) not in shown


def test_mine_lists_only_the_viewers_own_sightings(signed_in, sighting, visitor, other_visitor):
    mine = sighting(observer=visitor)
    theirs = sighting(observer=other_visitor, status=CONFIRMED)

    assert uuids(signed_in(visitor).get(API, {"mine": "1"})) == {str(mine.uuid)}
    assert uuids(signed_in(other_visitor).get(API, {"mine": "1"})) == {str(theirs.uuid)}


def test_an_anonymous_visitor_sees_confirmed_sightings_and_those_sent_from_this_browser(
    api, sighting, other_visitor, campaign
):
    confirmed = sighting(observer=other_visitor, status=CONFIRMED)
    pending = sighting(observer=other_visitor)
    assert uuids(api.get(API)) == {str(confirmed.uuid)}
    assert uuids(api.get(API, {"mine": "1"})) == set()

    sent = post_sighting(api, [photo_upload(gps=ORDESA, taken_at=JUNE_FIRST)]).json()

    assert uuids(api.get(API)) == {str(confirmed.uuid), sent["uuid"]}
    assert uuids(api.get(API, {"mine": "1"})) == {sent["uuid"]}
    assert str(pending.uuid) not in uuids(api.get(API))


def test_curators_and_admins_see_every_sighting(signed_in, sighting, visitor, curator, admin_user):
    every = {
        str(sighting(observer=visitor).uuid),
        str(sighting().uuid),
        str(sighting(status=Observation.Status.REJECTED).uuid),
    }

    assert uuids(signed_in(curator).get(API)) == every
    assert uuids(signed_in(admin_user).get(API)) == every


def test_it_filters_by_status_campaign_and_park(signed_in, sighting, curator, park):
    conus = CampaignFactory(name="Conus", slug="conus")
    in_park = sighting()
    confirmed = sighting(status=CONFIRMED)
    outside = sighting(position=OUTSIDE)
    other_campaign = sighting(campaign=conus)
    client = signed_in(curator)

    assert uuids(client.get(API, {"status": "confirmed"})) == {str(confirmed.uuid)}
    assert uuids(client.get(API, {"campaign": "conus"})) == {str(other_campaign.uuid)}
    assert str(outside.uuid) not in uuids(client.get(API, {"park": park.slug}))
    assert str(in_park.uuid) in uuids(client.get(API, {"park": park.slug}))
    assert uuids(client.get(API, {"park": "no-such-park"})) == set()


def test_it_pages_with_limit_and_offset(signed_in, sighting, curator):
    made = [sighting() for _ in range(3)]

    first = signed_in(curator).get(API, {"limit": 2}).json()
    rest = signed_in(curator).get(API, {"limit": 2, "offset": 2}).json()

    assert first["count"] == 3
    assert len(first["results"]) == 2
    assert "offset=2" in first["next"]
    assert len(rest["results"]) == 1
    assert rest["next"] is None
    shown = {row["uuid"] for row in first["results"] + rest["results"]}
    assert shown == {str(observation.uuid) for observation in made}


@pytest.mark.parametrize("who", ["visitor", "curator"])
def test_the_list_runs_a_fixed_number_of_queries(
    signed_in, sighting, visitor, curator, taxa, django_assert_max_num_queries, who
):
    for index in range(8):
        sighting(observer=visitor, photos=2, guess=taxa[index % len(taxa)], status=CONFIRMED)
    # Two sightings of the same photo: the second is a possible duplicate of the first.
    photo = make_photo(gps=ORDESA, taken_at=JUNE_FIRST, seed=77)
    for _ in range(2):
        observation_submit(photos=[upload(photo)])
    client = signed_in(visitor if who == "visitor" else curator)

    # session, user, groups, count, sightings with their joins, photos, predictions
    with django_assert_max_num_queries(7):
        response = client.get(API)

    assert response.json()["count"] == (8 if who == "visitor" else 10)
    assert all(len(row["photos"]) >= 1 for row in response.json()["results"])


def test_a_sensitive_sighting_is_generalised_for_other_visitors_only(
    signed_in, sighting, visitor, other_visitor, curator, taxa
):
    orchid = taxa[3]
    assert orchid.is_sensitive
    observation = sighting(observer=visitor, position=SECRET_SPOT, guess=orchid, status=CONFIRMED)
    Observation.objects.filter(pk=observation.pk).update(altitude_m=1234.5)

    other = signed_in(other_visitor).get(API)
    [row] = other.json()["results"]

    assert row["position"]["generalised"] is True
    assert (row["position"]["latitude"], row["position"]["longitude"]) == (42.65, -0.05)
    assert row["position"]["accuracy_m"] >= 7000
    assert "generalised" in row["position"]["note"]
    assert row["altitude_m"] is None
    text = other.content.decode()
    for secret in ("42.63917", "-0.04781", "0.04781", "1234.5"):
        assert secret not in text

    for viewer in (visitor, curator):
        [row] = signed_in(viewer).get(API).json()["results"]
        assert row["position"]["generalised"] is False
        assert (row["position"]["latitude"], row["position"]["longitude"]) == SECRET_SPOT
        assert row["altitude_m"] == 1234.5


def test_an_anonymous_senders_session_sees_its_sensitive_sighting_exactly(api, campaign, taxa):
    from rest_framework.test import APIClient

    sent = post_sighting(
        api,
        [photo_upload(taken_at=JUNE_FIRST)],
        latitude=SECRET_SPOT[0],
        longitude=SECRET_SPOT[1],
        guess="Cypripedium calceolus",
    )
    assert sent.status_code == 201, sent.json()
    assert sent.json()["position"]["latitude"] == SECRET_SPOT[0]
    Observation.objects.update(status=CONFIRMED)

    [own] = api.get(API).json()["results"]
    stranger = APIClient().get(API)

    assert own["position"]["generalised"] is False
    assert own["position"]["latitude"] == SECRET_SPOT[0]
    assert stranger.json()["results"][0]["position"]["generalised"] is True
    assert "42.63917" not in stranger.content.decode()


def test_photos_are_public_copies_and_nothing_private_is_shown(
    signed_in, sighting, visitor, curator
):
    observation = sighting(
        observer=visitor, photos=2, status=CONFIRMED, observer_email="me@example.org"
    )

    text = signed_in(curator).get(API).content.decode()
    [row] = signed_in(curator).get(API).json()["results"]

    assert [photo["id"] for photo in row["photos"]] == [
        photo.pk for photo in observation.photos.order_by("position")
    ]
    for photo in row["photos"]:
        assert photo["image"].startswith("http://testserver/media/photos/")
        assert photo["thumbnail"].startswith("http://testserver/media/thumbnails/")
    assert "originals" not in text
    assert "me@example.org" not in text
    assert "visitor@example.org" not in text
    assert row["observer"] == "visitor"


def test_possible_duplicates_are_shown_to_curators_only(signed_in, visitor, curator, campaign):
    photo = make_photo(gps=ORDESA, taken_at=JUNE_FIRST, seed=3)
    first = observation_submit(photos=[upload(photo)], observer=visitor).observation
    second = observation_submit(photos=[upload(photo)], observer=visitor).observation
    assert second.possible_duplicate_of == first

    by_curator = {row["uuid"]: row for row in signed_in(curator).get(API).json()["results"]}
    by_observer = {row["uuid"]: row for row in signed_in(visitor).get(API).json()["results"]}

    assert by_curator[str(second.uuid)]["possible_duplicate_of"] == str(first.uuid)
    assert by_curator[str(first.uuid)]["possible_duplicate_of"] is None
    assert by_observer[str(second.uuid)]["possible_duplicate_of"] is None
