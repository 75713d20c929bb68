"""What the product promises about releases whatever people do, as one Hypothesis mixin.

Both state machines (tests/releases/test_state_machine.py drives the services alone,
tests/hardening/test_deploy_machine.py adds the GitOps repository, workers dying and
Argo CD) check these after every step, so a promise is written once and means the same
in both. The machine provides ``self.service``, ``self.staging``, ``self.prod``,
``self.people`` and ``self._try``; the mixin adds the helpers both machines' rules use.
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
