"""Reads for pages, the API and the tasks. Query counts stay constant per page: list
selectors join or prefetch everything their templates touch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from apps.accounts.roles import user_roles
from apps.releases.models import (
    PROMOTION_STANDING_STATES,
    Approval,
    ApprovalDecision,
    ApprovalRule,
    Environment,
    Release,
    ReleaseKind,
    ReleaseState,
    Service,
    ServiceEnvironment,
)
from apps.releases.policy import Decision, PolicyProgress, Rule, open_slots_for, policy_progress


def release_list(
    *,
    service: str = "",
    environment: str = "",
    state: str = "",
    kind: str = "",
) -> QuerySet[Release]:
    releases = Release.objects.select_related(
        "service", "environment", "model_version", "requested_by"
    )
    if service:
        releases = releases.filter(service__name=service)
    if environment:
        releases = releases.filter(environment__name=environment)
    if state:
        releases = releases.filter(state=state)
    if kind:
        releases = releases.filter(kind=kind)
    return releases.order_by("-created_at", "-pk")


def release_detail_queryset() -> QuerySet[Release]:
    return Release.objects.select_related(
        "service",
        "environment",
        "environment__promotes_from",
        "model_version",
        "requested_by",
        "promoted_from",
        "promoted_from__environment",
        "rollback_target",
        "rollback_target__model_version",
        "rolled_back_release",
        "rolled_back_release__model_version",
    ).prefetch_related(
        Prefetch("approvals", queryset=Approval.objects.select_related("approver")),
        Prefetch("environment__approval_rules", queryset=ApprovalRule.objects.all()),
    )


def _rules(environment: Environment) -> list[Rule]:
    return [Rule(role=r.role, min_count=r.min_count) for r in environment.approval_rules.all()]


def _decisions(release: Release) -> list[Decision]:
    return [
        Decision(
            approver=a.approver.get_username(),
            role=a.role,
            approved=a.decision == ApprovalDecision.APPROVE,
        )
        for a in release.approvals.all()
    ]


def release_policy_progress(release: Release) -> PolicyProgress:
    """Where the release stands against its environment's approval rules."""
    return policy_progress(_rules(release.environment), _decisions(release))


def inbox_for(user) -> list[tuple[Release, list[str]]]:
    """Releases waiting for this person: they hold a role with an open slot, did not
    request the release and have not decided on it yet. With the roles they can fill."""
    held = user_roles(user)
    if not held:
        return []
    pending = (
        release_detail_queryset()
        .filter(state=ReleaseState.PENDING_APPROVAL, environment__approval_rules__role__in=held)
        .exclude(requested_by=user)
        .distinct()
        .order_by("submitted_at", "pk")
    )
    waiting = []
    for release in pending:
        if any(a.approver_id == user.pk for a in release.approvals.all()):
            continue
        slots = open_slots_for(user_roles=held, progress=release_policy_progress(release))
        if slots:
            waiting.append((release, slots))
    return waiting


def inbox_count_for(user) -> int:
    return len(inbox_for(user))


