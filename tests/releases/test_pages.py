"""The browser pages, through Django's test client: forms, CSRF, limits, query counts."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.releases import services
from apps.releases.models import Approval, Release, ReleaseState
from tests import factories


@pytest.fixture
def pending_prod(people, environments, service):
    staging, _ = environments
    return factories.pending_promotion(service, staging, requester=people["alice"])


def _as(user):
    client = Client()
    client.force_login(user)
    return client


def test_engineer_creates_a_draft_through_the_form(alice, staging, service, model_versions):
    client = _as(alice)
    page = client.get(reverse("releases:create") + "?service=churn-model")
    assert page.status_code == 200
    assert b"v3" in page.content  # ready versions of the service's model are offered
    response = client.post(
        reverse("releases:create"),
        {
            "service": "churn-model",
            "environment": "staging",
            "model_version": model_versions[2].pk,
            "reason": "better recall",
            "config_overrides": "",
        },
    )
    release = Release.objects.get()
    assert response.status_code == 302 and response.url == reverse(
        "releases:detail", args=[release.pk]
    )
    assert release.state == ReleaseState.DRAFT and release.reason == "better recall"


def test_form_shows_bad_config_json_and_keeps_nothing(alice, staging, service, model_versions):
    response = _as(alice).post(
        reverse("releases:create"),
        {
            "service": "churn-model",
            "environment": "staging",
            "model_version": model_versions[0].pk,
            "reason": "x",
            "config_overrides": "{replicas: 3",
        },
    )
    assert response.status_code == 200
    assert b"Not valid JSON" in response.content
    assert not Release.objects.exists()


def test_form_does_not_offer_versions_that_are_not_ready(alice, staging, service, model_versions):
    model_versions[2].deleted_upstream_at = timezone.now()
    model_versions[2].save()
    response = _as(alice).post(
        reverse("releases:create"),
        {
            "service": "churn-model",
            "environment": "staging",
            "model_version": model_versions[2].pk,
            "reason": "x",
        },
    )
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    assert not Release.objects.exists()


def test_reviewer_sees_it_in_the_inbox_and_approves_in_the_browser(pending_prod, pat, carol):
    client = _as(pat)
    review_link = reverse("releases:detail", args=[pending_prod.pk]).encode()
    inbox = client.get(reverse("releases:inbox"))
    assert review_link in inbox.content
    detail = client.get(reverse("releases:detail", args=[pending_prod.pk]))
    assert b"Approve" in detail.content and b"Reject" in detail.content
    client.post(
        reverse("releases:decide", args=[pending_prod.pk]),
        {"decision": "approve", "digest": pending_prod.digest, "comment": "ok"},
    )
    assert Approval.objects.filter(release=pending_prod, approver=pat).exists()
    inbox = client.get(reverse("releases:inbox"))
    assert review_link not in inbox.content
    _as(carol).post(
        reverse("releases:decide", args=[pending_prod.pk]),
        {"decision": "approve", "digest": pending_prod.digest},
    )
    pending_prod.refresh_from_db()
    assert pending_prod.state == ReleaseState.APPROVED


def test_the_requester_is_not_offered_approve(pending_prod, alice):
    detail = _as(alice).get(reverse("releases:detail", args=[pending_prod.pk]))
    assert b'value="approve"' not in detail.content
    assert b"Cancel release" in detail.content


def test_a_second_approval_from_the_same_person_is_refused_with_a_message(pending_prod, pat):
    client = _as(pat)
    url = reverse("releases:decide", args=[pending_prod.pk])
    client.post(url, {"decision": "approve", "digest": pending_prod.digest})
    response = client.post(url, {"decision": "approve", "digest": pending_prod.digest}, follow=True)
    assert b"already given your decision" in response.content
    assert Approval.objects.filter(release=pending_prod).count() == 1


def test_forged_post_without_csrf_token_is_refused_and_changes_nothing(pending_prod, pat):
    client = Client(enforce_csrf_checks=True)
    client.force_login(pat)
    response = client.post(
        reverse("releases:decide", args=[pending_prod.pk]),
        {"decision": "approve", "digest": pending_prod.digest},
    )
    assert response.status_code == 403
    assert not Approval.objects.exists()


def test_api_session_post_without_csrf_is_refused(pending_prod, pat):
    client = Client(enforce_csrf_checks=True)
    client.force_login(pat)
    response = client.post(
        reverse("release-approve", args=[pending_prod.pk]), {}, content_type="application/json"
    )
    assert response.status_code == 403
    assert b"CSRF" in response.content
    assert not Approval.objects.exists()


def test_oversized_body_is_refused_with_413(pending_prod, pat, settings):
    big = "x" * (settings.MAX_REQUEST_BODY_BYTES + 1)
    response = _as(pat).post(
        reverse("releases:decide", args=[pending_prod.pk]),
        {"decision": "approve", "digest": pending_prod.digest, "comment": big},
    )
    assert response.status_code == 413
    assert b"limit is" in response.content
    assert not Approval.objects.exists()


def test_release_list_filters(alice, staging, service, model_versions):
    factories.live_release(service, staging, 1, requester=alice)
    services.release_create(
        actor=alice, service=service, environment=staging, model_version=model_versions[1]
    )
    client = _as(alice)
    live_only = client.get(reverse("releases:list") + "?state=live")
    drafts = client.get(reverse("releases:list") + "?state=draft")
    assert live_only.content.count(b"badge state-live") == 1
    assert drafts.content.count(b"badge state-draft") == 1
    assert b"badge state-live" not in drafts.content


@pytest.mark.parametrize(
    "url_name",
    ["releases:list", "releases:inbox", "releases:services", "dashboards:fleet", "audit:list"],
)
def test_list_pages_use_a_constant_number_of_queries(url_name, people, staging, service):
    client = _as(people["ada"] if url_name == "audit:list" else people["pat"])

    def count():
        client.get(reverse(url_name))  # warm caches (sessions, content types)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse(url_name)).status_code == 200
        return len(ctx)

    factories.live_release(service, staging, 1, requester=people["alice"])  # lists not empty
    few = count()
    for i in range(5):
        extra = factories.make_service(f"svc-{i}")
        factories.live_release(extra, staging, 1, requester=people["alice"])
    assert count() == few


def test_a_live_release_with_a_promotion_open_links_to_it_instead_of_offering_another(
    pending_prod, people
):
    source = pending_prod.promoted_from
    client = _as(people["alice"])
    page = client.get(reverse("releases:detail", args=[source.pk])).content.decode()
    assert "Request promotion to prod" not in page
    assert f"release #{pending_prod.pk}</a> is waiting for approval" in page
    # Posting anyway (an old tab) changes nothing and says why.
    response = client.post(
        reverse("releases:promote", args=[source.pk]), {"environment": "prod"}, follow=True
    )
    assert f"Release #{pending_prod.pk} already promotes #{source.pk} to prod" in (
        response.content.decode()
    )
    assert Release.objects.filter(promoted_from=source).count() == 1
    # Once it is cancelled, the button is back.
    services.release_cancel(actor=people["alice"], release=pending_prod)
    page = client.get(reverse("releases:detail", args=[source.pk])).content.decode()
    assert "Request promotion to prod" in page


def test_the_promotion_form_carries_the_reason_to_the_reviewers(people, environments, service):
    staging, _ = environments
    live = factories.live_release(service, staging, 1, requester=people["alice"])
    factories.backdate_live(live)
    client = _as(people["alice"])
    page = client.get(reverse("releases:detail", args=[live.pk])).content.decode()
    assert 'name="reason"' in page and "the prod reviewers read this" in page
    response = client.post(
        reverse("releases:promote", args=[live.pk]),
        {"environment": "prod", "reason": "recall +4 points; two hours in staging within SLOs"},
    )
    promotion = Release.objects.get(promoted_from=live)
    assert response.status_code == 302 and response.url == reverse(
        "releases:detail", args=[promotion.pk]
    )
    assert promotion.reason == "recall +4 points; two hours in staging within SLOs"
    review = _as(people["pat"]).get(response.url).content.decode()
    assert "recall +4 points; two hours in staging within SLOs" in review


def test_create_form_starts_on_the_only_environment_and_shows_defaults_as_json(
    alice, environments, service
):
    from django.test import Client

    from apps.releases.forms import ReleaseCreateForm

    form = ReleaseCreateForm()
    html = str(form["environment"])
    assert "---------" not in html  # staging is the only environment a release starts in
    assert 'value="staging" selected' in html
    client = Client()
    client.force_login(alice)
    page = client.get(f"/releases/new/?service={service.name}").content.decode()
    assert "{&#x27;" not in page  # no Python dict text
    assert "&quot;image&quot;:" in page or '"image":' in page


def test_release_heading_names_the_service_once(alice, environments, service):
    from django.test import Client

    from tests import factories

    release = factories.live_release(service, environments[0], 1, requester=alice)
    client = Client()
    client.force_login(alice)
    html = client.get(f"/releases/{release.pk}/").content.decode()
    # The service serves the model of the same name: "churn-model v1", not
    # "churn-model: churn-model v1".
    assert f"<h1>{service.name} v1 → staging</h1>" in html
    assert html.count(f"{service.name}: {service.name}") == 0
