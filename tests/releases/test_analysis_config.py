"""A bad ``analysis:`` config is refused when the release is created (API 400, the form's
message), not when the rollout's first step is judged; nothing is written when it is."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils.html import escape
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.audit.models import AuditEvent
from apps.core.errors import DomainError
from apps.releases import services
from apps.releases.models import Release
from tests import factories

CANARY = {"strategy": "canary", "steps": [{"weight": 10}]}
CREATE = {"service": "churn-model", "environment": "staging", "model_version": 1}


@pytest.fixture
def api(alice):
    _, raw = api_token_create(user=alice, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _post(api, body: dict):
    return api.post("/api/v1/releases/", json.dumps(body), content_type="application/json")


@pytest.mark.parametrize(
    ("analysis", "field", "words"),
    [
        ({"thresholds": {"psi_max": "high"}}, "analysis.thresholds.psi_max", "must be a number"),
        (
            {"thresholds": {"latency_p95_ratio_max": 0.5}},
            "analysis.thresholds.latency_p95_ratio_max",
            "must be at least 1 (1.2 allows 20% worse)",
        ),
        (
            {"thresholds": {"error_rate_max": 3}},
            "analysis.thresholds.error_rate_max",
            "a share between 0 and 1",
        ),
        ({"thresholds": {"psi_maks": 0.2}}, "analysis.thresholds.psi_maks", "the thresholds are"),
        ({"tresholds": {}}, "analysis.tresholds", "the keys are thresholds, promql"),
        ({"promql": {"requests": "sum($nope)"}}, "analysis.promql.requests", "uses $nope"),
    ],
)
def test_the_api_refuses_a_bad_analysis_config_naming_the_key(
    api, environments, model_versions, analysis, field, words
):
    body = {**CREATE, "rollout": CANARY, "config_overrides": {"analysis": analysis}}
    response = _post(api, body)
    assert response.status_code == 400, response.content
    payload = response.json()
    assert words in payload["detail"] and field in payload["detail"]
    assert words in payload["errors"][field][0]
    assert not Release.objects.exists()
    assert not AuditEvent.objects.filter(action="release.create").exists()


def test_deep_nesting_in_a_threshold_is_a_400_not_a_500(api, environments, model_versions):
    deep: object = 1
    for _ in range(40):  # under the API's JSON depth limit: it reaches the check
        deep = {"x": deep}
    body = {
        **CREATE,
        "rollout": CANARY,
        "config_overrides": {"analysis": {"thresholds": {"min_requests": deep}}},
    }
    response = _post(api, body)
    assert response.status_code == 400
    assert "analysis.thresholds.min_requests" in response.json()["errors"]
    assert not Release.objects.exists()


def test_a_nul_in_a_threshold_key_is_a_400(api, environments, model_versions):
    text = json.dumps({**CREATE, "rollout": CANARY})[:-1] + (
        ', "config_overrides": {"analysis": {"thresholds": {"psi\\u0000max": 1}}}}'
    )
    response = api.generic("POST", "/api/v1/releases/", text.encode(), "application/json")
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
    assert not Release.objects.exists()


def test_a_bad_threshold_in_the_service_config_is_refused_at_creation(
    alice, staging, service, model_versions
):
    service.default_config = {
        **service.default_config,
        "rollout": {"strategy": "canary"},
        "analysis": {"thresholds": {"agreement_min": 95}},
    }
    service.save()
    with pytest.raises(DomainError) as caught:
        services.release_create(
            actor=alice,
            service=service,
            environment=staging,
            model_version=model_versions[0],
            reason="ship",
        )
    assert caught.value.field_errors.keys() == {"analysis.thresholds.agreement_min"}
    assert "a share between 0 and 1 (0.01 is 1%), not 95" in caught.value.message
    assert not Release.objects.exists()


def test_a_good_analysis_config_still_passes(alice, staging, service, model_versions):
    analysis = {
        "thresholds": {"psi_max": 0.25, "min_requests": 500},
        "promql": {"requests": 'sum(increase(my_requests{version="$revision"}[$window]))'},
    }
    # Nothing live yet, so the configured canary goes out all-at-once; the config is
    # still checked (the next release will judge with it) and kept.
    service.default_config = {
        **service.default_config,
        "rollout": {"strategy": "canary"},
        "analysis": analysis,
    }
    service.save()
    release, created = services.release_create(
        actor=alice,
        service=service,
        environment=staging,
        model_version=model_versions[0],
        reason="ship",
    )
    assert created and release.state == "draft"


def test_all_at_once_does_not_consult_the_analysis_config(alice, staging, service, model_versions):
    # Nothing judges an all-at-once release (nor a rollback): its config cannot block it.
    service.default_config = {
        **service.default_config,
        "analysis": {"thresholds": {"psi_max": -1}},
    }
    service.save()
    release, created = services.release_create(
        actor=alice,
        service=service,
        environment=staging,
        model_version=model_versions[0],
        reason="ship",
    )
    assert created and not release.is_progressive


def test_the_form_shows_the_refusal_and_creates_nothing(alice, environments, service):
    factories.make_model_version(service.registered_model, 1)
    client = Client()
    client.force_login(alice)
    overrides = {"rollout": CANARY, "analysis": {"thresholds": {"min_requests": -5}}}
    page = client.get(f"/releases/new/?service={service.name}").content.decode()
    assert "config_overrides" in page
    from apps.registry.models import ModelVersion

    response = client.post(
        "/releases/new/",
        {
            "service": service.name,
            "environment": "staging",
            "model_version": ModelVersion.objects.get().pk,
            "config_overrides": json.dumps(overrides),
            "reason": "ship",
        },
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert escape("analysis.thresholds.min_requests: Analysis threshold 'min_requests'") in body
    assert "whole number &gt;= 1" in body
    assert not Release.objects.exists()


# --- the admin checks it when a configuration is saved -------------------------------------


@pytest.fixture
def admin_client(db):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.com", "x" * 20)
    client = Client()
    client.force_login(root)
    return client


def _service_form(default_config: dict) -> dict:
    return {
        "name": "fraud-model",
        "description": "",
        "owner_team": "risk",
        "registered_model": "fraud-model",
        "runtime": "custom",
        "default_config": json.dumps(
            {"image": "registry.example.com/fraud@sha256:" + "a" * 64, **default_config}
        ),
        "runbook_url": "",
    }


def test_the_admin_refuses_a_service_config_with_a_bad_threshold(admin_client, environments):
    from apps.releases.models import Service

    factories.make_team("risk")
    bad = {"analysis": {"thresholds": {"psi_max": 0}}}
    response = admin_client.post("/admin/releases/service/add/", _service_form(bad))
    assert response.status_code == 200
    body = response.content.decode()
    assert (
        escape(
            "In staging: The analysis config was refused: analysis.thresholds.psi_max: "
            "Analysis threshold 'psi_max' must be above 0, not 0."
        )
        in body
    )
    assert not Service.objects.filter(name="fraud-model").exists()
    good = {"analysis": {"thresholds": {"psi_max": 0.3}}}
    response = admin_client.post("/admin/releases/service/add/", _service_form(good))
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Service.objects.get(name="fraud-model").default_config["analysis"] == good["analysis"]
