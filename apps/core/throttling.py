"""API rate limits: DRF throttles that key on ``apps.core.client.client_address`` and
say in their 429 when to come back.

DRF's own ``get_ident`` believes ``X-Forwarded-For`` unless ``NUM_PROXIES`` is set, so
a client could choose its own bucket; these use the one address reader of the app.
The counters live in Django's default cache (Redis in production: ``CACHE_URL``), so
every web process shares one budget per client.
"""

from __future__ import annotations

import logging

from rest_framework import throttling
from rest_framework.settings import api_settings

from apps.core.client import client_address

log = logging.getLogger("slipway.throttle")


class _Throttle:
    def get_ident(self, request):
        return client_address(request) or "unknown"

    def throttle_failure(self):
        # Logged, not audited: a throttled request changed nothing, and an audit row per
        # refused request would let a flood grow the chain.
        request = getattr(self, "_request", None)
        auth = getattr(request, "auth", None)
        log.warning(
            "API request throttled",
            extra={
                "scope": self.scope,
                "client": self.get_ident(request) if request is not None else "",
                "token_prefix": getattr(auth, "prefix", ""),
                "user": getattr(getattr(request, "user", None), "username", ""),
            },
        )
        return False

    def get_rate(self):
        # DRF binds THROTTLE_RATES when the class is defined; read the setting now, so
        # a deployment's (or a test's) rates are the ones in force.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        self._request = request
        try:
            return super().allow_request(request, view)
        except Exception:
            # The cache (Redis) is down: serve the request unthrottled rather than fail
            # every API call; the outage shows in /readyz and the logs.
            log.exception("API throttle cache unavailable; request not throttled")
            return True


class UserRateThrottle(_Throttle, throttling.UserRateThrottle):
    """Per signed-in person (session or API token): ``API_THROTTLE_USER``."""


class AnonRateThrottle(_Throttle, throttling.AnonRateThrottle):
    """Per client address for requests without credentials: ``API_THROTTLE_ANON``."""
