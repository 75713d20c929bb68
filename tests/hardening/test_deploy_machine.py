"""Property test of the whole release path, GitOps repository included.

A hypothesis rule-based state machine drives random sequences of: create / submit /
approve / reject / cancel / promote (as random people), deploy (``deploy_pending``
against a real bare repository), the remote refusing pushes (a pre-receive hook), a
worker dying (after its claim, or after its push but before the database heard),
Argo CD reporting Synced+Healthy or Degraded (the demo cluster simulator reading the
bare repository), and rollback. After every step it checks:

- only legal transitions appear in the audit log;
- no one approves their own release, and no one decides twice;
- whatever is approved, deploying or live met its approval policy (or broke glass);
- at most one live release per service and environment;
- the audit chain verifies.

And whenever it drains the queue (remote healthy, deploy until nothing is approved or
claimed, Argo CD catching up): for every target, the GitOps repository's files (less
the metadata file) are exactly the live release's rendered files, and every recorded
commit is on the remote exactly once under its Release-Id trailer.

Bounded: MACHINE_EXAMPLES x MACHINE_STEPS; well under 90 s.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
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
from apps.gitops.demo_cluster import DemoClusterReader
from apps.gitops.errors import GitOpsError
from apps.gitops.render import METADATA_FILE
from apps.releases import rollout, services
from apps.releases.deploy import (
    deploy_pending,
    next_release_to_commit,
    release_commit_files,
    release_commit_message,
)
from apps.releases.models import Release, ReleaseState
from tests.fixtures.git import ScratchGitops
from tests.state_invariants import ReleaseInvariants

MACHINE_EXAMPLES = 25
MACHINE_STEPS = 20
# No shrinking in the suite: every example builds a git repository, and shrinking a
# failure can take many minutes. A failure prints the whole (replayable) sequence; set
# SLIPWAY_MACHINE_SHRINK=1 to shrink it locally.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + (
    [Phase.shrink] if os.environ.get("SLIPWAY_MACHINE_SHRINK") == "1" else []
)
PEOPLE = ["alice", "bob", "pat", "paula", "carol", "otto", "ada", "dual", "nobody"]
CREATORS = ["alice", "bob", "ada", "pat"]  # pat is refused: not an ML engineer
REVIEWERS = ["pat", "paula", "carol", "dual", "alice", "nobody"]
REJECT_ALL = "#!/bin/sh\necho 'the GitOps repository is frozen' >&2\nexit 1\n"
# Figures for docs/reliability.md, printed by the test.
STATES: dict[str, int] = {}
STATS = {"examples": 0, "steps": 0, "drains": 0, "commits": 0, "pushes_refused": 0}
RULES: dict[str, int] = {}


def _step():
    """Count a step, by rule name (the caller), for the figures."""
    name = sys._getframe(1).f_code.co_name
    STATS["steps"] += 1
    RULES[name] = RULES.get(name, 0) + 1


def _moving():
    return Release.objects.filter(state__in=[ReleaseState.APPROVED, ReleaseState.DEPLOYING])


def _committed():
    return Release.objects.filter(state=ReleaseState.DEPLOYING).exclude(commit_sha="")


class DegradedReader:
    """Argo CD answering Degraded at whatever revision the simulator would report."""

    def __init__(self, inner: DemoClusterReader):
        self.inner = inner

    def get(self, name: str):
        status = self.inner.get(name)
        if not status.exists:
            return status
        return type(status)(
            name=status.name,
            sync_status="Synced",
            revision=status.revision,
            health_status="Degraded",
            operation_phase="Succeeded",
            message="CrashLoopBackOff",
            exists=True,
        )


class DeployMachine(ReleaseInvariants, RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        STATS["examples"] += 1
        # The example's transaction, rolled back at teardown: audited, so the services
        # inside it run as savepoints of an audited transaction (the lock order holds).
        self._atomic = audited_atomic()
        self._atomic.__enter__()
        self.gitops = ScratchGitops(prefix="slipway-machine-")
        self.remote, self.writer = self.gitops.remote, self.gitops.writer
        self.healthy = self.gitops.healthy
        self._cast(PEOPLE, versions=3)

    def teardown(self):
        try:
            # Whatever the sequence did, draining at the end must leave the repository
            # describing what is live (the rule below also does this mid-sequence).
            self._drain_and_compare()
            for state in Release.objects.values_list("state", flat=True):
                STATES[state] = STATES.get(state, 0) + 1
        finally:
            self._close()

    def _close(self):
        try:
            self.gitops.close()
        finally:
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)

    # --- helpers ------------------------------------------------------------------------
    def _try(self, action):
        try:
            return action()
        except DomainError:
            return None

    def _deploy(self):
        try:
            done = deploy_pending(writer=self.writer)
            STATS["commits"] += sum(1 for d in done if d.created)
        except GitOpsError as exc:
            assert exc.retryable, exc
            STATS["pushes_refused"] += 1

    @initialize()
    def something_is_live_in_staging(self):
        """Start from v1 live in staging (through the real deploy path), so rollbacks,
        promotions and restores have something to work on from the first step."""
        release, _ = services.release_create(
            actor=self.people["alice"],
            service=self.service,
            environment=self.staging,
            model_version=self.versions[0],
            reason="first",
        )
        services.release_submit(actor=self.people["alice"], release=release)
        self._deploy()
        rollout.follow_rollouts(reader=self.healthy, writer=self.writer)
        release.refresh_from_db()
        assert release.state == ReleaseState.LIVE, release.status_message

    # --- people -------------------------------------------------------------------------
    @rule(who=st.sampled_from(CREATORS), version=st.integers(0, 2), submit=st.booleans())
    def create(self, who, version, submit):
        """Mostly the ML engineers; the others are refused. Often submitted at once
        (staging needs no approval, so that is an approved release)."""
        _step()
        release = self._try(
            lambda: services.release_create(
                actor=self.people[who],
                service=self.service,
                environment=self.staging,
                model_version=self.versions[version],
                reason="machine",
            )
        )
        if release is not None and submit:
            self._try(lambda: services.release_submit(actor=self.people[who], release=release[0]))

    @rule(
        action=st.sampled_from(["submit", "approve", "approve", "reject", "cancel"]),
        who=st.sampled_from([None, *REVIEWERS, *PEOPLE]),
        index=st.integers(0, 30),
    )
    def decide(self, action, who, index):
        """Someone submits, approves, rejects or cancels a release; ``who`` None is the
        release's requester. (One rule for the four, so the deploy-side rules get their
        share of the steps.)"""
        _step()
        RULES[action] = RULES.get(action, 0) + 1
        if (release := self._release(index)) is None:
            return
        actor = release.requested_by if who is None else self.people[who]
        if actor is None:
            return
        if action == "submit":
            self._try(lambda: services.release_submit(actor=actor, release=release))
        elif action == "approve":
            self._try(lambda: services.release_approve(actor=actor, release=release))
        elif action == "reject":
            self._try(lambda: services.release_reject(actor=actor, release=release, comment="no"))
        else:
            self._try(lambda: services.release_cancel(actor=actor, release=release))

    @rule(who=st.sampled_from(CREATORS), index=st.integers(0, 30))
    def promote(self, who, index):
        _step()
        if (release := self._release(index)) is not None:
            release = self._soaked(release)
            self._try(lambda: services.release_promote(actor=self.people[who], source=release))

    @rule(who=st.sampled_from(["otto", "ada", "alice"]), env=st.sampled_from(["staging", "prod"]))
    def rollback(self, who, env):
        _step()
        self._rollback(who, env, reason="machine rollback")

    # --- the deploy worker, the remote and Argo CD ---------------------------------------
    @precondition(lambda self: next_release_to_commit() is not None)
    @rule(remote_refuses=st.booleans())
    def deploy(self, remote_refuses):
        """Drain the queue; with ``remote_refuses`` a pre-receive hook rejects every push
        (a frozen repository, a failing policy check) until the next deploy or drain."""
        _step()
        if remote_refuses:
            self.remote.set_hook("pre-receive", REJECT_ALL)
        else:
            self.remote.remove_hook("pre-receive")
        self._deploy()

    @precondition(lambda self: next_release_to_commit() is not None)
    @rule()
    def worker_dies_after_claim(self):
        """A worker claimed the oldest approved release and was killed before it wrote."""
        _step()
        if (release := next_release_to_commit()) is not None:
            services.release_deploy_claim(release=release)

    @precondition(lambda self: next_release_to_commit() is not None)
    @rule()
    def worker_dies_after_push(self):
        """A worker pushed the release's commit and was killed before the database heard."""
        _step()
        release = next_release_to_commit()
        if release is None or not services.release_deploy_claim(release=release):
            return
        message, trailers = release_commit_message(release)
        try:
            self.writer.commit_release(
                environment=release.environment.name,
                service=release.service.name,
                files=release_commit_files(release),
                message=message,
                trailers=trailers,
            )
        except GitOpsError as exc:
            assert exc.retryable, exc

    @precondition(lambda self: _committed().exists())
    @rule()
    def argo_reports_healthy(self):
        _step()
        rollout.follow_rollouts(reader=self.healthy, writer=self.writer)

    @precondition(lambda self: _committed().exists())
    @rule()
    def argo_reports_degraded(self):
        """Degraded past the grace period: the release fails, the live one is restored."""
        _step()
        reader = DegradedReader(self.healthy)
        now = timezone.now()
        rollout.follow_rollouts(reader=reader, writer=self.writer, now=now)
        later = now + rollout.DEGRADED_GRACE + timedelta(seconds=1)
        rollout.follow_rollouts(reader=reader, writer=self.writer, now=later)

    @precondition(lambda self: _moving().exists())
    @rule()
    def drain_and_compare(self):
        """The remote is healthy again and the queue drains: the repository then holds
        exactly what the database calls live, each commit once."""
        _step()
        STATS["drains"] += 1
        self._drain_and_compare()

    def _drain_and_compare(self):
        self.remote.remove_hook("pre-receive")
        moving = Release.objects.filter(state__in=[ReleaseState.APPROVED, ReleaseState.DEPLOYING])
        for _ in range(6):
            if not moving.exists():
                break
            self._deploy()
            rollout.follow_rollouts(reader=self.healthy, writer=self.writer)
        assert not moving.exists(), list(moving.values_list("pk", "state", "commit_sha"))
        self._assert_repository_matches_live()
        self._assert_each_commit_once()

    def _assert_repository_matches_live(self):
        for environment in (self.staging, self.prod):
            folder = f"environments/{environment.name}/{self.service.name}"
            files = self.remote.files_at(folder)
            manifests = {k: v for k, v in files.items() if k != METADATA_FILE}
            live = Release.objects.filter(
                service=self.service, environment=environment, state=ReleaseState.LIVE
            ).first()
            if live is not None:
                assert manifests == live.rendered_files, (environment.name, live.pk)
                continue
            # Nothing live: the folder is empty, or holds a release that failed with
            # nothing to restore (its failure is on the release page).
            if files:
                head = self.remote.git(
                    "log", "-1", "--format=%H", "main", "--", folder
                ).stdout.decode()
                owner = Release.objects.get(commit_sha=head.strip())
                assert owner.state == ReleaseState.FAILED, (environment.name, owner.pk)

    def _assert_each_commit_once(self):
        for release in Release.objects.exclude(commit_sha=""):
            commits = self.remote.commits_with_trailer("Release-Id", str(release.uid))
            assert commits == [release.commit_sha], (release.pk, commits)
        for release in Release.objects.filter(commit_sha=""):
            commits = self.remote.commits_with_trailer("Release-Id", str(release.uid))
            assert commits == [], (release.pk, release.state, commits)


@pytest.mark.postgres
@pytest.mark.django_db
def test_deploy_path_invariants_hold_under_random_faults():
    run_state_machine_as_test(
        DeployMachine,
        settings=settings(
            max_examples=MACHINE_EXAMPLES,
            stateful_step_count=MACHINE_STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=PHASES,
        ),
    )
    print(f"\ndeploy machine: {STATS}; rules: {RULES}; release end states: {STATES}")
    # The random steps (not just set-up and teardown) reached the faults and the drains.
    assert RULES.get("drain_and_compare", 0) > 0, RULES
    worker_deaths = RULES.get("worker_dies_after_push", 0) + RULES.get("worker_dies_after_claim", 0)
    assert worker_deaths > 0, RULES
