"""A request id for every request: accepted from X-Request-ID when well-formed,
generated otherwise, echoed back, attached to log lines and to audit rows."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# fullmatch, not match: "$" also matches before a final newline, and an id "abc\n" echoed
# into the response header was a 500 (BadHeaderError).
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def current_request_id() -> str:
    return _request_id.get()


def bind_request_id(value: str) -> contextvars.Token:
    """Bind an id outside a request (a Celery task passes on the id of its request)."""
    return _request_id.set(value if _SAFE_ID.fullmatch(value or "") else uuid.uuid4().hex)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        token = bind_request_id(incoming)
        request.request_id = _request_id.get()
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # django.request logs 4xx/5xx after the middleware has unbound the id: fall back
        # to the id kept on the request the record carries.
        request = getattr(record, "request", None)
        record.request_id = _request_id.get() or getattr(request, "request_id", "") or "-"
        return True
