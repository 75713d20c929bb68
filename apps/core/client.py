"""The address a request came from, the one way every part of Slipway reads it.

By default that is ``REMOTE_ADDR``, the peer of the TCP connection: a client cannot
forge it. ``X-Forwarded-For`` is only believed when the deployment says how many
reverse proxies it runs behind (``SLIPWAY_TRUSTED_PROXY_COUNT``): each proxy appends
the address it saw, so the client is the N-th entry from the right, and anything left
of it was written by the client and is ignored. Sign-in lockouts (django-axes) and API
throttles key on this, so a spoofed header must not reset them.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_address(request) -> str:
    """The client's address as a string, or "" when the request carries none."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = getattr(settings, "SLIPWAY_TRUSTED_PROXY_COUNT", 0)
    if not proxies:
        return remote
    forwarded = [
        part.strip()
        for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if part.strip()
    ]
    if len(forwarded) < proxies:
        # Fewer hops than proxies: the request did not come through all of them (or a
        # proxy is misconfigured); the peer is the best we know.
        return remote
    candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
