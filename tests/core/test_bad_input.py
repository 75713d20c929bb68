"""Input PostgreSQL cannot store and JSON too deep to parse: refused at the edge with a
400 (404 for a path) that says what is wrong, never a 500 (issue #17, "bad input at the
edges"). Runs on the real PostgreSQL, where each of these was a 500."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils.html import escape
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.core.jsoninput import MAX_JSON_DEPTH, json_too_deep, unstorable_in
from apps.releases.models import Environment, Release, Service
from tests import factories


@pytest.fixture
def api(alice):
    _, raw = api_token_create(user=alice, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def browser(alice):
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def admin_client(db):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "x" * 20)
    client = Client()
    client.force_login(root)
    return client


def _json_post(client, path, text: str):
    return client.generic("POST", path, text.encode(), content_type="application/json")


# --- paths and query strings -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/services/svc%00name/"),
        ("get", "/api/v1/services/svc%00name/"),
        ("get", "/api/v1/releases/1%00/"),
        ("post", "/registry/sync/churn%00model/"),
        ("post", "/api/v1/releases/1%00/approve/"),
    ],
)
def test_a_nul_in_the_path_is_a_404(browser, environments, service, method, path):
    response = getattr(browser, method)(path)
    assert response.status_code == 404
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    ["/audit/export.csv?x=%00", "/audit/export.csv?%00=1", "/api/v1/releases/?service=a%00b"],
)
def test_a_nul_in_the_query_string_is_a_400_naming_the_parameter(browser, environments, path):
    response = browser.get(path)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "NUL" in detail and "query parameter" in detail


# --- bodies ----------------------------------------------------------------------------

CREATE = {"service": "churn-model", "environment": "staging", "model_version": 1}


@pytest.mark.parametrize(
    ("body", "where", "what"),
    [
        ('{"reason": "a\\u0000b"}', "$.reason", "NUL"),
        ('{"reason": "\\ud800"}', "$.reason", "surrogate"),
        (
            '{"config_overrides": {"env": {"\\u0000": "x"}}}',
            "$.config_overrides.env (a key)",
            "NUL",
        ),
        (
            '{"config_overrides": {"env": ["ok", "\\udfff"]}}',
            "$.config_overrides.env[1]",
            "surrogate",
        ),
    ],
)
def test_unstorable_text_in_a_json_body_is_a_400_saying_where(
    api, environments, model_versions, body, where, what
):
    merged = json.dumps(CREATE)[:-1] + ", " + body[1:]
    response = _json_post(api, "/api/v1/releases/", merged)
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    assert where in detail and what in detail
    assert not Release.objects.exists()


def test_an_escaped_backslash_before_u0000_is_plain_text_and_accepted(
    api, environments, model_versions
):
    # "\\u0000" in JSON is a backslash followed by "u0000": storable, not a NUL.
    body = json.dumps({**CREATE, "reason": "literally \\u0000"})
    response = _json_post(api, "/api/v1/releases/", body)
    assert response.status_code == 201, response.content
    assert Release.objects.get().reason == "literally \\u0000"


def test_a_nul_in_a_form_field_is_a_400(client, db):
    response = client.post("/accounts/login/", {"username": "ali\x00ce", "password": "x"})
    assert response.status_code == 400
    assert "'username'" in response.json()["detail"]


def test_json_nested_100000_levels_is_a_400_naming_the_limit(api, environments):
    body = "[" * 100_000 + "]" * 100_000  # 200 KB, under the body-size limit
    response = _json_post(api, "/api/v1/releases/", body)
    assert response.status_code == 400
    assert f"deeper than {MAX_JSON_DEPTH}" in response.json()["detail"]
    nested_object = '{"a":' * 40_000 + "1" + "}" * 40_000  # 240 KB
    response = _json_post(api, "/api/v1/releases/", nested_object)
    assert response.status_code == 400


def test_json_at_the_depth_limit_still_reaches_the_view(api, environments, model_versions):
    deep = "1"
    for _ in range(MAX_JSON_DEPTH - 2):
        deep = '{"x": ' + deep + "}"
    body = json.dumps(CREATE)[:-1] + ', "config_overrides": {"env": ' + deep + "}}"
    response = _json_post(api, "/api/v1/releases/", body)
    # The view answers (the configuration is wrong, not the JSON).
    assert response.status_code == 400, response.content
    assert "deeper than" not in response.json()["detail"]
    assert "config" in response.json()["detail"]


def test_the_depth_scan_ignores_brackets_inside_strings():
    assert not json_too_deep('{"a": "' + "[" * 500 + '\\"' + "{" * 500 + '"}', limit=2)
    assert json_too_deep('{"a": "\\\\"' + ", " + '"b": [[[1]]]}', limit=3)
    assert not json_too_deep('{"a": "\\\\"' + ", " + '"b": [[1]]}', limit=3)
    assert json_too_deep("[" * 5, limit=4)


def test_the_storability_walk_handles_deep_data_without_recursion():
    data: list = ["ok"]
    for _ in range(50_000):
        data = [data]
    assert unstorable_in(data) is None
    assert unstorable_in({"a": [{"b": "x\x00"}]}) == ("$.a[0].b", "a NUL character (\\u0000)")


# --- the admin's JSON fields -------------------------------------------------------------


def _service_form(**overrides):
    form = {
        "name": "fraud-model",
        "description": "",
        "owner_team": "risk",
        "registered_model": "fraud-model",
        "runtime": "custom",
        "default_config": json.dumps({"image": "registry.example.com/fraud@sha256:" + "a" * 64}),
        "runbook_url": "",
    }
    form.update(overrides)
    return form


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"env": {"A": "x\\u0000"}}', "NUL"),
        ('{"env": {"A": "\\ud800"}}', "surrogate"),
        ("[" * 100_000 + "]" * 100_000, f"deeper than {MAX_JSON_DEPTH}"),
    ],
)
def test_the_admin_refuses_unstorable_or_too_deep_json(admin_client, environments, text, fragment):
    response = admin_client.post("/admin/releases/service/add/", _service_form(default_config=text))
    assert response.status_code == 200  # the form again, with the error
    assert fragment in response.content.decode()
    assert not Service.objects.filter(name="fraud-model").exists()


def test_the_admin_refuses_unstorable_json_in_environment_overrides(admin_client, environments):
    staging = Environment.objects.get(name="staging")
    response = admin_client.post(
        f"/admin/releases/environment/{staging.pk}/change/",
        {
            "name": "staging",
            "order": "1",
            "min_soak_minutes": "0",
            "bake_minutes": "30",
            "kserve_mode": staging.kserve_mode,
            "kserve_version": staging.kserve_version,
            "shadow_evaluation": "off",
            "config_overrides": '{"env": {"A": "\\u0000"}}',
            "approval_rules-TOTAL_FORMS": "0",
            "approval_rules-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "NUL" in response.content.decode()
    staging.refresh_from_db()
    assert staging.config_overrides == {}


# --- names: refused as typed, never trimmed or reserved -----------------------------------


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("service", " churn-model", "whitespace"),
        ("service", "churn-model\n", "whitespace"),
        ("environment", "staging ", "whitespace"),
        ("environment", "con", "reserved device name"),
    ],
)
def test_the_api_refuses_untrimmed_or_reserved_names(
    api, environments, model_versions, field, value, fragment
):
    response = api.post("/api/v1/releases/", {**CREATE, field: value}, format="json")
    assert response.status_code == 400, response.content
    assert fragment in response.json()["errors"][field][0]
    assert not Release.objects.exists()


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        (" fraud-model", "leading or trailing whitespace"),
        ("fraud-model\n", "leading or trailing whitespace"),
        ("con", "reserved device name"),
        ("LPT1", "reserved device name"),
    ],
)
def test_the_admin_refuses_untrimmed_or_reserved_service_names(
    admin_client, environments, name, fragment
):
    response = admin_client.post("/admin/releases/service/add/", _service_form(name=name))
    assert response.status_code == 200
    assert fragment in response.content.decode()
    assert not Service.objects.exclude(name="churn-model").exists()


def test_the_admin_refuses_a_reserved_environment_name(admin_client, db):
    response = admin_client.post(
        "/admin/releases/environment/add/",
        {
            "name": "aux",
            "order": "3",
            "min_soak_minutes": "0",
            "bake_minutes": "30",
            "kserve_mode": "knative",
            "kserve_version": "0.15",
            "shadow_evaluation": "off",
            "config_overrides": "{}",
            "approval_rules-TOTAL_FORMS": "0",
            "approval_rules-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "reserved device name" in response.content.decode()
    assert not Environment.objects.filter(name="aux").exists()


# --- the admin checks serving configurations like release creation does ------------------


def _api_config_message(api, overrides) -> str:
    response = api.post(
        "/api/v1/releases/", {**CREATE, "config_overrides": overrides}, format="json"
    )
    assert response.status_code == 400, response.content
    return response.json()["detail"]


@pytest.mark.parametrize(
    "bad",
    [{"replicas": "lots"}, {"resources": {"cpu": "lots"}}, {"no_such_setting": 1}],
)
def test_the_admin_refuses_a_default_config_releases_would_fail_on(
    admin_client, api, environments, model_versions, bad
):
    message = _api_config_message(api, bad)
    assert message.startswith("The serving configuration is not valid:")
    good = json.loads(_service_form()["default_config"])
    response = admin_client.post(
        "/admin/releases/service/add/", _service_form(default_config=json.dumps({**good, **bad}))
    )
    assert response.status_code == 200
    assert escape(f"In staging: {message}") in response.content.decode()
    assert not Service.objects.filter(name="fraud-model").exists()


def test_the_admin_saves_a_good_service(admin_client, environments):
    factories.make_team("risk")
    response = admin_client.post("/admin/releases/service/add/", _service_form())
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert Service.objects.get(name="fraud-model").owner_team.slug == "risk"


def test_the_admin_names_an_unknown_team_instead_of_failing(admin_client, environments):
    response = admin_client.post("/admin/releases/service/add/", _service_form(owner_team="nope"))
    assert response.status_code == 200
    assert "No team nope" in response.content.decode()
    assert not Service.objects.filter(name="fraud-model").exists()


def test_the_admin_refuses_environment_overrides_a_service_would_fail_on(
    admin_client, api, environments, model_versions
):
    message = _api_config_message(api, {"replicas": "lots"})
    staging = Environment.objects.get(name="staging")
    response = admin_client.post(
        f"/admin/releases/environment/{staging.pk}/change/",
        {
            "name": "staging",
            "order": "1",
            "min_soak_minutes": "0",
            "bake_minutes": "30",
            "kserve_mode": staging.kserve_mode,
            "kserve_version": staging.kserve_version,
            "shadow_evaluation": "off",
            "config_overrides": '{"replicas": "lots"}',
            "approval_rules-TOTAL_FORMS": "0",
            "approval_rules-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert escape(f"For churn-model: {message}") in response.content.decode()
    staging.refresh_from_db()
    assert staging.config_overrides == {}


# --- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("incoming", ["abc\n", "abc\r\nSet-Cookie: x=1", "a" * 65, "a b"])
def test_a_malformed_request_id_header_is_replaced_not_echoed(client, db, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    assert response.status_code == 200
    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


def test_a_well_formed_request_id_is_echoed(client, db):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="ci-run.42")["X-Request-ID"] == "ci-run.42"
