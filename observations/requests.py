"""The viewer behind a request: a user, plus the sightings this browser sent anonymously."""

from __future__ import annotations

from observations.geoprivacy import Viewer

SESSION_KEY = "parkwatch_own_sightings"
MAX_REMEMBERED = 200


def viewer_from_request(request) -> Viewer:
    session = getattr(request, "session", None)
    own = frozenset(session.get(SESSION_KEY, [])) if session is not None else frozenset()
    return Viewer(user=getattr(request, "user", None), own_uuids=own)


def remember_own_sighting(request, observation) -> None:
    """Anonymous visitors follow their sightings through their session."""
    session = getattr(request, "session", None)
    if session is None:
        return
    own = [uuid for uuid in session.get(SESSION_KEY, []) if uuid != str(observation.uuid)]
    own.append(str(observation.uuid))
    session[SESSION_KEY] = own[-MAX_REMEMBERED:]
