"""Separation of duties: whoever trained the model (the MLflow run's user) does not
approve its release where the environment says so (on by default in production)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.core.errors import Forbidden
from apps.registry.models import ModelVersion
from apps.releases import selectors, services
from apps.releases.models import Environment, ReleaseState
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def trained_by_pat(alice, pat, staging, service):
    """A prod promotion of a version whose MLflow run was logged by pat."""
    factories.make_model_version(service.registered_model, 1)
    ModelVersion.objects.filter(name=service.registered_model, version=1).update(run_user="pat")
    return factories.pending_promotion(service, staging, requester=alice)


def test_the_trainer_cannot_approve_in_production(trained_by_pat, pat, carol, people):
    assert trained_by_pat.environment.separates_trainer  # prod: on without being set
    with pytest.raises(Forbidden, match="You trained this model"):
        services.release_approve(actor=pat, release=trained_by_pat)
    with pytest.raises(Forbidden, match="You trained this model"):
        services.release_reject(actor=pat, release=trained_by_pat, comment="mine, no")
    assert not trained_by_pat.approvals.exists()
    # Another product reviewer fills the slot, and the release goes on.
    services.release_approve(actor=people["paula"], release=trained_by_pat)
    services.release_approve(actor=carol, release=trained_by_pat)
    trained_by_pat.refresh_from_db()
    assert trained_by_pat.state == ReleaseState.APPROVED


def test_the_trainer_is_neither_offered_nor_eligible(trained_by_pat, pat, client):
    assert "pat" not in [u.username for u in selectors.eligible_reviewers(trained_by_pat)]
    assert selectors.inbox_for(pat) == []
    client.force_login(pat)
    page = client.get(reverse("releases:detail", args=[trained_by_pat.pk])).content.decode()
    assert 'name="decision" value="approve"' not in page
    refused = client.post(
        reverse("releases:decide", args=[trained_by_pat.pk]),
        {"decision": "approve", "digest": trained_by_pat.digest, "role": ""},
    )
    assert refused.status_code == 403
    assert "You trained this model" in refused.content.decode()


def test_an_environment_can_switch_it_off(trained_by_pat, pat):
    Environment.objects.filter(pk=trained_by_pat.environment_id).update(
        trainer_may_not_approve=False
    )
    trained_by_pat.refresh_from_db()
    assert "pat" in [u.username for u in selectors.eligible_reviewers(trained_by_pat)]
    services.release_approve(actor=pat, release=trained_by_pat)
    assert trained_by_pat.approvals.get().approver == pat


def test_a_non_production_environment_can_switch_it_on(alice, pat, staging):
    assert not staging.separates_trainer  # off by default outside production
    staging.trainer_may_not_approve = True
    staging.save(update_fields=["trainer_may_not_approve"])
    assert staging.separates_trainer


def test_the_trainer_is_matched_by_email_too_and_case_does_not_matter(alice, pat, staging, service):
    factories.make_model_version(service.registered_model, 1, run_user="PAT@example.com")
    promotion = factories.pending_promotion(service, staging, requester=alice)
    with pytest.raises(Forbidden, match="You trained this model"):
        services.release_approve(actor=pat, release=promotion)


def test_without_a_run_user_the_registering_user_counts(alice, pat, staging, service):
    factories.make_model_version(service.registered_model, 1, mlflow_user="pat")
    promotion = factories.pending_promotion(service, staging, requester=alice)
    with pytest.raises(Forbidden, match="You trained this model"):
        services.release_approve(actor=pat, release=promotion)
