"""The release actions: states, separation of duties, policy, promotion, rollback, audit."""

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.registry.models import ModelVersionStatus
from apps.releases import services
from apps.releases.models import Approval, Release, ReleaseKind, ReleaseState
from tests import factories


@pytest.fixture
def draft_staging(alice, staging, service, model_versions):
    return factories.draft_release(service, staging, 1, requester=alice, reason="first")


@pytest.fixture
def live_staging(alice, staging, service, model_versions, django_capture_on_commit_callbacks):
    return factories.live_release(service, staging, 1, requester=alice)


@pytest.fixture
def pending_prod(alice, prod, live_staging):
    factories.backdate_live(live_staging)
    promotion, _ = services.release_promote(actor=alice, source=live_staging, reason="ship it")
    return promotion


def _actions(release):
    return list(
        AuditEvent.objects.filter(target_type="release", target_id=str(release.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )


# --- create ---------------------------------------------------------------------------


def test_create_renders_a_draft_with_a_digest_and_an_audit_row(draft_staging, alice):
    assert draft_staging.state == ReleaseState.DRAFT
    assert len(draft_staging.digest) == 64
    assert "kustomization.yaml" in draft_staging.rendered_files
    assert draft_staging.requested_by == alice
    assert _actions(draft_staging) == ["release.create"]


def test_only_ml_engineers_and_admins_create(pat, otto, staging, service, model_versions):
    for person in (pat, otto):
        with pytest.raises(Forbidden):
            services.release_create(
                actor=person, service=service, environment=staging, model_version=model_versions[0]
            )
    assert Release.objects.count() == 0


def test_a_version_of_another_model_is_refused(alice, staging, service):
    other = factories.make_model_version("fraud-model", 1)
    with pytest.raises(DomainError, match="not a version of 'churn-model'"):
        services.release_create(
            actor=alice, service=service, environment=staging, model_version=other
        )


def test_a_version_deleted_upstream_or_not_ready_is_refused(
    alice, staging, service, model_versions
):
    model_versions[0].deleted_upstream_at = timezone.now()
    model_versions[0].save()
    model_versions[1].status = ModelVersionStatus.PENDING_REGISTRATION
    model_versions[1].save()
    with pytest.raises(DomainError, match="deleted from the MLflow registry"):
        services.release_create(
            actor=alice, service=service, environment=staging, model_version=model_versions[0]
        )
    with pytest.raises(DomainError, match="not ready"):
        services.release_create(
            actor=alice, service=service, environment=staging, model_version=model_versions[1]
        )


def test_prod_takes_releases_only_by_promotion(alice, prod, service, model_versions):
    with pytest.raises(Conflict, match="by promotion from staging"):
        services.release_create(
            actor=alice, service=service, environment=prod, model_version=model_versions[0]
        )


def test_bad_config_is_a_field_error_and_creates_nothing(alice, staging, service, model_versions):
    with pytest.raises(DomainError) as err:
        services.release_create(
            actor=alice,
            service=service,
            environment=staging,
            model_version=model_versions[0],
            config_overrides={"replica": {"min": 3}},
        )
    assert any("replica" in key for key in err.value.field_errors)
    assert Release.objects.count() == 0


def test_idempotency_key_returns_the_same_release(alice, staging, service, model_versions):
    first, created = services.release_create(
        actor=alice,
        service=service,
        environment=staging,
        model_version=model_versions[0],
        idempotency_key="k1",
    )
    again, created_again = services.release_create(
        actor=alice,
        service=service,
        environment=staging,
        model_version=model_versions[0],
        idempotency_key="k1",
    )
    assert created and not created_again and again.pk == first.pk
    with pytest.raises(Conflict, match="Idempotency-Key was already used"):
        services.release_create(
            actor=alice,
            service=service,
            environment=staging,
            model_version=model_versions[1],
            idempotency_key="k1",
        )
    assert Release.objects.count() == 1


# --- submit and approve -----------------------------------------------------------------


def _sends(callbacks) -> list[str]:
    """The tasks on-commit callbacks would send, in order (apps.core.queue names them)."""
    return [c.__qualname__.removeprefix("send of task ") for c in callbacks]


def test_staging_without_rules_is_approved_on_submit_and_queues_a_deploy(
    draft_staging, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        services.release_submit(actor=alice, release=draft_staging)
    draft_staging.refresh_from_db()
    assert draft_staging.state == ReleaseState.APPROVED
    assert len(callbacks) == 1  # the deploy is sent only after commit


def test_submit_by_someone_else_is_forbidden(draft_staging, people):
    with pytest.raises(Forbidden):
        services.release_submit(actor=people["bob"], release=draft_staging)
    services.release_submit(actor=people["ada"], release=draft_staging)  # admin may
    draft_staging.refresh_from_db()
    assert draft_staging.state == ReleaseState.APPROVED


def test_prod_needs_one_product_and_one_compliance_approval(
    pending_prod, pat, carol, django_capture_on_commit_callbacks
):
    assert pending_prod.state == ReleaseState.PENDING_APPROVAL
    services.release_approve(actor=pat, release=pending_prod, comment="fine")
    pending_prod.refresh_from_db()
    assert pending_prod.state == ReleaseState.PENDING_APPROVAL
    with django_capture_on_commit_callbacks() as callbacks:
        services.release_approve(actor=carol, release=pending_prod)
    pending_prod.refresh_from_db()
    assert pending_prod.state == ReleaseState.APPROVED
    assert _sends(callbacks) == ["notifications.deliver", "releases.deploy_pending"]  # alice told
    assert _actions(pending_prod)[-3:] == ["release.approve", "release.approve", "release.approved"]


def test_the_requester_never_approves_their_own_release(pending_prod, people, prod):
    dual_engineer = factories.make_user("eve", {"ml-engineer", "product-reviewer"})
    promotion = pending_prod
    promotion.requested_by = dual_engineer
    Release.objects.filter(pk=promotion.pk).update(requested_by=dual_engineer)
    with pytest.raises(Forbidden, match="another person must approve"):
        services.release_approve(actor=dual_engineer, release=promotion)
    assert not Approval.objects.filter(release=promotion).exists()


def test_one_person_fills_one_slot_even_with_two_roles(pending_prod, people):
    dual = people["dual"]
    services.release_approve(actor=dual, release=pending_prod)
    with pytest.raises(Conflict, match="already given your decision"):
        services.release_approve(actor=dual, release=pending_prod)
    pending_prod.refresh_from_db()
    assert pending_prod.state == ReleaseState.PENDING_APPROVAL
    assert Approval.objects.filter(release=pending_prod).count() == 1


def test_approvals_count_only_for_roles_held(pending_prod, pat, otto):
    with pytest.raises(Forbidden, match="do not hold the compliance-reviewer role"):
        services.release_approve(actor=pat, release=pending_prod, role="compliance-reviewer")
    with pytest.raises(Forbidden):
        services.release_approve(actor=otto, release=pending_prod)
    assert not Approval.objects.filter(release=pending_prod).exists()


def test_a_full_role_takes_no_more_approvals(pending_prod, pat, people):
    services.release_approve(actor=pat, release=pending_prod)
    with pytest.raises(Conflict, match=r"product-reviewer approvals .* already complete"):
        services.release_approve(actor=people["paula"], release=pending_prod)


def test_approval_binds_to_the_digest_seen(pending_prod, pat):
    with pytest.raises(Conflict, match="digest differs"):
        services.release_approve(actor=pat, release=pending_prod, digest="0" * 64)
    services.release_approve(actor=pat, release=pending_prod, digest=pending_prod.digest)
    assert Approval.objects.get(release=pending_prod).digest == pending_prod.digest


def test_any_rejection_rejects(pending_prod, pat, carol):
    services.release_approve(actor=pat, release=pending_prod)
    with pytest.raises(DomainError, match="Say why"):
        services.release_reject(actor=carol, release=pending_prod, comment="  ")
    services.release_reject(actor=carol, release=pending_prod, comment="no bias report")
    pending_prod.refresh_from_db()
    assert pending_prod.state == ReleaseState.REJECTED
    with pytest.raises(Conflict, match="not waiting for approval"):
        services.release_approve(actor=factories.make_user("paula"), release=pending_prod)


def test_approving_a_draft_is_a_conflict(draft_staging, pat):
    with pytest.raises(Conflict, match="draft"):
        services.release_approve(actor=pat, release=draft_staging)


def test_cancel(draft_staging, alice):
    services.release_cancel(actor=alice, release=draft_staging, reason="wrong version")
    draft_staging.refresh_from_db()
    assert draft_staging.state == ReleaseState.CANCELLED
    with pytest.raises(Conflict, match="cancelled"):
        services.release_submit(actor=alice, release=draft_staging)


def test_submitted_release_is_immutable_through_every_action(pending_prod, pat, carol):
    before = Release.objects.values(
        "config", "rendered_files", "digest", "model_version", "reason"
    ).get(pk=pending_prod.pk)
    services.release_approve(actor=pat, release=pending_prod)
    services.release_approve(actor=carol, release=pending_prod)
    after = Release.objects.values(
        "config", "rendered_files", "digest", "model_version", "reason"
    ).get(pk=pending_prod.pk)
    assert before == after


# --- promotion ----------------------------------------------------------------------------


def test_promotion_checks_the_soak_gate(alice, live_staging, prod):
    with pytest.raises(Conflict, match="Still soaking"):
        services.release_promote(actor=alice, source=live_staging)
    assert not Release.objects.filter(kind=ReleaseKind.PROMOTION).exists()


def test_promotion_creates_a_pending_prod_release_of_the_same_version(pending_prod, live_staging):
    assert pending_prod.kind == ReleaseKind.PROMOTION
    assert pending_prod.promoted_from_id == live_staging.pk
    assert pending_prod.model_version_id == live_staging.model_version_id
    assert pending_prod.environment.name == "prod"
    assert pending_prod.state == ReleaseState.PENDING_APPROVAL


def test_a_release_has_one_standing_promotion_at_a_time(pending_prod, live_staging, alice):
    with pytest.raises(Conflict, match=f"Release #{pending_prod.pk} already promotes"):
        services.release_promote(actor=alice, source=live_staging, reason="again")
    assert Release.objects.filter(kind=ReleaseKind.PROMOTION).count() == 1
    # Once the first is out of the way (cancelled, rejected, failed...), asking again works.
    services.release_cancel(actor=alice, release=pending_prod)
    again, created = services.release_promote(actor=alice, source=live_staging, reason="again")
    assert created and again.pk != pending_prod.pk
    assert again.state == ReleaseState.PENDING_APPROVAL
    # Live in prod: promoting the same release again would change nothing.
    Release.objects.filter(pk=again.pk).update(state=ReleaseState.LIVE)
    with pytest.raises(Conflict, match=rf"Release #{again.pk} already promotes .* \(live\)"):
        services.release_promote(actor=alice, source=live_staging, reason="once more")


def test_only_live_releases_are_promoted(draft_staging, alice, prod):
    with pytest.raises(Conflict, match="only a live release"):
        services.release_promote(actor=alice, source=draft_staging)


def test_reviewers_do_not_promote(live_staging, pat, prod):
    with pytest.raises(Forbidden):
        services.release_promote(actor=pat, source=live_staging)


# --- going live and rolling back ------------------------------------------------------------


def test_a_new_live_release_supersedes_the_previous(alice, staging, service, model_versions):
    first = factories.live_release(service, staging, 1, requester=alice)
    second = factories.live_release(service, staging, 2, requester=alice)
    first.refresh_from_db()
    assert (first.state, second.state) == (ReleaseState.SUPERSEDED, ReleaseState.LIVE)
    assert Release.objects.filter(state=ReleaseState.LIVE).count() == 1


def test_a_newer_commit_supersedes_a_release_still_deploying(
    alice, staging, service, model_versions
):
    drafts = [
        services.release_create(
            actor=alice, service=service, environment=staging, model_version=mv
        )[0]
        for mv in model_versions[:2]
    ]
    older, newer = (services.release_submit(actor=alice, release=d) for d in drafts)
    for release, sha in ((older, "a" * 40), (newer, "b" * 40)):
        services.release_deploy_claim(release=release)
        services.release_record_commit(release=release, commit_sha=sha)
    older.refresh_from_db()
    assert older.state == ReleaseState.SUPERSEDED and older.ended_at is not None
    assert older.status_message == f"replaced by release #{newer.pk} before it went live"
    event = AuditEvent.objects.get(
        target_type="release", target_id=str(older.pk), action="release.superseded"
    )
    assert (event.actor_label, event.before, event.after) == (
        "system:deployer",
        {"state": "deploying"},
        {"state": "superseded", "by": newer.pk},
    )
    newer.refresh_from_db()
    assert (newer.state, newer.commit_sha) == (ReleaseState.DEPLOYING, "b" * 40)
    assert _actions(newer)[-1] == "release.committed"


def test_no_transition_outside_the_table_is_written(draft_staging):
    from apps.releases.services._transitions import _locked, _move

    with pytest.raises(Conflict):
        _move(_locked(draft_staging), ReleaseState.LIVE, system_actor="test", action="release.live")
    draft_staging.refresh_from_db()
    assert draft_staging.state == ReleaseState.DRAFT
    assert _actions(draft_staging) == ["release.create"]


def test_rollback_restores_the_last_good_release_and_marks_the_bad_one(
    alice, otto, staging, service, model_versions, django_capture_on_commit_callbacks
):
    good = factories.live_release(service, staging, 1, requester=alice)
    bad = factories.live_release(service, staging, 2, requester=alice)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        rollback = services.release_rollback(
            actor=otto, service=service, environment=staging, reason="p95 doubled after v2"
        )
    # The deploy, and "rollback started" to otto and to alice (whose v2 is rolled back).
    assert _sends(callbacks) == ["notifications.deliver"] * 2 + ["releases.deploy_pending"]
    assert rollback.kind == ReleaseKind.ROLLBACK and rollback.state == ReleaseState.APPROVED
    assert rollback.break_glass
    assert rollback.rollback_target_id == good.pk and rollback.rolled_back_release_id == bad.pk
    assert rollback.rendered_files == good.rendered_files and rollback.digest == good.digest
    factories.release_to_live(rollback)
    bad.refresh_from_db()
    assert bad.state == ReleaseState.ROLLED_BACK


def test_a_second_rollback_while_one_is_under_way_is_refused(
    alice, otto, ada, staging, service, model_versions
):
    factories.live_release(service, staging, 1, requester=alice)
    factories.live_release(service, staging, 2, requester=alice)
    services.release_rollback(actor=otto, service=service, environment=staging, reason="bad")
    with pytest.raises(Conflict, match="already under way"):
        services.release_rollback(actor=ada, service=service, environment=staging, reason="bad!")
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK).count() == 1


def test_rollback_needs_a_reason_a_role_and_a_good_target(
    alice, otto, pat, staging, service, model_versions
):
    factories.live_release(service, staging, 1, requester=alice)
    with pytest.raises(Forbidden):
        services.release_rollback(actor=pat, service=service, environment=staging, reason="x")
    with pytest.raises(DomainError, match="Say why"):
        services.release_rollback(actor=otto, service=service, environment=staging, reason="")
    with pytest.raises(Conflict, match="No earlier good release"):
        services.release_rollback(actor=otto, service=service, environment=staging, reason="x")


def test_rollback_cancels_releases_queued_for_the_target(
    alice, otto, staging, service, model_versions
):
    factories.live_release(service, staging, 1, requester=alice)
    factories.live_release(service, staging, 2, requester=alice)
    queued, _ = services.release_create(
        actor=alice, service=service, environment=staging, model_version=model_versions[2]
    )
    services.release_submit(actor=alice, release=queued)  # approved (no rules in staging)
    rollback = services.release_rollback(
        actor=otto, service=service, environment=staging, reason="bad"
    )
    queued.refresh_from_db()
    assert queued.state == ReleaseState.CANCELLED
    assert rollback.state == ReleaseState.APPROVED


def test_a_stale_page_cannot_roll_back_a_different_live_release(
    alice, otto, staging, service, model_versions
):
    factories.live_release(service, staging, 1, requester=alice)
    v2 = factories.live_release(service, staging, 2, requester=alice)
    v3 = factories.live_release(service, staging, 3, requester=alice)
    with pytest.raises(Conflict, match="live release changed"):
        services.release_rollback(
            actor=otto, service=service, environment=staging, reason="x", expected_live=v2
        )
    assert v3.state == ReleaseState.LIVE


def test_the_audit_chain_covers_every_step_and_verifies(pending_prod, pat, carol):
    services.release_approve(actor=pat, release=pending_prod)
    services.release_approve(actor=carol, release=pending_prod)
    checked, broken = audit_chain_verify()
    assert broken is None and checked >= 8


def test_after_a_rollback_the_restored_release_is_not_offered_again(
    alice, otto, staging, service, model_versions
):
    factories.live_release(service, staging, 1, requester=alice)
    factories.live_release(service, staging, 2, requester=alice)
    rollback = services.release_rollback(
        actor=otto, service=service, environment=staging, reason="bad v2"
    )
    rollback = factories.release_to_live(rollback)
    assert services.rollback_default_target(rollback) is None
    with pytest.raises(Conflict, match="No earlier good release"):
        services.release_rollback(actor=otto, service=service, environment=staging, reason="x")


def test_rollback_candidates_are_older_than_the_release_a_rollback_restored(
    alice, otto, staging, service, model_versions
):
    """v1, v2, v3 live in turn; v3 is rolled back to v1. From the rollback (which stands
    where v1 stood) v2 is newer, not a rollback target; nothing is older than v1."""
    v1 = factories.live_release(service, staging, 1, requester=alice)
    v2 = factories.live_release(service, staging, 2, requester=alice)
    factories.live_release(service, staging, 3, requester=alice)
    v1.refresh_from_db()
    v2.refresh_from_db()
    rollback = services.release_rollback(
        actor=otto, service=service, environment=staging, reason="bad v3", target=v1
    )
    rollback = factories.release_to_live(rollback)
    assert list(services.rollback_candidates(rollback)) == []
    with pytest.raises(Conflict, match="not older"):
        services.release_rollback(
            actor=otto, service=service, environment=staging, reason="x", target=v2
        )


def test_after_a_rollback_and_a_new_release_the_restored_original_is_offered(
    alice, otto, staging, service, model_versions
):
    """v1, v2 (bad, rolled back to v1), then v3: v3 rolls back to v1 (the original, once,
    not the rollback that carried the same files); never to the bad v2."""
    v1 = factories.live_release(service, staging, 1, requester=alice)
    factories.live_release(service, staging, 2, requester=alice)
    rollback = services.release_rollback(
        actor=otto, service=service, environment=staging, reason="bad v2"
    )
    factories.release_to_live(rollback)
    v3 = factories.live_release(service, staging, 3, requester=alice)
    assert [r.pk for r in services.rollback_candidates(v3)] == [v1.pk]
    assert services.rollback_default_target(v3).pk == v1.pk
