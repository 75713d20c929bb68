"""API wiring shared by every app's API: error format and domain-error mapping."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from controlplane.errors import Conflict, DomainError, Forbidden, NotFound


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
        ):
            if isinstance(exc, cls):
                code = mapped
        body = {"detail": exc.message}
        if exc.field_errors:
            body["errors"] = exc.field_errors
        return Response(body, status=code)
    if isinstance(exc, DjangoValidationError):
        messages = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response({"detail": "; ".join(exc.messages), "errors": messages}, status=400)
    if isinstance(exc, DjangoPermissionDenied):
        return Response({"detail": str(exc) or "You do not have permission."}, status=403)
    return drf_exception_handler(exc, context)
