"""Request-level guards that apply before any view runs."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

from apps.core.jsoninput import json_input_problem, unstorable_text


class BodySizeLimitMiddleware:
    """Refuse request bodies above MAX_REQUEST_BODY_BYTES with 413.

    Django's own DATA_UPLOAD_MAX_MEMORY_SIZE only fires when a view reads the POST data,
    and a chunked body has no Content-Length; checking here gives every route, API or
    form, the same clear answer before anything is parsed.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.MAX_REQUEST_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
        if length > limit:
            return JsonResponse(
                {
                    "detail": (
                        f"Request body is {length} bytes; the limit is {limit} bytes. "
                        "Send a smaller body (reasons and comments are plain text)."
                    )
                },
                status=413,
            )
        return self.get_response(request)


class UnstorableInputMiddleware:
    """Refuse input PostgreSQL cannot store, and JSON too deep to parse, before any view.

    A NUL byte in a path, query string or form field, ``\\u0000`` or a lone surrogate in
    a JSON body, or JSON nested 100,000 levels each reached the database (or the
    recursive parser) and came back as a 500. One check here covers every route, API,
    page and admin alike: a path that holds one names no page (404); a query string or
    body is bad input (400) and the answer says where. Runs after the body-size limit,
    so what it reads is bounded.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = unstorable_text(request.path_info)
        if problem:
            return JsonResponse(
                {"detail": f"No page here: the address holds {problem}."}, status=404
            )
        answer = _query_problem(request) or _body_problem(request)
        if answer:
            return JsonResponse({"detail": answer}, status=400)
        return self.get_response(request)


def _query_problem(request) -> str | None:
    for key, values in request.GET.lists():
        for text in (key, *values):
            problem = unstorable_text(text)
            if problem:
                return f"The query parameter {key[:40]!r} holds {problem}; remove it."
    return None


def _body_problem(request) -> str | None:
    if request.method in ("GET", "HEAD", "OPTIONS") or not request.META.get("CONTENT_LENGTH"):
        return None
    content_type = request.content_type or ""
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            text = request.body.decode(request.encoding or "utf-8")
        except UnicodeDecodeError:
            return None  # the JSON parser says "not UTF-8" in its own words
        return json_input_problem(text)
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, values in request.POST.lists():
            for text in (key, *values):
                problem = unstorable_text(text)
                if problem:
                    return f"The form field {key[:40]!r} holds {problem}; remove it."
    return None
