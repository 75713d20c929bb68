"""API wiring shared by every app's API: error format, domain-error mapping, pagination."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import Throttled
from rest_framework.exceptions import ValidationError as DrfValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import Conflict, DomainError, Forbidden, NotFound, Unavailable


def exception_handler(exc, context):
    """Map domain errors raised by service functions to HTTP answers a person can act on.

    Illegal transitions and races -> 409, wrong role -> 403, missing object -> 404,
    bad input -> 400; every body is ``{"detail": "<sentence>"}`` (plus field errors).
    """
    if isinstance(exc, DomainError):
        code = status.HTTP_400_BAD_REQUEST
        for cls, mapped in (
            (Conflict, status.HTTP_409_CONFLICT),
            (Forbidden, status.HTTP_403_FORBIDDEN),
            (NotFound, status.HTTP_404_NOT_FOUND),
            (Unavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
        ):
            if isinstance(exc, cls):
                code = mapped
        body = {"detail": exc.message}
        if exc.field_errors:
            body["errors"] = exc.field_errors
        body.update({k: v for k, v in exc.extra.items() if k not in ("detail", "errors")})
        return Response(body, status=code)
    if isinstance(exc, DjangoValidationError):
        messages = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response({"detail": "; ".join(exc.messages), "errors": messages}, status=400)
    if isinstance(exc, DjangoPermissionDenied):
        return Response({"detail": str(exc) or "You do not have permission."}, status=403)
    if isinstance(exc, DrfValidationError):
        # DRF answers a serializer error with {"field": ["..."]} and no "detail", which
        # is not the documented Error shape (found by the schemathesis run in
        # tests/hardening/test_api_fuzz.py): keep the field errors under "errors" and
        # say in one sentence what is wrong.
        return Response(_validation_body(exc.detail), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Throttled):
        # DRF's default says "Request was throttled."; say what to do. The Retry-After
        # header is added by DRF's handler below from exc.wait.
        wait = f"in {exc.wait} seconds" if exc.wait is not None else "later"
        exc.detail = f"Too many API requests; the limit resets {wait}. Slow down, then retry."
    return drf_exception_handler(exc, context)


def _validation_body(detail) -> dict:
    if isinstance(detail, dict):
        errors = {str(field): _messages(value) for field, value in detail.items()}
        sentence = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        return {"detail": f"Invalid input: {sentence}", "errors": errors}
    messages = _messages(detail)
    return {"detail": " ".join(messages) or "Invalid input."}


def _messages(value) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in _messages(v)]
    if isinstance(value, list | tuple):
        return [m for item in value for m in _messages(item)]
    return [str(value)]


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """limit/offset paging that refuses what it cannot honour with a 400.

    DRF's own paginator silently ignores ``limit=abc`` or ``offset=-1`` and passes an
    offset of 10**20 to the database, which PostgreSQL refuses with a 500 ("bigint out of
    range"). Found by the schemathesis run in tests/hardening/test_api_fuzz.py.
    """

    max_limit = 500
    max_offset = 10**9

    def get_limit(self, request):
        raw = request.query_params.get(self.limit_query_param)
        if raw is None:
            return self.default_limit
        return self._bounded(self.limit_query_param, raw, 1, self.max_limit)

    def get_offset(self, request):
        raw = request.query_params.get(self.offset_query_param)
        if raw is None:
            return 0
        return self._bounded(self.offset_query_param, raw, 0, self.max_offset)

    @staticmethod
    def _bounded(name: str, raw: str, low: int, high: int) -> int:
        message = f"{name} must be a whole number from {low} to {high}."
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            raise DrfValidationError({name: [message]})
        value = int(raw)
        if not low <= value <= high:
            raise DrfValidationError({name: [message]})
        return value

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit},
            self.offset_query_param: {"minimum": 0, "maximum": self.max_offset},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters


def not_found(request, exception=None):
    """404 for the whole site: JSON under /api/ (what an API client can parse), the
    HTML page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "No API endpoint at this address; the API is described at /api/v1/docs/."},
            status=404,
        )
    return page_not_found(request, exception)
