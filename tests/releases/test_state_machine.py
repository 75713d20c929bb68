"""Property test of the release state machine: random sequences of actions by random
people, checked after every step against the invariants the product promises."""

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from apps.audit.services import audited_atomic
from apps.core.errors import DomainError
from apps.releases import services
from tests.state_invariants import ReleaseInvariants

PEOPLE = ["alice", "bob", "pat", "paula", "carol", "otto", "ada", "dual", "nobody"]


class ReleaseMachine(ReleaseInvariants, RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        # The example's transaction, rolled back at teardown: audited, so the services
        # inside it run as savepoints of an audited transaction (the lock order holds).
        self._atomic = audited_atomic()
        self._atomic.__enter__()
        self._cast(PEOPLE, versions=3)
        self.refused = 0

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def _try(self, action):
        try:
            action()
        except DomainError:
            self.refused += 1

    @rule(who=st.sampled_from(PEOPLE), version=st.integers(0, 2))
    def create(self, who, version):
        self._try(
            lambda: services.release_create(
                actor=self.people[who],
                service=self.service,
                environment=self.staging,
                model_version=self.versions[version],
                reason="property test",
            )
        )

    @rule(who=st.sampled_from(PEOPLE), index=st.integers(0, 50))
    def submit(self, who, index):
        if (release := self._release(index)) is not None:
            self._try(lambda: services.release_submit(actor=self.people[who], release=release))

    @rule(who=st.sampled_from(PEOPLE), index=st.integers(0, 50))
    def approve(self, who, index):
        if (release := self._release(index)) is not None:
            self._try(lambda: services.release_approve(actor=self.people[who], release=release))

    @rule(who=st.sampled_from(PEOPLE), index=st.integers(0, 50))
    def reject(self, who, index):
        if (release := self._release(index)) is not None:
            self._try(
                lambda: services.release_reject(
                    actor=self.people[who], release=release, comment="no"
                )
            )

    @rule(who=st.sampled_from(PEOPLE), index=st.integers(0, 50))
    def cancel(self, who, index):
        if (release := self._release(index)) is not None:
            self._try(lambda: services.release_cancel(actor=self.people[who], release=release))

    @rule(index=st.integers(0, 50))
    def deploy(self, index):
        if (release := self._release(index)) is not None:
            sha = f"{release.pk:040x}"
            self._try(lambda: services.release_deploy_claim(release=release))
            self._try(lambda: services.release_record_commit(release=release, commit_sha=sha))

    @rule(index=st.integers(0, 50))
    def goes_live(self, index):
        if (release := self._release(index)) is not None:
            self._try(lambda: services.release_mark_live(release=release))

    @rule(index=st.integers(0, 50))
    def fails(self, index):
        if (release := self._release(index)) is not None:
            self._try(lambda: services.release_mark_failed(release=release, message="Degraded"))

    @rule(who=st.sampled_from(PEOPLE), index=st.integers(0, 50))
    def promote(self, who, index):
        if (release := self._release(index)) is not None:
            release = self._soaked(release)
            self._try(lambda: services.release_promote(actor=self.people[who], source=release))

    @rule(who=st.sampled_from(PEOPLE), env=st.sampled_from(["staging", "prod"]))
    def rollback(self, who, env):
        self._rollback(who, env, reason="property test")


@pytest.mark.django_db
def test_release_state_machine_invariants():
    run_state_machine_as_test(
        ReleaseMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
