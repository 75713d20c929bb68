"""Sign-in protection (django-axes): failed sign-ins lock one username from one address,
the page says so (429, not a 500), the cool-off ends it, an admin can unlock it, and
lockouts and unlocks are in the audit chain. Real sign-in posts through the test client
and, at the end, real HTTP against the live server."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from axes.models import AccessAttempt
from django.utils import timezone

from apps.audit.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
HOME = "192.0.2.10"
ELSEWHERE = "192.0.2.99"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def _sign_in(client, username, password, *, addr=HOME, **headers):
    return client.post(
        LOGIN, {"username": username, "password": password}, REMOTE_ADDR=addr, **headers
    )


def _lock(client, username="alice", addr=HOME, **headers):
    responses = [_sign_in(client, username, "wrong", addr=addr, **headers) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    return responses[-1]


def _lockouts():
    return list(AuditEvent.objects.filter(action="signin.lockout").values_list("after", flat=True))


def test_the_third_failure_locks_the_pair_and_the_page_says_so(client, alice):
    response = _lock(client)
    page = response.content.decode()
    assert "Too many failed sign-ins for this username from your address" in page
    assert "Try again in 15 minutes" in page
    assert 'id="id_password"' in page  # the sign-in page, not an error page
    # Locked means locked: the right password is refused too.
    assert _sign_in(client, "alice", factories.PASSWORD).status_code == 429


def test_the_lock_is_per_username_and_address(client, alice, pat):
    _lock(client, "alice")
    assert _sign_in(client, "alice", factories.PASSWORD, addr=ELSEWHERE).status_code == 302
    client.logout()
    assert _sign_in(client, "pat", factories.PASSWORD).status_code == 302


def test_a_spoofed_forwarded_for_does_not_escape_the_lock(client, alice):
    _lock(client, HTTP_X_FORWARDED_FOR="203.0.113.1")
    response = _sign_in(client, "alice", factories.PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.2")
    assert response.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {HOME}


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(client, alice, settings):
    settings.SLIPWAY_TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.5"
    _lock(client, addr=proxy, HTTP_X_FORWARDED_FOR="spoofed, 198.51.100.7")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}
    # Another client behind the same proxy is not locked.
    other = _sign_in(
        client, "alice", factories.PASSWORD, addr=proxy, HTTP_X_FORWARDED_FOR="198.51.100.8"
    )
    assert other.status_code == 302


def test_the_lockout_is_audited_once_however_often_it_is_hit(client, alice):
    _lock(client)
    for _ in range(3):
        assert _sign_in(client, "alice", "wrong").status_code == 429
    assert _lockouts() == [{"username": "alice", "ip_address": HOME, "failures": 3}]
    event = AuditEvent.objects.get(action="signin.lockout")
    assert event.actor_label == "system:signin"


def test_the_lock_ends_after_the_cool_off(client, alice):
    _lock(client)
    # The cool-off is measured from the last failure: move it into the past.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert _sign_in(client, "alice", factories.PASSWORD).status_code == 302


def test_without_a_cool_off_only_an_admin_unlocks(client, alice, settings):
    settings.AXES_COOLOFF_TIME = None
    response = _lock(client)
    assert "An admin must unlock it" in response.content.decode()
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(days=30))
    assert _sign_in(client, "alice", factories.PASSWORD).status_code == 429


def test_an_admin_unlocks_through_the_admin_and_it_is_audited(client, alice, ada):
    _lock(client)
    attempt = AccessAttempt.objects.get()
    admin_client = type(client)()
    admin_client.force_login(ada)
    changelist = "/admin/axes/accessattempt/"
    page = admin_client.get(changelist)
    assert page.status_code == 200 and "Unlock" in page.content.decode()
    response = admin_client.post(
        changelist, {"action": "unlock", "_selected_action": [attempt.pk]}, follow=True
    )
    assert "Unlocked 1 sign-in record(s)." in response.content.decode()
    assert not AccessAttempt.objects.exists()
    unlock = AuditEvent.objects.get(action="signin.unlock")
    assert unlock.actor_id == ada.pk and unlock.target_id == "alice"
    assert unlock.before == {"username": "alice", "ip_address": HOME, "failures": 3}
    assert _sign_in(client, "alice", factories.PASSWORD).status_code == 302


def test_the_admin_cannot_delete_lockouts_around_the_audit(client, alice, ada):
    _lock(client)
    admin_client = type(client)()
    admin_client.force_login(ada)
    attempt = AccessAttempt.objects.get()
    response = admin_client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert AccessAttempt.objects.exists()


def test_a_success_before_the_limit_resets_the_count(client, alice):
    for _ in range(2):
        _sign_in(client, "alice", "wrong")
    assert _sign_in(client, "alice", factories.PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        assert _sign_in(client, "alice", "wrong").status_code == 200
    assert not _lockouts()


@pytest.mark.django_db(transaction=True)
def test_lockout_over_real_http(live_server, alice):
    """A browser-like client: real HTTP, CSRF cookie and token, against the live server."""
    session = requests.Session()

    def attempt(password):
        page = session.get(f"{live_server.url}{LOGIN}", timeout=10)
        assert page.status_code == 200
        return session.post(
            f"{live_server.url}{LOGIN}",
            data={
                "username": "alice",
                "password": password,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{live_server.url}{LOGIN}"},
            allow_redirects=False,
            timeout=10,
        )

    codes = [attempt("wrong").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    locked = attempt(factories.PASSWORD)
    assert locked.status_code == 429
    assert "sign-in is locked" in locked.text
    assert _lockouts() == [{"username": "alice", "ip_address": "127.0.0.1", "failures": 3}]


def test_the_unlock_command_is_audited_and_wants_an_admin(client, alice, ada, otto):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    _lock(client)
    _lock(client, addr=ELSEWHERE)
    with pytest.raises(CommandError, match="'otto' is not a Slipway admin"):
        call_command("signin_unlock", "alice", "--by", "otto")
    out = StringIO()
    call_command("signin_unlock", "alice", "--ip", ELSEWHERE, "--by", "ada", stdout=out)
    assert "cleared 1 failed sign-in record(s) for 'alice' from 192.0.2.99" in out.getvalue()
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [HOME]
    assert _sign_in(client, "alice", factories.PASSWORD, addr=ELSEWHERE).status_code == 302
    unlock = AuditEvent.objects.get(action="signin.unlock")
    assert unlock.actor_label == "ada" and unlock.before["ip_address"] == ELSEWHERE


def test_a_huge_username_is_counted_and_locked_not_a_500(client):
    huge = "m" * 5000
    responses = [_sign_in(client, huge, "wrong") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert AccessAttempt.objects.get().username == "m" * 150
    event = AuditEvent.objects.get(action="signin.lockout")
    assert event.target_id == "m" * 64 and event.after["username"] == "m" * 150
