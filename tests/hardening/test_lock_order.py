"""Transitions and creations racing on PostgreSQL must never deadlock.

Found by the sustained-load test (test_concurrency.py): 7 of 357 requests answered 500
with "deadlock detected". A creation inserts a release, appends its audit row (taking
the audit chain's advisory lock) and at COMMIT checks its deferred foreign keys, which
takes KEY SHARE locks on the environment and service rows. A submission locked its
release FOR UPDATE *together with the joined service and environment rows*
(select_related), then waited for the audit lock: each held what the other needed.
Transitions now lock only the release row, FOR NO KEY UPDATE (which foreign-key checks
do not wait for).
"""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError, connection

from apps.audit.selectors import audit_chain_verify
from apps.releases import services
from apps.releases.models import Release, ReleaseState

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 12
PAIRS = 4


def test_creations_and_submissions_racing_never_deadlock(
    people, environments, service, model_versions
):
    staging, _ = environments
    alice, bob = people["alice"], people["bob"]
    errors: list[BaseException] = []
    for _ in range(ROUNDS):
        drafts = [
            services.release_create(
                actor=bob, service=service, environment=staging, model_version=model_versions[0]
            )[0]
            for _ in range(PAIRS)
        ]
        barrier = threading.Barrier(2 * PAIRS)

        def create(barrier):
            try:
                barrier.wait()
                services.release_create(
                    actor=alice,
                    service=service,
                    environment=staging,
                    model_version=model_versions[1],
                )
            except OperationalError as exc:
                errors.append(exc)
            finally:
                connection.close()

        def submit(barrier, draft):
            try:
                barrier.wait()
                services.release_submit(actor=bob, release=draft)
            except OperationalError as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=create, args=(barrier,)) for _ in range(PAIRS)]
        threads += [threading.Thread(target=submit, args=(barrier, d)) for d in drafts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, [str(e).splitlines()[0] for e in errors]
    assert Release.objects.filter(state=ReleaseState.APPROVED).count() == ROUNDS * PAIRS
    assert audit_chain_verify()[1] is None
