"""Uploads are throttled per client: the user when signed in, else the client address.

The same throttle guards the API and the upload page. Its counts live in the cache: Redis in
production (shared by every web process), local memory in the embedded default.
"""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle


class UploadRateThrottle(SimpleRateThrottle):
    scope = "uploads"

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        ident = user.pk if getattr(user, "is_authenticated", False) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
