"""One regression test per API defect the schemathesis run (test_api_fuzz.py) found, so
each stays fixed even if the fuzzer's random walk stops reaching it."""

from __future__ import annotations

import pytest

from tests import factories


@pytest.fixture
def api(token_for):
    return factories.bearer_client(token_for("ada"))


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/releases/abc/",
        "/api/v1/releases/%C2%84/approve/",
        "/api/v1/releases/9999999999999999999999/",
        "/api/v1/services/Not_A_Label/",
        "/api/v1/environments/%00/",
    ],
)
def test_a_malformed_id_or_name_is_a_json_404(api, environments, path):
    # Before: the URL resolver's HTML 404 page (or a 500 for the overflowing id).
    response = api.get(path) if "approve" not in path else api.post(path, {}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "query",
    [
        "state=AAA",
        "kind=nope",
        "service=Has%20Spaces",
        "offset=-1",
        "offset=100000000000000000000",  # PostgreSQL: bigint out of range -> was a 500
        "limit=0",
        "limit=abc",
    ],
)
def test_list_filters_and_paging_that_cannot_be_honoured_are_a_400(api, environments, query):
    response = api.get(f"/api/v1/releases/?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["detail"]


def test_list_paging_within_bounds_still_works(api, people, environments, service):
    factories.live_release(service, environments[0], 1, requester=people["alice"])
    response = api.get("/api/v1/releases/?limit=1&offset=0&state=live&service=churn-model")
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_a_serializer_error_has_the_documented_error_shape(api, environments):
    response = api.post("/api/v1/releases/", {"service": "churn-model"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "environment" in body["errors"] and "model_version" in body["errors"]
    assert body["detail"].startswith("Invalid input:")


def test_an_environment_without_a_source_says_null(api, environments):
    rows = {e["name"]: e for e in api.get("/api/v1/environments/").json()["results"]}
    assert rows["staging"]["promotes_from"] is None
    assert rows["prod"]["promotes_from"] == "staging"


def test_the_schema_documents_bearer_tokens_and_paging_bounds(api, environments):
    schema = api.get("/api/v1/schema/?format=json").json()
    bearer = schema["components"]["securitySchemes"]["bearerAuth"]
    assert bearer["type"] == "http" and bearer["scheme"] == "bearer"
    assert bearer["description"].startswith("An API token (slw_…) created for a person")
    assert "release:write" in bearer["description"] and "429" in bearer["description"]
    release_list = schema["paths"]["/api/v1/releases/"]["get"]
    assert {"bearerAuth": []} in release_list["security"]
    params = {p["name"]: p for p in release_list["parameters"]}
    assert params["offset"]["schema"]["maximum"] == 10**9
    assert "400" in release_list["responses"]
    detail = schema["paths"]["/api/v1/releases/{id}/"]["get"]
    assert detail["parameters"][0]["schema"]["type"] == "integer"
