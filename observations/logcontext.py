"""The sighting that a request or a task is working on, for every line it logs.

`webapp.logs.ContextFilter` copies it onto each log record (the JSON logs' `observation`); code
that logs about a sighting outside such a block passes `extra={"observation": uuid}` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_sighting: ContextVar[str | None] = ContextVar("parkwatch_sighting", default=None)


@contextmanager
def sighting_context(uuid) -> Iterator[None]:
    """Within this block, every log line carries the sighting's public UUID."""
    token = _sighting.set(str(uuid))
    try:
        yield
    finally:
        _sighting.reset(token)


def current_sighting() -> str | None:
    return _sighting.get()


def sighting_extra(observation) -> dict[str, str]:
    """`extra=` for one log call about a sighting."""
    return {"observation": str(observation.uuid)}
