"""Live fragments that stay cheap: answer a page's poll with 304 when nothing it shows
changed.

A live page polls small server-rendered fragments. Most polls find nothing new (the
metrics poll runs every 30 s, pages poll every few seconds), so each fragment view names a
*version key*: a few values from one or two indexed queries that change whenever what the
fragment shows changes (the newest audit event, the last metrics poll, ...). The key, the
URL and the user make the ETag; a request carrying that ETag in ``If-None-Match`` gets an
empty 304 before the view renders anything. static/js/live.js sends the ETag back and
treats 304 as "keep what is on screen".

Django's ``condition`` decorator does the HTTP part (If-None-Match matching, the 304);
this module adds what makes it safe for per-user, per-URL fragments.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from functools import wraps

from django.conf import settings
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import condition

# Bump when fragment markup changes in a way an old ETag must not hide after a deploy.
FRAGMENT_FORMAT = "1"

# How often live pages poll. Short enough that a breach or a rollback shows within
# seconds; each unchanged poll costs one or two indexed queries (a 304).
DEFAULT_POLL_SECONDS = 5


def poll_seconds() -> int:
    return int(getattr(settings, "LIVE_POLL_SECONDS", DEFAULT_POLL_SECONDS))


def minute_bucket() -> int:
    """Part of a key for fragments that show relative time ("since 03:39 (4 min)"): the
    text changes every minute even when the data does not."""
    return int(timezone.now().timestamp() // 60)


def etag_for(request, parts: Iterable) -> str:
    """A strong ETag for ``parts`` as seen by this user at this URL: the same data renders
    differently per user (permissions decide which buttons show) and per query string."""
    user_id = getattr(getattr(request, "user", None), "pk", None)
    raw = "\x1f".join(
        [FRAGMENT_FORMAT, str(user_id), request.get_full_path(), *(repr(p) for p in parts)]
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def shared_seconds() -> float:
    """How long a version key is reused in a process (``LIVE_VERSION_SHARED_SECONDS``)."""
    return float(getattr(settings, "LIVE_VERSION_SHARED_SECONDS", 1.0))


class _Recent:
    """Version keys computed in the last ``shared_seconds()``, per fragment and arguments,
    in this process. 500 open pages polling every 5 s ask for the same few keys 100 times a
    second; a key at most a second old is as good (the data behind it changes every 10
    to 30 s) and saves its queries for all but one request per second."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values: dict = {}

    def get(self, key, compute):
        now = time.monotonic()
        with self.lock:
            hit = self.values.get(key)
        if hit is not None and now - hit[0] < shared_seconds():
            return hit[1]
        value = compute()
        with self.lock:
            if len(self.values) > 10_000:  # URLs are user-chosen: bound the memory
                self.values.clear()
            self.values[key] = (now, value)
        return value


def live_fragment(version: Callable[..., Iterable]):
    """Decorate a GET view whose response is a polled fragment. ``version(*args,
    **kwargs)`` (the view's URL arguments) returns the key parts, the same for every
    user: what a user may see is added by ``etag_for``. It is reused for
    ``shared_seconds()`` in the process (0 turns that off) and left on the request as
    ``request.live_version``. A matching ``If-None-Match`` gets 304 without calling the
    view. Responses say ``Cache-Control: no-cache`` so browsers and
    proxies always revalidate (a poll must never be answered from a stale cache)."""
    recent = _Recent()

    def decorator(view):
        def etag_func(request, *args, **kwargs):
            # Computed once per request: condition() asks for it before and after the view.
            cached = getattr(request, "_live_etag", None)
            if cached is None:
                key = (args, tuple(sorted(kwargs.items())))
                if shared_seconds() > 0:
                    parts = recent.get(key, lambda: version(*args, **kwargs))
                else:
                    parts = version(*args, **kwargs)
                cached = etag_for(request, parts)
                request._live_etag = cached
                # The view may key its own per-process caches on it (the fleet's ranking).
                request.live_version = parts
            return cached

        conditional = condition(etag_func=etag_func)(view)

        @wraps(view)
        def wrapped(request, *args, **kwargs):
            response = conditional(request, *args, **kwargs)
            response["Cache-Control"] = "private, no-cache"
            patch_vary_headers(response, ("Cookie", "HX-Request"))
            return response

        return wrapped

    return decorator
