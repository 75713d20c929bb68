"""Idempotency-Key on every endpoint that takes one, as the README promises: the same key
with the same body answers the first result (201 once, then 200 with the same release);
the same key with any other body is a 409; a key longer than its column is a 400; and
callers racing with one key get one 201 and identical replays (issue #17)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.releases.models import Release
from tests import factories

CREATE = {"service": "churn-model", "environment": "staging", "model_version": 2, "reason": "ci"}


def _client(user) -> APIClient:
    _, raw = api_token_create(user=user, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def api(alice):
    return _client(alice)


@pytest.fixture
def soaked(alice, staging, prod, service):
    live = factories.live_release(service, staging, 1, requester=alice)
    Release.objects.filter(pk=live.pk).update(live_at=timezone.now() - timedelta(hours=2))
    return live


def _create(api, body, key):
    return api.post("/api/v1/releases/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def _promote(api, release, body, key):
    return api.post(
        f"/api/v1/releases/{release.pk}/promote/", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


def test_create_replay_answers_200_with_the_same_body(api, staging, model_versions):
    first = _create(api, CREATE, "build-1")
    again = _create(api, CREATE, "build-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Release.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"reason": "another reason"},
        {"model_version": 3},
        {"config_overrides": {"replicas": 3}},
        {"reason": ""},
    ],
)
def test_create_with_a_used_key_and_any_other_body_is_409(api, staging, model_versions, change):
    assert _create(api, CREATE, "build-2").status_code == 201
    response = _create(api, {**CREATE, **change}, "build-2")
    assert response.status_code == 409, response.content
    assert "Idempotency-Key" in response.json()["detail"]
    assert Release.objects.count() == 1


def test_promote_replay_and_a_different_body(api, soaked):
    first = _promote(api, soaked, {"reason": "soaked"}, "promo-1")
    again = _promote(api, soaked, {"reason": "soaked"}, "promo-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    for other in ({"reason": "soaked", "environment": "prod"}, {"reason": "different"}):
        response = _promote(api, soaked, other, "promo-1")
        assert response.status_code == 409, response.content
        assert "Idempotency-Key" in response.json()["detail"]


def test_a_create_key_reused_on_promote_is_409(api, soaked, model_versions):
    assert _create(api, CREATE, "shared").status_code == 201
    assert _promote(api, soaked, {"reason": "soaked"}, "shared").status_code == 409


@pytest.mark.parametrize("key", ["k" * 129, "k" * 200, "tab\there"])
def test_a_key_the_column_cannot_hold_is_a_400_on_every_endpoint(api, soaked, model_versions, key):
    for response in (_create(api, CREATE, key), _promote(api, soaked, {"reason": "x"}, key)):
        assert response.status_code == 400, response.content
        assert "1-128 printable characters" in response.json()["detail"]
    assert Release.objects.count() == 1  # only the soaked one


def test_a_key_of_exactly_the_column_length_works(api, staging, model_versions):
    assert _create(api, CREATE, "k" * 128).status_code == 201


# --- racing callers --------------------------------------------------------------------


def _race(calls):
    barrier = threading.Barrier(len(calls))
    answers = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            response = call()
            answers[i] = (response.status_code, response.json())
        except Exception as exc:  # pragma: no cover - shown in the assertion
            answers[i] = ("error", repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def _one_201_and_identical_replays(answers):
    codes = sorted(code for code, _ in answers)
    assert codes == [200] * (len(answers) - 1) + [201], answers
    ids = {body["id"] for _, body in answers}
    assert len(ids) == 1, answers
    return ids.pop()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_racing_creates_with_one_key_get_one_201(people, environments, service):
    for version in (1, 2):
        factories.make_model_version(service.registered_model, version)
    clients = [_client(people["alice"]) for _ in range(20)]
    answers = _race([lambda c=c: _create(c, CREATE, "race-1") for c in clients])
    release_id = _one_201_and_identical_replays(answers)
    assert Release.objects.filter(idempotency_key="race-1").get().pk == release_id


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_promotions_with_one_key_get_one_201(people, environments, service):
    staging = environments[0]
    live = factories.live_release(service, staging, 1, requester=people["alice"])
    Release.objects.filter(pk=live.pk).update(live_at=timezone.now() - timedelta(hours=2))
    clients = [_client(people["alice"]) for _ in range(8)]
    answers = _race([lambda c=c: _promote(c, live, {"reason": "go"}, "race-2") for c in clients])
    promotion_id = _one_201_and_identical_replays(answers)
    assert Release.objects.get(idempotency_key="race-2").pk == promotion_id
