"""Request-level guards that apply before any view runs."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse


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
