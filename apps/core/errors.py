"""Domain errors raised by service functions, shared by every app.

Views and API views translate them: forms show the message, the API answers with the
matching status code (apps.core.api.exception_handler). Messages are sentences a
person can act on: what is wrong and what to do instead.
"""

from __future__ import annotations


class DomainError(Exception):
    """Bad input: 400."""

    def __init__(
        self,
        message: str,
        *,
        field_errors: dict[str, list[str]] | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field_errors = field_errors or {}
        # Machine-readable details the API adds to the body next to "detail" (a freeze's
        # end time, say), for scripts that should not parse the sentence.
        self.extra = extra or {}


class Conflict(DomainError):
    """The action does not fit the object's current state (illegal transition, race): 409."""


class Forbidden(DomainError):
    """The actor's role does not allow the action: 403."""


class NotFound(DomainError):
    """The object does not exist or is not visible: 404."""


class Unavailable(DomainError):
    """A system the action needs (MLflow, git, the cluster) did not answer: 503, try again."""
