"""Audit tasks: thin wrappers around services (names are part of the queue's contract)."""

from __future__ import annotations

from celery import shared_task

from apps.audit import services


@shared_task(
    name="audit.checkpoint",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=540,
    time_limit=600,
)
def audit_checkpoint_task() -> dict:
    """Beat: verify the chain and anchor its head outside the database (docs/integrity.md).

    Harmless when redelivered or run twice: an unchanged head is not anchored again.
    """
    return services.audit_checkpoint().as_dict()
