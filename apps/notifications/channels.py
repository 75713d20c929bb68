"""Sending one delivery: Slack-compatible webhook, generic signed webhook, e-mail.

Every call has a timeout (``NOTIFICATIONS_TIMEOUT_SECONDS``). Failures come back as
``DeliveryError``: ``permanent`` when sending again cannot help (a 4xx, a refused
recipient), otherwise the caller retries with backoff. Each channel carries the event
id as its dedupe key (``Idempotency-Key`` header and ``event_id`` in the body; the
e-mail ``Message-ID``), the same on every attempt, because a worker that dies between
sending and recording the success sends again (docs/notifications.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
from dataclasses import dataclass

import requests
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from apps.notifications.events import Channel

SIGNATURE_HEADER = "X-Slipway-Signature"
TIMESTAMP_HEADER = "X-Slipway-Timestamp"
EVENT_HEADER = "X-Slipway-Event-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Status codes worth another attempt: the receiver may answer differently later.
RETRYABLE_STATUS = frozenset({408, 425, 429})


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Message:
    """What a delivery says, whatever the channel."""

    event_id: str
    kind: str
    kind_label: str
    title: str
    text: str
    url: str
    created_at: str
    context: dict


def webhook_body(message: Message) -> bytes:
    """The generic webhook's JSON body (keys sorted, so the signed bytes are stable)."""
    payload = {
        "event_id": message.event_id,
        "kind": message.kind,
        "title": message.title,
        "text": message.text,
        "url": message.url,
        "created_at": message.created_at,
        "context": message.context,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 of ``<timestamp>.<body>`` with the shared secret: the
    timestamp is signed too, so a captured request cannot be replayed later with a new
    one (receivers reject timestamps older than a few minutes)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def slack_payload(message: Message) -> dict:
    """Slack's incoming-webhook format: ``text`` (the fallback every compatible
    receiver shows: Mattermost, Rocket.Chat, Teams' Slack connector) plus blocks."""
    link = f"<{message.url}|Open in Slipway>"
    text = f"*{message.title}*\n{message.text}\n{link}".strip()
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{message.title}*"}},
            *(
                [{"type": "section", "text": {"type": "mrkdwn", "text": message.text}}]
                if message.text
                else []
            ),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": link}]},
        ],
        "event_id": message.event_id,
    }


def send(*, channel: str, destination: str, message: Message) -> None:
    """Send ``message`` to ``destination`` over ``channel``; raises DeliveryError."""
    if channel == Channel.EMAIL:
        _send_email(destination, message)
    elif channel == Channel.SLACK:
        body = json.dumps(slack_payload(message)).encode()
        _post(destination, body, message.event_id, {})
    elif channel == Channel.WEBHOOK:
        secret = settings.NOTIFICATIONS_WEBHOOK_SECRET
        if not secret:
            raise DeliveryError(
                "NOTIFICATIONS_WEBHOOK_SECRET is not set: Slipway signs every generic "
                "webhook and will not send one unsigned.",
                permanent=True,
            )
        body = webhook_body(message)
        timestamp = str(int(time.time()))
        _post(
            destination,
            body,
            message.event_id,
            {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)},
        )
    else:
        raise DeliveryError(f"unknown channel {channel!r}", permanent=True)


def _post(url: str, body: bytes, event_id: str, headers: dict[str, str]) -> None:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Slipway-Notifications/1",
        IDEMPOTENCY_HEADER: event_id,
        EVENT_HEADER: event_id,
        **headers,
    }
    timeout = settings.NOTIFICATIONS_TIMEOUT_SECONDS
    try:
        # No redirects: a signed body must reach the URL that was configured, not one a
        # receiver points elsewhere.
        response = requests.post(
            url, data=body, headers=headers, timeout=(timeout, timeout), allow_redirects=False
        )
    except requests.Timeout:
        raise DeliveryError(f"no answer within {timeout} s") from None
    except requests.RequestException as exc:
        raise DeliveryError(f"cannot reach the receiver: {type(exc).__name__}: {exc}") from None
    if 200 <= response.status_code < 300:
        return
    answer = f"the receiver answered {response.status_code}: {response.text[:200]!r}"
    if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
        raise DeliveryError(answer)
    if 300 <= response.status_code < 400:
        raise DeliveryError(answer + "; configure the final URL (no redirects)", permanent=True)
    raise DeliveryError(answer, permanent=True)


def _send_email(address: str, message: Message) -> None:
    connection = get_connection(timeout=settings.NOTIFICATIONS_TIMEOUT_SECONDS)
    email = EmailMessage(
        subject=f"[Slipway] {message.title}",
        body=f"{message.text}\n\nOpen in Slipway: {message.url}\n\n-- \n{message.kind_label}. "
        f"Change what you receive: {settings.SLIPWAY_PUBLIC_URL.rstrip('/')}"
        "/notifications/settings/\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address],
        # Stable per event and address: a mail system (or a person) that sees the same
        # Message-ID twice knows it is one message sent again.
        headers={
            "Message-ID": f"<{message.event_id}.{_address_tag(address)}@slipway>",
            EVENT_HEADER: message.event_id,
        },
        connection=connection,
    )
    try:
        email.send()
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _text in exc.recipients.values()]
        raise DeliveryError(
            f"the mail server refused {address}: {exc.recipients}",
            permanent=all(code >= 500 for code in codes),
        ) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        raise DeliveryError(
            f"the mail server answered {exc.smtp_code} {text}".strip(),
            permanent=exc.smtp_code >= 500,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"cannot send mail: {type(exc).__name__}: {exc}") from None


def _address_tag(address: str) -> str:
    return hashlib.sha256(address.lower().encode()).hexdigest()[:16]
