"""The "Refresh from MLflow" button."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from apps.audit.models import AuditEvent
from apps.registry.models import ModelVersion

pytestmark = pytest.mark.django_db

URL = "/registry/sync/churn-model/"


@pytest.fixture
def registry(mlflow_store, settings):
    settings.MLFLOW_TRACKING_URI = mlflow_store.uri
    return mlflow_store


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_ml_engineer_refreshes_and_returns(client, alice, registry):
    client.force_login(alice)
    response = client.post(URL, {"next": "/services/churn-model/?tab=versions"})

    assert response.status_code == 302
    assert response["Location"] == "/services/churn-model/?tab=versions"
    assert ModelVersion.objects.filter(name="churn-model").count() == 3
    assert not ModelVersion.objects.filter(name="fraud-detector").exists()
    [message] = messages_of(response)
    assert message.startswith("churn-model: Changes from MLflow")
    assert "churn-model v1" in message
    assert AuditEvent.objects.get(action="registry.sync").actor_label == "alice"

    response = client.post(URL, {"next": "/services/churn-model/"})
    assert "nothing changed" in messages_of(response)[-1]


def test_admin_may_refresh(client, ada, registry):
    client.force_login(ada)
    assert client.post(URL).status_code == 302


def test_unsafe_next_goes_home(client, alice, registry):
    client.force_login(alice)
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = client.post(URL, {"next": target})
        assert response["Location"] == "/", target


def test_reviewers_may_not_refresh(client, pat, registry):
    client.force_login(pat)
    assert client.post(URL).status_code == 403
    assert not ModelVersion.objects.exists()


def test_anonymous_is_sent_to_login(client, registry):
    response = client.post(URL)
    assert response.status_code == 302 and "login" in response["Location"]


def test_only_post(client, alice, registry):
    client.force_login(alice)
    assert client.get(URL).status_code == 405


def test_csrf_token_required(alice, registry):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(URL).status_code == 403
    assert not ModelVersion.objects.exists()


def test_mlflow_unreachable_says_so(client, alice, settings, unreachable_mlflow_uri):
    settings.MLFLOW_TRACKING_URI = unreachable_mlflow_uri
    client.force_login(alice)

    response = client.post(URL, {"next": "/services/churn-model/"})

    assert response.status_code == 302
    [message] = messages_of(response)
    assert "MLflow could not be read" in message and "refused the connection" in message


def test_unknown_model(client, alice, registry):
    client.force_login(alice)
    response = client.post("/registry/sync/no-such-model/")
    assert "no registered model named no-such-model" in messages_of(response)[0]
