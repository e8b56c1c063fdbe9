"""Uploads are throttled per client: the user when signed in, else the client address.

The same throttle guards the API and the upload page. Its counts live in the cache: Redis in
production (shared by every web process), local memory in the embedded default.

When the shared cache cannot be reached (Redis down or restarting) the counts move to this
process's own memory until it answers again, rather than failing the upload or letting every
upload through. A sighting lost to a cache outage costs more than a few extra uploads: the
throttle is a courtesy limit, not a security measure (DRF says as much), and each process
still caps a client at the rate, so a flood stays bounded by rate x web processes.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache as default_cache
from django.core.cache.backends.locmem import LocMemCache
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)

# How long the throttle keeps to local memory after the shared cache failed, before trying it
# again (so an outage costs one failed round trip per interval, not one per upload).
RETRY_SHARED_AFTER_SECONDS = 5.0


class FallbackCache:
    """The shared cache, or this process's memory while the shared one raises."""

    def __init__(self, shared, local) -> None:
        self.shared = shared
        self.local = local
        self._down_until = 0.0

    def _shared_call(self, method: str, *args):
        if time.monotonic() < self._down_until:
            return getattr(self.local, method)(*args)
        try:
            return getattr(self.shared, method)(*args)
        except Exception as exc:  # the backend's own errors (redis.ConnectionError, timeouts...)
            self._down_until = time.monotonic() + RETRY_SHARED_AFTER_SECONDS
            logger.warning(
                "Throttle cache unreachable (%s: %s); counting in this process for now.",
                type(exc).__name__,
                exc,
            )
            return getattr(self.local, method)(*args)

    def get(self, key, default=None):
        return self._shared_call("get", key, default)

    def set(self, key, value, timeout=None):
        return self._shared_call("set", key, value, timeout)


_cache = FallbackCache(default_cache, LocMemCache("parkwatch-throttle-fallback", {}))


class UploadRateThrottle(SimpleRateThrottle):
    scope = "uploads"
    cache = _cache

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        ident = user.pk if getattr(user, "is_authenticated", False) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
