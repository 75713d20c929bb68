"""Real concurrency on PostgreSQL: threads with their own connections racing on one row."""

import threading

import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.core.errors import DomainError
from apps.releases import services
from apps.releases.models import Approval, Release, ReleaseKind, ReleaseState
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(*calls):
    """Start every call at once (a barrier), each on its own connection; collect outcomes."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            outcomes[i] = ("ok", call())
        except DomainError as exc:
            outcomes[i] = ("refused", exc)
        except Exception as exc:  # pragma: no cover - shown in the assertion
            outcomes[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


@pytest.fixture
def pending_prod(people, environments, service):
    staging, _prod = environments
    return factories.pending_promotion(service, staging, requester=people["alice"])


def test_two_reviewers_racing_are_both_counted_once_and_approve_once(pending_prod, people):
    outcomes = _race(
        lambda: services.release_approve(actor=people["pat"], release=pending_prod),
        lambda: services.release_approve(actor=people["carol"], release=pending_prod),
    )
    assert [o[0] for o in outcomes] == ["ok", "ok"], outcomes
    pending_prod.refresh_from_db()
    assert pending_prod.state == ReleaseState.APPROVED
    assert Approval.objects.filter(release=pending_prod).count() == 2
    approved_events = AuditEvent.objects.filter(
        action="release.approved", target_id=str(pending_prod.pk)
    )
    assert approved_events.count() == 1
    assert audit_chain_verify()[1] is None


def test_one_reviewer_double_submitting_is_counted_once(pending_prod, people):
    pat = people["pat"]
    outcomes = _race(*[lambda: services.release_approve(actor=pat, release=pending_prod)] * 4)
    assert sorted(o[0] for o in outcomes) == ["ok", "refused", "refused", "refused"], outcomes
    assert Approval.objects.filter(release=pending_prod, approver=pat).count() == 1


def test_two_product_reviewers_racing_for_one_slot(pending_prod, people):
    outcomes = _race(
        lambda: services.release_approve(actor=people["pat"], release=pending_prod),
        lambda: services.release_approve(actor=people["paula"], release=pending_prod),
    )
    assert sorted(o[0] for o in outcomes) == ["ok", "refused"], outcomes
    assert Approval.objects.filter(release=pending_prod, role="product-reviewer").count() == 1


def test_simultaneous_rollbacks_make_one(people, environments, service):
    staging, _ = environments
    alice = people["alice"]
    factories.live_release(service, staging, 1, requester=alice)
    factories.live_release(service, staging, 2, requester=alice)

    def rollback(actor):
        return lambda: services.release_rollback(
            actor=actor, service=service, environment=staging, reason="p95 regression"
        )

    outcomes = _race(rollback(people["otto"]), rollback(people["ada"]), rollback(people["otto"]))
    assert sorted(o[0] for o in outcomes) == ["ok", "refused", "refused"], outcomes
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK).count() == 1
    refused = [o[1] for o in outcomes if o[0] == "refused"]
    assert all("already under way" in e.message for e in refused)


def test_simultaneous_promotions_of_one_release_make_one(pending_prod, people):
    # pending_prod already promotes its source; cancel it so the race starts clean.
    source = pending_prod.promoted_from
    services.release_cancel(actor=people["alice"], release=pending_prod)

    def promote(actor):
        return lambda: services.release_promote(actor=actor, source=source, reason="soaked")

    outcomes = _race(promote(people["alice"]), promote(people["alice"]), promote(people["ada"]))
    assert sorted(o[0] for o in outcomes) == ["ok", "refused", "refused"], outcomes
    open_promotions = Release.objects.filter(
        promoted_from=source, state=ReleaseState.PENDING_APPROVAL
    )
    assert open_promotions.count() == 1
    refused = [o[1] for o in outcomes if o[0] == "refused"]
    assert all(f"already promotes #{source.pk} to prod" in e.message for e in refused)
    assert audit_chain_verify()[1] is None
