"""Property test of progressive rollouts with workers dying between commit and database.

A Hypothesis rule-based state machine drives random sequences of: a candidate released
with a random canary / blue-green plan over the live release; verdicts (pass -> the
step controller decides the next step, fail -> it decides the abort, through the same
services ``apps.metrics.services.rollout`` calls); people pausing, resuming, aborting,
promoting now and lifting holds; a rollback; Argo CD reporting healthy; the commit
executor running (a poll); and a worker dying **after pushing a decided commit but
before the database heard of it**. After every step the shared invariants hold
(tests/state_invariants.py: ``ReleaseInvariants`` and ``RolloutInvariants``: every
Step-Key once on the remote, recorded steps contiguous and on the remote under their
key, no step skipped, held means aborted and failed, one rollout under way per target).

At the end of each example the queue drains (executor, deployer, Argo CD) and the
repository folder holds exactly what the database says: the current step's approved
files while a rollout is under way, else the live release's files.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from apps.audit.services import audited_atomic
from apps.core.errors import DomainError
from apps.gitops.errors import GitOpsError
from apps.gitops.render import METADATA_FILE
from apps.releases import rollout as follow
from apps.releases import services
from apps.releases.deploy import deploy_pending, rollout_commit, rollout_commit_pending
from apps.releases.models import Release, ReleaseState, Rollout, RolloutState
from tests import factories
from tests.fixtures.git import ScratchGitops
from tests.state_invariants import ReleaseInvariants, RolloutInvariants

MACHINE_EXAMPLES = 10
MACHINE_STEPS = 18
PEOPLE = ["alice", "otto", "ada", "pat"]
PLANS = [
    {"strategy": "canary", "steps": [{"weight": 10}, {"weight": 50}]},
    {"strategy": "canary", "steps": [{"weight": 25}]},
    {"strategy": "blue-green"},
]
RULES: dict[str, int] = {}
REFUSALS: dict[str, int] = {}


def _count(name: str) -> None:
    RULES[name] = RULES.get(name, 0) + 1


def _active():
    return Rollout.objects.filter(
        state__in=[RolloutState.RUNNING, RolloutState.PAUSED],
        release__state=ReleaseState.DEPLOYING,
    ).first()


class RolloutMachine(ReleaseInvariants, RolloutInvariants, RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self._atomic = audited_atomic()
        self._atomic.__enter__()
        self.gitops = ScratchGitops(prefix="slipway-rollouts-")
        self.remote, self.writer = self.gitops.remote, self.gitops.writer
        self.healthy = self.gitops.healthy
        self._cast(PEOPLE, versions=4)

    def teardown(self):
        try:
            self._drain_and_compare()
        finally:
            try:
                self.gitops.close()
            finally:
                transaction.set_rollback(True)
                self._atomic.__exit__(None, None, None)

    def _try(self, action):
        try:
            return action()
        except DomainError as exc:
            REFUSALS[str(exc)[:60]] = REFUSALS.get(str(exc)[:60], 0) + 1
            return None

    def _live_in_staging(self):
        follow.follow_rollouts(reader=self.healthy, writer=self.writer)

    @initialize()
    def v1_is_live_in_staging(self):
        release = factories.approved_release(
            self.service, self.staging, 1, requester=self.people["alice"]
        )
        deploy_pending(writer=self.writer)
        self._live_in_staging()
        release.refresh_from_db()
        assert release.state == ReleaseState.LIVE, release.status_message
        # And a candidate rolling out over it, so the verdicts and deaths start at once.
        self.a_candidate_is_released_with_a_plan(1, PLANS[0])
        assert _active() is not None

    # --- rules --------------------------------------------------------------------------
    @rule(version=st.integers(1, 3), plan=st.sampled_from(PLANS))
    def a_candidate_is_released_with_a_plan(self, version, plan):
        _count("release")

        def create():
            release, _ = services.release_create(
                actor=self.people["alice"],
                service=self.service,
                environment=self.staging,
                model_version=self.versions[version],
                reason="candidate",
                rollout=plan,
            )
            return services.release_submit(actor=self.people["alice"], release=release)

        if self._try(create) is not None:
            deploy_pending(writer=self.writer)

    @precondition(lambda self: _active() is not None)
    @rule(passes=st.booleans(), then=st.sampled_from(["wait", "commit", "die_after_push"]))
    def the_step_is_judged(self, passes, then):
        """A verdict, then (as in one controller pass) nothing more yet, the decided
        commit made and recorded, or the commit pushed by a worker that dies at once."""
        _count("verdict")
        rollout = _active()
        if rollout.state != RolloutState.RUNNING or rollout.pending:
            return
        if passes:
            services.rollout_advance(rollout=rollout, number=rollout.step, verdict="pass")
        else:
            services.rollout_abort(
                rollout=rollout, reason="fail: PSI 0.49 > 0.2", system_actor="step-controller"
            )
        if then == "commit":
            rollout_commit_pending(writer=self.writer)
        elif then == "die_after_push":
            self.a_worker_dies_after_pushing_a_step()

    @precondition(lambda self: Rollout.objects.exists())
    @rule(
        who=st.sampled_from(PEOPLE),
        act=st.sampled_from(["pause", "resume", "abort", "promote", "lift"]),
    )
    def a_person_acts(self, who, act):
        _count(f"person_{act}")
        rollout = Rollout.objects.order_by("-pk").first()
        actor = self.people[who]
        actions = {
            "pause": lambda: services.rollout_pause(rollout=rollout, actor=actor, reason="look"),
            "resume": lambda: services.rollout_resume(rollout=rollout, actor=actor),
            "abort": lambda: services.rollout_abort(rollout=rollout, actor=actor, reason="bad"),
            "promote": lambda: services.rollout_promote_now(
                rollout=rollout, actor=actor, reason="verified by hand"
            ),
            "lift": lambda: services.rollout_lift_hold(
                rollout=rollout, actor=actor, reason="fixed"
            ),
        }
        self._try(actions[act])

    @precondition(lambda self: Rollout.objects.exclude(pending="").exists())
    @rule()
    def a_worker_dies_after_pushing_a_step(self):
        """The decided commit reaches the remote; the worker dies before recording it."""
        _count("worker_dies_after_push")
        rollout = Rollout.objects.exclude(pending="").first()
        if rollout is None:
            return
        release = Release.objects.get(pk=rollout.release_id)
        if release.state != ReleaseState.DEPLOYING:
            return
        files, message, trailers = rollout_commit(release, rollout, rollout.pending)
        try:
            self.writer.commit_release(
                environment=release.environment.name,
                service=release.service.name,
                files=files,
                message=message,
                trailers=trailers,
                step_key=f"{release.uid}/{rollout.pending}",
            )
        except GitOpsError as exc:
            assert exc.retryable, exc

    @rule()
    def a_poll_makes_the_decided_commits(self):
        _count("poll")
        rollout_commit_pending(writer=self.writer)

    @rule()
    def argo_reports_healthy(self):
        _count("argo")
        self._live_in_staging()

    @rule()
    def on_call_rolls_back(self):
        _count("rollback")
        if self._try(
            lambda: services.release_rollback(
                actor=self.people["otto"],
                service=self.service,
                environment=self.staging,
                reason="errors",
            )
        ):
            deploy_pending(writer=self.writer)

    # --- the end of an example ----------------------------------------------------------
    def _drain_and_compare(self):
        for _ in range(6):
            rollout_commit_pending(writer=self.writer)
            deploy_pending(writer=self.writer)
            self._live_in_staging()
        folder = f"environments/staging/{self.service.name}"
        manifests = {k: v for k, v in self.remote.files_at(folder).items() if k != METADATA_FILE}
        active = _active()
        if active is not None:
            release = active.release
            steps = services.rollout_steps_of(release)
            expected = (
                release.rendered_files
                if steps[active.step - 1].is_promotion
                else release.rollout_files[active.step - 1]
            )
            assert manifests == expected, ("step", active.step)
            return
        live = Release.objects.get(
            service=self.service, environment=self.staging, state=ReleaseState.LIVE
        )
        assert manifests == live.rendered_files, ("live", live.pk)


@pytest.mark.postgres
@pytest.mark.django_db
def test_rollout_invariants_hold_with_workers_dying_between_commit_and_record():
    run_state_machine_as_test(
        RolloutMachine,
        settings=settings(
            max_examples=MACHINE_EXAMPLES,
            stateful_step_count=MACHINE_STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )
    print(f"\nrollout machine rules: {RULES}; refusals: {REFUSALS}")
    assert RULES.get("worker_dies_after_push", 0) > 0, RULES
    assert RULES.get("verdict", 0) > 0, RULES
