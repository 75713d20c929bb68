"""Fixtures: a real HTTP receiver and a real SMTP server per test, Slipway pointed at
them, and ``deliver_all`` to run every due delivery the way the worker does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.notifications.servers import Mailbox, Receiver, start_receiver, start_smtp

WEBHOOK_SECRET = "test-webhook-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(secret=WEBHOOK_SECRET)
    server = start_receiver(found)
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mailbox(settings) -> Iterator[Mailbox]:
    """aiosmtpd on a free port, and Django's real SMTP backend pointed at it (pytest-django
    would otherwise swap in the in-memory backend)."""
    box = Mailbox()
    controller = start_smtp(box)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = box.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def notification_settings(settings):
    settings.SLIPWAY_PUBLIC_URL = "https://slipway.example.com"
    settings.NOTIFICATIONS_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.NOTIFICATIONS_TIMEOUT_SECONDS = 2
    return settings


@pytest.fixture
def deliver_all():
    """Attempt every delivery that is waiting for its first attempt or is due now, as
    the deliver task and the sweep would; returns {delivery id: outcome}."""
    from apps.notifications.events import DeliveryState
    from apps.notifications.models import Delivery
    from apps.notifications.services import delivery_attempt

    def run(**kwargs) -> dict[int, str]:
        ids = Delivery.objects.filter(state=DeliveryState.PENDING).values_list("pk", flat=True)
        return {pk: delivery_attempt(delivery_id=pk, **kwargs) for pk in sorted(ids)}

    return run
