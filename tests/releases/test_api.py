"""The release API as a CI pipeline uses it: idempotent create, status codes, queries.
(The tokens themselves are tested in tests/accounts/test_tokens.py.)"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.releases.models import Release, ReleaseState
from tests import factories


@pytest.fixture
def api(alice):
    """alice's CI pipeline: a real bearer token, as CI calls."""
    _, raw = api_token_create(user=alice, name="ci")
    return factories.bearer_client(raw)


def _as(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


BODY = {"service": "churn-model", "environment": "staging", "model_version": 2, "reason": "from CI"}


def test_token_auth_and_idempotent_create(api, staging, model_versions):
    first = api.post(reverse("release-list"), BODY, format="json", HTTP_IDEMPOTENCY_KEY="build-77")
    again = api.post(reverse("release-list"), BODY, format="json", HTTP_IDEMPOTENCY_KEY="build-77")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["state"] == "draft" and first.json()["requested_by"] == "alice"
    assert Release.objects.count() == 1
    other = api.post(
        reverse("release-list"),
        {**BODY, "model_version": 3},
        format="json",
        HTTP_IDEMPOTENCY_KEY="build-77",
    )
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]


@pytest.mark.parametrize(
    "body, field, fragment",
    [
        ({**BODY, "service": "../../etc"}, "service", "not a valid name"),
        ({**BODY, "service": "no-such"}, "service", "No service named"),
        ({**BODY, "environment": "qa"}, "environment", "No environment named"),
        ({**BODY, "model_version": 99}, "model_version", "has no version 99"),
        ({**BODY, "model_version": "two"}, "model_version", "valid integer"),
        ({**BODY, "config_overrides": {"replica": 2}}, "config.replica", ""),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, staging, model_versions, body, field, fragment):
    response = api.post(reverse("release-list"), body, format="json")
    assert response.status_code == 400, response.content
    payload = response.json()
    text = str(payload)
    assert field in text and fragment in text
    assert Release.objects.count() == 0


def test_a_non_object_body_is_a_400(api, staging):
    response = api.post(reverse("release-list"), [1, 2], format="json")
    assert response.status_code == 400
    assert "JSON object" in response.json()["detail"]


def test_illegal_transition_is_409_with_a_message(api, alice, staging, model_versions):
    created = api.post(reverse("release-list"), BODY, format="json").json()
    api.post(reverse("release-cancel", args=[created["id"]]), {}, format="json")
    response = api.post(reverse("release-submit", args=[created["id"]]), {}, format="json")
    assert response.status_code == 409
    assert "cancelled" in response.json()["detail"]


def test_missing_release_is_404(api):
    assert api.post(reverse("release-approve", args=[987654]), {}, format="json").status_code == 404
    assert api.get(reverse("release-detail", args=[987654])).status_code == 404


def test_full_flow_through_the_api(people, environments, service, model_versions):
    _staging, _prod = environments
    alice = _as(people["alice"])
    created = alice.post(reverse("release-list"), BODY, format="json").json()
    submitted = alice.post(
        reverse("release-submit", args=[created["id"]]), {}, format="json"
    ).json()
    assert submitted["state"] == "approved"  # staging needs no approval
    release = Release.objects.get(pk=created["id"])
    factories.backdate_live(factories.release_to_live(release))
    promoted = alice.post(
        reverse("release-promote", args=[release.pk]), {"reason": "soaked"}, format="json"
    )
    assert promoted.status_code == 201
    promotion = promoted.json()
    assert promotion["environment"] == "prod" and promotion["state"] == "pending_approval"
    assert promotion["policy"]["summary"] == "0/1 compliance-reviewer, 0/1 product-reviewer"
    pat = _as(people["pat"])
    wrong = pat.post(
        reverse("release-approve", args=[promotion["id"]]), {"digest": "f" * 64}, format="json"
    )
    assert wrong.status_code == 409
    ok = pat.post(
        reverse("release-approve", args=[promotion["id"]]),
        {"digest": promotion["digest"], "comment": "lgtm"},
        format="json",
    )
    assert ok.status_code == 200 and ok.json()["policy"]["roles"][1]["approved_by"] == ["pat"]
    done = _as(people["carol"]).post(
        reverse("release-approve", args=[promotion["id"]]), {}, format="json"
    )
    assert done.json()["state"] == ReleaseState.APPROVED


def test_release_list_uses_a_constant_number_of_queries(people, staging, service):
    client = _as(people["pat"])

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("release-list")).status_code == 200
        return len(ctx)

    factories.live_release(service, staging, 1, requester=people["alice"])
    few = count()
    for i in range(6):
        extra = factories.make_service(f"svc-{i}")
        factories.live_release(extra, staging, 1, requester=people["alice"])
    assert count() == few


def test_an_unknown_api_address_is_a_json_404(api):
    response = api.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert "api/v1/docs" in response.json()["detail"]


def test_an_unknown_page_is_the_html_404(alice):
    from django.test import Client

    client = Client()
    client.force_login(alice)
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and b"There is nothing at this address" in response.content
