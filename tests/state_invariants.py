"""What the product promises about releases whatever people do, as one Hypothesis mixin.

Both state machines (tests/releases/test_state_machine.py drives the services alone,
tests/hardening/test_deploy_machine.py adds the GitOps repository, workers dying and
Argo CD) check these after every step, so a promise is written once and means the same
in both. The machine provides ``self._try`` and makes ``self.service``, ``self.staging``,
``self.prod``, ``self.people`` and ``self.versions`` with ``_cast``; the mixin adds the
helpers the machines' rules use. The GitOps side of the machines that commit is
tests/fixtures/git.py ``ScratchGitops``.
"""

from __future__ import annotations

from hypothesis.stateful import invariant

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.releases import services
from apps.releases.models import RELEASE_TRANSITIONS, Approval, Release, ReleaseState
from tests import factories

# A day: far past any soak gate, so a promotion rule is judged on everything else.
SOAKED_A_DAY = 24 * 60


class ReleaseInvariants:
    """Mix into a ``RuleBasedStateMachine`` (before it in the bases)."""

    def _cast(self, people, versions: int) -> None:
        """What every machine starts from: ``people`` (names from tests/factories),
        staging and prod, the churn-model service and its model versions 1..``versions``."""
        self.people = {name: factories.make_user(name) for name in people}
        self.staging, self.prod = factories.make_environments()
        self.service = factories.make_service()
        self.versions = [
            factories.make_model_version(self.service.registered_model, v)
            for v in range(1, versions + 1)
        ]

    def _release(self, index):
        """The ``index``-th release (modulo how many there are), or None before any."""
        releases = list(Release.objects.order_by("pk"))
        return releases[index % len(releases)] if releases else None

    def _rollback(self, who, env, *, reason):
        """``who`` rolls back the service in ``env`` ("staging" or "prod"), through the
        machine's ``_try`` (a refusal is an outcome, not a failure)."""
        environment = self.staging if env == "staging" else self.prod
        return self._try(
            lambda: services.release_rollback(
                actor=self.people[who],
                service=self.service,
                environment=environment,
                reason=reason,
            )
        )

    def _soaked(self, release):
        """``release`` as if it had soaked long enough to promote, when it ever went live
        (a release that never did must be refused for that, not for its soak time)."""
        if release.live_at:
            return factories.backdate_live(release, minutes=SOAKED_A_DAY)
        return release

    @invariant()
    def at_most_one_live_release_per_target(self):
        for env in (self.staging, self.prod):
            live = Release.objects.filter(
                service=self.service, environment=env, state=ReleaseState.LIVE
            ).count()
            assert live <= 1

    @invariant()
    def only_legal_transitions_were_recorded(self):
        for before, after in AuditEvent.objects.filter(
            target_type="release", before__isnull=False
        ).values_list("before", "after"):
            if before and "state" in before and after and "state" in after:
                assert after["state"] in RELEASE_TRANSITIONS[before["state"]], (before, after)

    @invariant()
    def approvers_are_never_the_requester_and_never_twice(self):
        pairs = list(
            Approval.objects.values_list("release_id", "approver_id", "release__requested_by_id")
        )
        assert all(approver != requester for _, approver, requester in pairs)
        assert len({(r, a) for r, a, _ in pairs}) == len(pairs)

    @invariant()
    def approved_releases_met_their_policy_or_broke_glass(self):
        from apps.releases.selectors import release_policy_progress

        for release in Release.objects.filter(
            state__in=[ReleaseState.APPROVED, ReleaseState.DEPLOYING, ReleaseState.LIVE],
            break_glass=False,
        ):
            assert release_policy_progress(release).met, release.pk

    @invariant()
    def audit_chain_verifies(self):
        assert audit_chain_verify()[1] is None


class RolloutInvariants:
    """What progressive delivery promises whatever people, verdicts and dying workers do
    (tests/releases/test_rollout_machine.py). The machine provides ``self.remote`` (a
    tests.fixtures.git.BareRemote) and ``self.service``."""

    def _step_keys_on_remote(self) -> dict[str, list[str]]:
        out = self.remote.git(
            "log", "--format=%H%x00%(trailers:key=Step-Key,valueonly,separator=%x01)", "main"
        ).stdout.decode()
        keys: dict[str, list[str]] = {}
        for line in out.splitlines():
            sha, _, values = line.partition("\x00")
            for value in filter(None, (v.strip() for v in values.split("\x01"))):
                keys.setdefault(value, []).append(sha)
        return keys

    @invariant()
    def each_step_is_on_the_remote_at_most_once(self):
        for key, shas in self._step_keys_on_remote().items():
            assert len(shas) == 1, (key, shas)

    @invariant()
    def recorded_steps_are_contiguous_and_on_the_remote_under_their_key(self):
        from apps.audit.models import AuditEvent
        from apps.releases import services
        from apps.releases.models import Rollout

        keys = self._step_keys_on_remote()
        for rollout in Rollout.objects.select_related("release"):
            uid = rollout.release.uid
            last = len(services.rollout_steps_of(rollout.release))
            # On-call's "promote now" jumps to the promotion: the one gap allowed.
            jumped = AuditEvent.objects.filter(
                action="rollout.promote_now", target_type="release", target_id=rollout.release_id
            ).exists()

            def contiguous(numbers, rollout=rollout, jumped=jumped, last=last):
                numbers = sorted(numbers)
                if jumped and numbers and numbers[-1] == last:
                    numbers = numbers[:-1]
                return numbers == list(range(1, len(numbers) + 1))

            recorded = dict(
                rollout.steps.exclude(commit_sha="").values_list("number", "commit_sha")
            )
            assert contiguous(recorded), (rollout.pk, recorded)
            assert max(recorded, default=0) == rollout.step, (rollout.pk, recorded, rollout.step)
            for number, sha in recorded.items():
                assert keys.get(f"{uid}/step-{number}") == [sha], (rollout.pk, number)
            # No step skipped on the remote either, and at most one pushed beyond what is
            # recorded (by a worker that died before recording it).
            pushed = [int(key.rsplit("-", 1)[1]) for key in keys if key.startswith(f"{uid}/step-")]
            assert contiguous(pushed), (rollout.pk, sorted(pushed))
            assert len(set(pushed) - set(recorded)) <= 1, (rollout.pk, pushed, recorded)
            if rollout.abort_commit_sha:
                assert keys.get(f"{uid}/abort") == [rollout.abort_commit_sha]

    @invariant()
    def a_held_candidate_was_aborted_and_its_release_failed(self):
        from apps.releases.models import ReleaseState, Rollout, RolloutState

        for rollout in Rollout.objects.filter(state=RolloutState.HELD).select_related("release"):
            assert rollout.abort_commit_sha and not rollout.pending, rollout.pk
            assert rollout.release.state == ReleaseState.FAILED, rollout.pk

    @invariant()
    def at_most_one_rollout_under_way_per_target(self):
        from apps.releases.models import Rollout, RolloutState

        active = Rollout.objects.filter(
            state__in=[RolloutState.RUNNING, RolloutState.PAUSED]
        ).values_list("release__service_id", "release__environment_id")
        assert len(list(active)) == len(set(active))
