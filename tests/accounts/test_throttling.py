"""API rate limits: DRF throttles counted in the shared cache (real Redis here, as in
production), a 429 with Retry-After and a sentence, logged with the token's prefix."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis
from django.core.cache import cache
from django.urls import reverse

from apps.accounts.services import api_token_create
from tests import factories
from tests.services import REDIS_URL, need_service, redis_available

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_cache(settings):
    """The default cache on real Redis, under a key prefix no other run uses."""
    need_service("Redis", redis_available(), "start redis-server on 127.0.0.1:6379")
    prefix = f"slipway-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "2/min"},
    }
    yield redis.Redis.from_url(REDIS_URL), prefix
    cache.clear()


def test_the_fourth_request_in_a_minute_is_a_429_with_retry_after(redis_cache, alice, caplog):
    client_redis, prefix = redis_cache
    token, raw = api_token_create(user=alice, name="ci")
    client = factories.bearer_client(raw)
    codes = [client.get(reverse("release-list")).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    with caplog.at_level(logging.WARNING, logger="slipway.throttle"):
        response = client.get(reverse("release-list"))
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    detail = response.json()["detail"]
    assert "Too many API requests" in detail and f"in {response['Retry-After']} seconds" in detail
    # The counter is in Redis, where every web process sees it.
    assert client_redis.keys(f"{prefix}:*throttle_user_{alice.pk}")
    record = next(r for r in caplog.records if r.name == "slipway.throttle")
    assert record.token_prefix == token.prefix and record.user == "alice"


def test_people_have_separate_budgets(redis_cache, alice, pat):
    alice_client = factories.bearer_client(api_token_create(user=alice, name="ci")[1])
    pat_client = factories.bearer_client(api_token_create(user=pat, name="ci")[1])
    for _ in range(3):
        alice_client.get(reverse("release-list"))
    assert alice_client.get(reverse("release-list")).status_code == 429
    assert pat_client.get(reverse("release-list")).status_code == 200


def test_with_the_cache_down_requests_are_served_not_failed(settings, alice):
    """Redis down: a throttle that cannot count lets the request through (and logs),
    rather than turning every API call into a 500."""
    from tests.fixtures.network import free_port

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1},
        }
    }
    client = factories.bearer_client(api_token_create(user=alice, name="ci")[1])
    assert client.get(reverse("release-list")).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_429_over_real_http(redis_cache, live_server, alice):
    import requests

    _, raw = api_token_create(user=alice, name="ci")
    url = f"{live_server.url}{reverse('release-list')}"
    headers = {"Authorization": f"Bearer {raw}"}
    codes = [requests.get(url, headers=headers, timeout=10).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    refused = requests.get(url, headers=headers, timeout=10)
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/json"
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["detail"].startswith("Too many API requests")