@dataclass(frozen=True)
class SoakGate:
    required: timedelta
    soaked: timedelta
    ready_at: datetime | None

    @property
    def passed(self) -> bool:
        return self.soaked >= self.required

    @property
    def message(self) -> str:
        need = int(self.required.total_seconds() // 60)
        have = int(self.soaked.total_seconds() // 60)
        if self.passed:
            return f"Soaked {have} min (needs {need} min): ready to promote."
        when = f" Ready at {self.ready_at:%Y-%m-%d %H:%M} UTC." if self.ready_at else ""
        return f"Still soaking: live for {have} min of the {need} min required.{when}"


def standing_promotion(*, source: Release, target: Environment) -> Release | None:
    """The promotion of ``source`` to ``target`` that is on its way or live, if any."""
    return (
        Release.objects.filter(
            promoted_from=source, environment=target, state__in=PROMOTION_STANDING_STATES
        )
        .order_by("pk")
        .first()
    )


def soak_gate(*, source: Release, target: Environment, now: datetime | None = None) -> SoakGate:
    """How long ``source`` has been live in its environment against the target's minimum."""
    now = now or timezone.now()
    required = timedelta(minutes=target.min_soak_minutes)
    if source.live_at is None:
        return SoakGate(required=required, soaked=timedelta(0), ready_at=None)
    soaked = now - source.live_at if source.state == ReleaseState.LIVE else timedelta(0)
    ready_at = source.live_at + required if source.state == ReleaseState.LIVE else None
    return SoakGate(required=required, soaked=soaked, ready_at=ready_at)


def target_drift(release: Release) -> ServiceEnvironment | None:
    """The target of ``release`` if its folder holds an unapproved change, else None."""
    return (
        ServiceEnvironment.objects.filter(
            service_id=release.service_id, environment_id=release.environment_id
        )
        .exclude(drift_revision="")
        .first()
    )


def rollback_in_flight(release: Release) -> Release | None:
    """A rollback (or restore) of ``release``'s target still on its way, if any."""
    return (
        Release.objects.filter(
            service_id=release.service_id,
            environment_id=release.environment_id,
            kind=ReleaseKind.ROLLBACK,
            state__in=[
                ReleaseState.PENDING_APPROVAL,
                ReleaseState.APPROVED,
                ReleaseState.DEPLOYING,
            ],
        )
        .order_by("-pk")
        .first()
    )


def live_release(*, service: Service, environment: Environment) -> Release | None:
    return (
        Release.objects.select_related("model_version")
        .filter(service=service, environment=environment, state=ReleaseState.LIVE)
        .first()
    )


def service_list() -> QuerySet[Service]:
    return Service.objects.prefetch_related(
        Prefetch("targets", queryset=ServiceEnvironment.objects.select_related("environment"))
    ).order_by("name")


def environment_list() -> QuerySet[Environment]:
    return (
        Environment.objects.select_related("promotes_from")
        .prefetch_related("approval_rules")
        .order_by("order", "name")
    )


def live_releases_by_target() -> dict[tuple[int, int], Release]:
    """Every live release, keyed by (service id, environment id), in one query."""
    return {
        (r.service_id, r.environment_id): r
        for r in Release.objects.select_related("model_version").filter(state=ReleaseState.LIVE)
    }


def releases_awaiting_commit() -> QuerySet[Release]:
    """Approved releases, and claimed ones whose commit was never recorded (their worker
    died): both still need the deployer to commit them."""
    return Release.objects.filter(
        Q(state=ReleaseState.APPROVED) | Q(state=ReleaseState.DEPLOYING, commit_sha="")
    )


def releases_in_flight() -> QuerySet[Release]:
    return Release.objects.filter(
        Q(state=ReleaseState.DEPLOYING) | Q(state=ReleaseState.APPROVED)
    ).select_related("service", "environment", "model_version")


@dataclass(frozen=True)
class Changes:
    against: str  # what the release is compared with, in words
    diff: str  # unified diff, "" when nothing changes
    error: str = ""  # why the comparison could not be made


OPEN_STATES = (ReleaseState.DRAFT, ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED)


def release_changes(release: Release) -> Changes:
    """The unified diff reviewers look at. While the release is open it is compared with
    what the GitOps repository holds now for its folder; afterwards with the release that
    was live before it (from the database, so history pages need no git access)."""
    from apps.gitops.diff import unified_diff
    from apps.gitops.errors import GitOpsError
    from apps.gitops.paths import release_folder

    folder = str(release_folder(release.environment.name, release.service.name))
    if release.state in OPEN_STATES:
        from apps.releases.cluster import repository_writer

        writer = repository_writer()
        if writer is None:
            return Changes(
                against="the GitOps repository",
                diff="",
                error="No GitOps repository is configured (GITOPS_REPO_URL).",
            )
        try:
            current = writer.current_files(release.environment.name, release.service.name)
        except GitOpsError as exc:
            return Changes(
                against="the GitOps repository",
                diff="",
                error=f"The GitOps repository cannot be read right now: {exc}",
            )
        finally:
            writer.close()
        current = {
            name: text
            for name, text in current.items()
            if name in release.rendered_files or not name.startswith("slipway-")
        }
        return Changes(
            against=f"what {folder} holds now",
            diff=unified_diff(current, release.rendered_files, folder=folder),
        )
    previous = (
        Release.objects.filter(
            service_id=release.service_id,
            environment_id=release.environment_id,
            live_at__isnull=False,
            live_at__lt=release.live_at or timezone.now(),
        )
        .exclude(pk=release.pk)
        .order_by("-live_at")
        .first()
    )
    if previous is None:
        return Changes(
            against="an empty folder (first release here)",
            diff=unified_diff({}, release.rendered_files, folder=folder),
        )
    return Changes(
        against=f"release #{previous.pk} ({previous.model_version})",
        diff=unified_diff(previous.rendered_files, release.rendered_files, folder=folder),
    )
