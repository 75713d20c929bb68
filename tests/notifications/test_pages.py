"""A person's own settings page and the admin: team channels (audited), the failed
deliveries an admin sees and sends again."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.audit.services import audited_atomic
from apps.notifications.events import Channel, DeliveryState, EventKind
from apps.notifications.models import Delivery, TeamChannel, UserPreference
from apps.notifications.services import notification_emit

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/notifications/settings/"


def test_the_settings_page_shows_the_defaults_and_saves_a_choice(client, people):
    pat = people["pat"]
    client.force_login(pat)
    page = client.get(URL)
    assert page.status_code == 200
    assert b"pat@example.com" in page.content
    assert page.context["form"].initial["events"] == list(EventKind.values)

    response = client.post(
        URL,
        {
            "events": [EventKind.RELEASE_WAITING, EventKind.RELEASE_APPROVED],
            "slack_url": "https://chat.example.com/pat",
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("notifications:settings")
    saved = UserPreference.objects.get(user=pat)
    assert saved.events == sorted([EventKind.RELEASE_APPROVED, EventKind.RELEASE_WAITING])
    assert saved.email is False and saved.slack_url == "https://chat.example.com/pat"
    event = AuditEvent.objects.get(action="notification.preferences")
    assert event.actor_id == pat.pk
    assert event.after["slack"] is True and "chat.example.com" not in str(event.after)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"events": ["nonsense"]}, b"Select a valid choice"),
        ({"slack_url": "not a url at all"}, b"Enter a valid URL"),
        ({"webhook_url": "ftp://files.example.com/x"}, b"must start with https://"),
        ({"email": "on"}, b"no e-mail address"),
    ],
)
def test_bad_input_is_a_400_with_a_message(client, people, data, message):
    nobody = people["nobody"]
    nobody.email = ""
    nobody.save()
    client.force_login(nobody)
    response = client.post(URL, data)
    assert response.status_code == 400
    assert message in response.content
    assert not UserPreference.objects.filter(user=nobody).exists()


def test_the_page_needs_a_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.fixture
def admin_client(client, people):
    ada = people["ada"]
    ada.is_superuser = True
    ada.save()
    client.force_login(ada)
    return client


def test_an_admin_adds_a_team_channel_audited_and_a_bad_one_is_refused(admin_client):
    url = reverse("admin:notifications_teamchannel_add")
    bad = admin_client.post(
        url, {"team": "growth-ml", "channel": Channel.EMAIL, "destination": "not-an-address"}
    )
    assert bad.status_code == 200 and b"needs an e-mail address" in bad.content
    response = admin_client.post(
        url,
        {
            "team": "growth-ml",
            "channel": Channel.SLACK,
            "destination": "https://chat.example.com/growth",
            "events": [EventKind.DEPLOY_FAILED],
            "active": "on",
        },
    )
    assert response.status_code == 302
    channel = TeamChannel.objects.get()
    assert channel.events == [EventKind.DEPLOY_FAILED]
    assert AuditEvent.objects.filter(action="teamchannel.create").count() == 1


def test_failed_deliveries_are_listed_and_an_admin_sends_them_again(admin_client, people):
    with audited_atomic():
        notification_emit(
            kind=EventKind.DEPLOY_FAILED, title="t", path="/", users=[people["alice"]]
        )
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.FAILED, attempts=10, last_error="attempt 10: the receiver answered 500"
    )
    listing = admin_client.get(
        reverse("admin:notifications_delivery_changelist"), {"state__exact": "failed"}
    )
    assert listing.status_code == 200 and b"the receiver answered 500" in listing.content

    response = admin_client.post(
        reverse("admin:notifications_delivery_changelist"),
        {"action": "send_again", "_selected_action": [delivery.pk]},
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 0)
    assert AuditEvent.objects.filter(action="notification.retry").count() == 1
