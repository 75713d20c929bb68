"""API tokens: how CI pipelines authenticate. Stored hashed, shown once, refused once
revoked or once their person is deactivated; both header keywords work."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import ApiToken, hash_token
from apps.accounts.services import api_token_create, api_token_revoke
from apps.audit.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


def _status(client) -> int:
    return client.get(reverse("release-list")).status_code


def test_a_revoked_or_wrong_token_is_refused(alice, staging, model_versions):
    token, raw = api_token_create(user=alice, name="ci")
    assert _status(factories.bearer_client(raw)) == 200
    api_token_revoke(token=token, revoked_by=alice)
    assert _status(factories.bearer_client(raw)) == 401
    assert _status(factories.bearer_client("slw_nope")) == 401


def test_tokens_are_stored_hashed(alice):
    token, raw = api_token_create(user=alice, name="ci")
    assert raw not in (token.key_hash, token.prefix) and len(token.key_hash) == 64
    assert token.key_hash == hash_token(raw) and raw.startswith(token.prefix)


def test_the_token_keyword_works_and_a_malformed_header_is_refused(alice):
    _, raw = api_token_create(user=alice, name="ci")
    client = factories.bearer_client(raw)
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    assert _status(client) == 200
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw} extra")
    response = client.get(reverse("release-list"))
    assert response.status_code == 401
    assert "Bearer <token>" in response.json()["detail"]


def test_a_deactivated_persons_token_is_refused(alice):
    _, raw = api_token_create(user=alice, name="ci")
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert _status(factories.bearer_client(raw)) == 401


def test_last_use_is_written_at_most_once_a_minute(alice):
    token, raw = api_token_create(user=alice, name="ci")
    client = factories.bearer_client(raw)
    assert token.last_used_at is None
    assert _status(client) == 200
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    assert _status(client) == 200
    token.refresh_from_db()
    assert token.last_used_at == first  # within the minute: no write
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    assert _status(client) == 200
    token.refresh_from_db()
    assert first <= token.last_used_at <= timezone.now()  # over a minute: written again


def test_create_and_revoke_are_audited_once(alice, ada):
    token, _ = api_token_create(user=alice, name="ci", created_by=ada)
    api_token_revoke(token=token, revoked_by=ada)
    api_token_revoke(token=token, revoked_by=ada)  # already revoked: nothing more
    events = AuditEvent.objects.filter(target_type="api_token", target_id=str(token.pk))
    assert list(events.order_by("id").values_list("action", "actor_label")) == [
        ("api_token.create", "ada"),
        ("api_token.revoke", "ada"),
    ]


def test_the_command_prints_a_working_token_once(alice):
    out = StringIO()
    call_command("create_api_token", "alice", "--name", "ci-churn-model", stdout=out)
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(user=alice, name="ci-churn-model")
    assert token.key_hash == hash_token(raw)
    assert _status(factories.bearer_client(raw)) == 200


def test_the_command_refuses_an_unknown_person(db):
    with pytest.raises(CommandError, match="no user named 'mallory'"):
        call_command("create_api_token", "mallory", "--name", "ci")
    assert not ApiToken.objects.exists()
