"""The auto-rollback guard, driven by the demo simulator's readings (a version tagged
``demo.latency_multiplier`` regresses): it rolls back a sustained breach during bake,
never twice for one release, never a rollback, and holds when no good release is known.
A drift restore is guarded as the release whose files it restores."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.metrics.models import GuardDecision, GuardOutcome
from apps.metrics.services import metrics_poll
from apps.releases import services
from apps.releases.models import (
    Environment,
    Release,
    ReleaseKind,
    ReleaseState,
    ServiceEnvironment,
)
from apps.releases.services.drift import folder_differences, target_record_drift
from tests import factories
from tests.metrics.conftest import backdate

pytestmark = pytest.mark.django_db

REGRESSION = {"demo.latency_multiplier": "2.5"}
POLL = timedelta(seconds=30)


@pytest.fixture(autouse=True)
def demo(settings):
    settings.METRICS_BACKEND = "demo"


@pytest.fixture
def guarded(envs):
    Environment.objects.filter(pk=envs["staging"].pk).update(auto_rollback=True, bake_minutes=30)
    envs["staging"].refresh_from_db()
    return envs["staging"]


def _poll(times: int = 3, start=None):
    start = start or timezone.now()
    return [metrics_poll(now=start + POLL * i) for i in range(times)]


def test_a_sustained_breach_during_bake_rolls_back_to_the_last_good_release(
    guarded, make_live, django_capture_on_commit_callbacks
):
    good = make_live("churn-model", "staging", version=1)
    bad = make_live("churn-model", "staging", version=2, tags=REGRESSION)
    first_two = _poll(2)
    assert [d for r in first_two for d in r.guard] == []
    with django_capture_on_commit_callbacks() as callbacks:
        (third,) = _poll(1, start=timezone.now() + 2 * POLL)
    (decision,) = third.guard
    assert decision.outcome == GuardOutcome.ROLLED_BACK
    rollback = decision.rollback
    assert rollback.kind == ReleaseKind.ROLLBACK
    assert rollback.requested_by_system == "auto-rollback-guard"
    assert rollback.rollback_target_id == good.pk and rollback.rolled_back_release_id == bad.pk
    assert rollback.state == ReleaseState.APPROVED and rollback.break_glass  # deploys next
    # The deploy task, sent once the decision commits (beside the notifications' sends).
    sends = [c.__qualname__ for c in callbacks]
    assert sends.count("send of task releases.deploy_pending") == 1
    # The reason carries the numbers.
    assert "latency_p95_ms" in rollback.reason and "over SLO 250 ms for 3 polls" in rollback.reason
    assert "error_rate" in rollback.reason
    assert f"Release #{bad.pk}" in rollback.reason
    actions = AuditEvent.objects.filter(target_id=str(rollback.pk)).values_list("action", flat=True)
    assert "release.rollback" in actions


def test_the_guard_never_fires_twice_for_one_release(guarded, make_live):
    make_live("churn-model", "staging", version=1)
    bad = make_live("churn-model", "staging", version=2, tags=REGRESSION)
    _poll(3)
    (decision,) = GuardDecision.objects.all()
    # Someone cancels the rollback; the release is still live and still breaching.
    Release.objects.filter(pk=decision.rollback_id).update(state=ReleaseState.CANCELLED)
    later = _poll(5, start=timezone.now() + 3 * POLL)
    assert [d for r in later for d in r.guard] == []
    assert GuardDecision.objects.count() == 1
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK, rolled_back_release=bad).count() == 1


def test_the_guard_never_rolls_back_a_rollback(guarded, make_live, otto):
    make_live("churn-model", "staging", version=1, tags=REGRESSION)  # bad, but nobody watched
    make_live("churn-model", "staging", version=2)
    service = factories.make_service("churn-model")
    # On-call rolls back by hand to v1, which is the bad one.
    rollback = services.release_rollback(
        actor=otto, service=service, environment=guarded, reason="v2 looked wrong"
    )
    rollback = factories.release_to_live(rollback)
    _poll(3)
    (decision,) = GuardDecision.objects.all()
    assert decision.release_id == rollback.pk
    assert decision.outcome == GuardOutcome.SKIPPED_ROLLBACK
    assert "never rolls back" in decision.reason
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK).count() == 1
    assert AuditEvent.objects.filter(
        action="guard.skipped_rollback", target_id=str(rollback.pk)
    ).exists()


def test_the_guard_holds_while_no_earlier_good_release_is_known(guarded, make_live):
    only = make_live("churn-model", "staging", version=1, tags=REGRESSION)
    _poll(4)
    (decision,) = GuardDecision.objects.all()
    assert (decision.release_id, decision.outcome) == (only.pk, GuardOutcome.HELD_UNKNOWN_PREVIOUS)
    assert "No earlier good release" in decision.reason
    assert "latency_p95_ms" in decision.reason  # and why it would have acted
    assert not Release.objects.filter(kind=ReleaseKind.ROLLBACK).exists()
    assert AuditEvent.objects.filter(action="guard.held_unknown_previous").count() == 1


def test_a_release_rolled_back_before_is_not_a_good_target(guarded, make_live, otto):
    """v1 was rolled back (bad); v2 live and breaching: nothing good to go back to."""
    make_live("churn-model", "staging", version=1)
    make_live("churn-model", "staging", version=2)
    service = factories.make_service("churn-model")
    rollback = factories.release_to_live(
        services.release_rollback(actor=otto, service=service, environment=guarded, reason="x")
    )
    assert rollback.rollback_target.model_version.version == 1
    v3 = make_live("churn-model", "staging", version=3, tags=REGRESSION)
    _poll(3)
    decision = GuardDecision.objects.get(release=v3)
    # v2 was rolled back and is not a candidate; v1 is, offered once as its original
    # release (the rollback that restored it carries the same manifests).
    assert decision.outcome == GuardOutcome.ROLLED_BACK
    assert decision.rollback.rollback_target_id == rollback.rollback_target_id
    assert decision.rollback.digest == rollback.digest


def test_no_auto_rollback_without_opt_in(envs, make_live):
    make_live("churn-model", "staging", version=1)
    make_live("churn-model", "staging", version=2, tags=REGRESSION)
    results = _poll(4)
    assert [d for r in results for d in r.guard] == []
    assert [e.kind for r in results for e in r.events] == ["breach", "breach"]


def test_no_auto_rollback_after_the_bake_window(guarded, make_live):
    make_live("churn-model", "staging", version=1)
    bad = make_live("churn-model", "staging", version=2, tags=REGRESSION)
    backdate(bad, minutes=31)
    _poll(4)
    assert not GuardDecision.objects.exists()


def test_the_guard_stands_aside_when_a_person_already_rolls_back(guarded, make_live, otto):
    make_live("churn-model", "staging", version=1)
    make_live("churn-model", "staging", version=2, tags=REGRESSION)
    _poll(2)
    service = factories.make_service("churn-model")
    mine = services.release_rollback(
        actor=otto, service=service, environment=guarded, reason="I saw it first"
    )
    (third,) = _poll(1, start=timezone.now() + 2 * POLL)
    (decision,) = third.guard
    assert decision.outcome == GuardOutcome.REFUSED
    assert "already under way" in decision.reason
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK).get() == mine


def _drift_restore(live, otto):
    """Someone changed ``live``'s folder by hand; on-call restores the approved files and
    the restore goes live (a drift restore: a rollback in form onto ``live`` itself)."""
    target, _ = ServiceEnvironment.objects.get_or_create(
        service=live.service, environment=live.environment
    )
    found = {**live.rendered_files}
    name = sorted(found)[0]
    found[name] = found[name] + "# edited by hand\n"
    differences = folder_differences(approved=live.rendered_files, found=found)
    target_record_drift(target=target, live=live, revision="e" * 40, differences=differences)
    restore = services.release_restore_approved(
        live=live, reason="someone edited the folder", actor=otto
    )
    assert restore.restores_in_place and restore.rollback_target_id == live.pk
    return factories.release_to_live(restore)


def test_a_drift_restore_stays_guarded_like_the_release_it_restores(guarded, make_live, otto):
    good = make_live("churn-model", "staging", version=1)
    bad = make_live("churn-model", "staging", version=2, tags=REGRESSION)
    restore = _drift_restore(bad, otto)

    _poll(3)

    (decision,) = GuardDecision.objects.all()
    assert (decision.release_id, decision.outcome) == (restore.pk, GuardOutcome.ROLLED_BACK)
    # Back to the last good release before the one restored (not to v2's files again).
    assert decision.rollback.rollback_target_id == good.pk
    assert decision.rollback.rolled_back_release_id == restore.pk


def test_the_guards_rollback_of_a_drift_restore_is_not_rolled_back_again(guarded, make_live, otto):
    make_live("churn-model", "staging", version=1, tags=REGRESSION)  # bad too, unwatched
    make_live("churn-model", "staging", version=2, tags=REGRESSION)
    restore = _drift_restore(Release.objects.get(state=ReleaseState.LIVE), otto)
    _poll(3)
    first = GuardDecision.objects.get(release=restore)
    assert first.outcome == GuardOutcome.ROLLED_BACK
    rollback = factories.release_to_live(first.rollback)

    _poll(3, start=timezone.now() + 3 * POLL)

    second = GuardDecision.objects.get(release=rollback)
    assert second.outcome == GuardOutcome.SKIPPED_ROLLBACK
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK).count() == 2  # restore + guard's


def test_a_drift_restore_of_a_rollback_is_still_never_rolled_back(guarded, make_live, otto):
    make_live("churn-model", "staging", version=1, tags=REGRESSION)
    make_live("churn-model", "staging", version=2)
    service = factories.make_service("churn-model")
    rollback = factories.release_to_live(
        services.release_rollback(
            actor=otto, service=service, environment=guarded, reason="v2 looked wrong"
        )
    )
    restore = _drift_restore(rollback, otto)

    _poll(3)

    (decision,) = GuardDecision.objects.all()
    assert (decision.release_id, decision.outcome) == (restore.pk, GuardOutcome.SKIPPED_ROLLBACK)
    assert f"restores the files of rollback #{rollback.pk}" in decision.reason
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK).count() == 2
