"""API tokens expire and carry scopes: an expired token is a 401 that says so, a
token without the scope an action needs is a 403 naming the scope, and the command
sets both."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import ALL_SCOPES, ApiToken, hash_token
from apps.accounts.services import api_token_create
from apps.audit.models import AuditEvent
from apps.releases.models import Release
from tests import factories

pytestmark = pytest.mark.django_db

BODY = {"service": "churn-model", "environment": "staging", "model_version": 2, "reason": "ci"}


def _client(user, **kwargs):
    _, raw = api_token_create(user=user, name="ci", **kwargs)
    return factories.bearer_client(raw)


def test_an_expired_token_is_a_401_saying_it_expired(alice):
    token, raw = api_token_create(
        user=alice, name="ci-nightly", expires_at=timezone.now() + timedelta(hours=1)
    )
    client = factories.bearer_client(raw)
    assert client.get(reverse("release-list")).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(reverse("release-list"))
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert "Token 'ci-nightly'" in detail and "expired at" in detail
    assert "create_api_token" in detail


def test_a_token_cannot_be_made_already_expired_or_without_scopes(alice):
    with pytest.raises(ValueError, match="in the past"):
        api_token_create(user=alice, name="ci", expires_at=timezone.now() - timedelta(1))
    with pytest.raises(ValueError, match="unknown scopes"):
        api_token_create(user=alice, name="ci", scopes=["admin"])
    with pytest.raises(ValueError, match="at least one scope"):
        api_token_create(user=alice, name="ci", scopes=[])
    assert not ApiToken.objects.exists()


def test_a_read_token_reads_and_cannot_write(alice, staging, model_versions):
    client = _client(alice, scopes=["read"])
    assert client.get(reverse("release-list")).status_code == 200
    response = client.post(reverse("release-list"), BODY, format="json")
    assert response.status_code == 403
    assert "lacks the 'release:write' scope" in response.json()["detail"]
    assert "--scope release:write" in response.json()["detail"]
    assert not Release.objects.exists()


def test_promote_and_rollback_need_their_own_scopes(alice, environments, model_versions):
    writer = _client(alice, scopes=["read", "release:write"])
    created = writer.post(reverse("release-list"), BODY, format="json")
    assert created.status_code == 201
    release_id = created.json()["id"]
    submitted = writer.post(reverse("release-submit", args=[release_id]), {}, format="json")
    assert submitted.status_code == 200, submitted.content
    release = Release.objects.get(pk=release_id)
    factories.backdate_live(factories.release_to_live(release))

    refused = writer.post(reverse("release-promote", args=[release_id]), {"reason": "soaked"})
    assert refused.status_code == 403 and "'promote' scope" in refused.json()["detail"]
    refused = writer.post(reverse("release-rollback", args=[release_id]), {"reason": "bad"})
    assert refused.status_code == 403 and "'rollback' scope" in refused.json()["detail"]

    promoter = _client(alice, scopes=["promote"])
    promoted = promoter.post(
        reverse("release-promote", args=[release_id]), {"reason": "soaked"}, format="json"
    )
    assert promoted.status_code == 201, promoted.content


def test_tokens_without_scopes_given_get_all_of_them(alice):
    token, _ = api_token_create(user=alice, name="ci")
    assert sorted(token.scopes) == sorted(ALL_SCOPES)


def test_the_command_sets_expiry_and_scopes(alice):
    out = StringIO()
    call_command(
        "create_api_token",
        "alice",
        "--name",
        "ci-churn",
        "--expires-in",
        "90d",
        "--scope",
        "read",
        "--scope",
        "release:write",
        stdout=out,
    )
    token = ApiToken.objects.get(key_hash=hash_token(out.getvalue().strip()))
    assert token.scopes == ["read", "release:write"]
    expected = timezone.now() + timedelta(days=90)
    assert abs((token.expires_at - expected).total_seconds()) < 60
    create = AuditEvent.objects.get(action="api_token.create")
    assert create.after["scopes"] == ["read", "release:write"]
    assert create.after["expires_at"] == token.expires_at.isoformat()


@pytest.mark.parametrize("value", ["90", "0d", "1y", "-3h", "soon"])
def test_the_command_refuses_a_bad_duration(alice, value):
    with pytest.raises(CommandError, match="--expires-in"):
        call_command("create_api_token", "alice", "--name", "ci", "--expires-in", value)
    assert not ApiToken.objects.exists()


def test_the_command_refuses_an_unknown_scope(alice):
    with pytest.raises(CommandError, match="invalid choice: 'deploy'"):
        call_command("create_api_token", "alice", "--name", "ci", "--scope", "deploy")
