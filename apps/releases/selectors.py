"""Reads for pages, the API and the tasks. Query counts stay constant per page: list
selectors join or prefetch everything their templates touch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from apps.accounts.roles import REVIEWER_ROLES, holders_q, role_team_ids, user_roles
from apps.releases import permissions
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
from apps.releases.shadow_report import judged_report


def release_list(
    *,
    service: str = "",
    environment: str = "",
    state: str = "",
    kind: str = "",
    team: str = "",
) -> QuerySet[Release]:
    releases = Release.objects.select_related(
        "service", "service__owner_team", "environment", "model_version", "requested_by"
    )
    if service:
        releases = releases.filter(service__name=service)
    if environment:
        releases = releases.filter(environment__name=environment)
    if state:
        releases = releases.filter(state=state)
    if kind:
        releases = releases.filter(kind=kind)
    if team:
        releases = releases.filter(service__owner_team__slug=team)
    return releases.order_by("-created_at", "-pk")


def release_detail_queryset() -> QuerySet[Release]:
    return Release.objects.select_related(
        "service",
        "service__owner_team",
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
    """Releases waiting for this person: of a team where they hold a reviewer role with
    an open slot, not requested by them, not decided by them yet, and not of a model they
    trained where the environment separates duties. With the roles they can fill."""
    held = user_roles(user) & REVIEWER_ROLES
    if not held:
        return []
    pending = (
        release_detail_queryset()
        .filter(state=ReleaseState.PENDING_APPROVAL, environment__approval_rules__role__in=held)
        .exclude(requested_by=user)
        .distinct()
        .order_by("submitted_at", "pk")
    )
    team_ids = role_team_ids(user, *REVIEWER_ROLES)
    if team_ids is not None:
        pending = pending.filter(service__owner_team_id__in=team_ids)
    waiting = []
    for release in pending:
        if any(a.approver_id == user.pk for a in release.approvals.all()):
            continue
        if permissions.trainer_blocked(user, release):
            continue
        slots = open_slots_for(
            user_roles=permissions.review_roles(user, release),
            progress=release_policy_progress(release),
        )
        if slots:
            waiting.append((release, slots))
    return waiting


def eligible_reviewers(release: Release) -> list:
    """Everyone who could fill an open approval slot of ``release`` now: active people
    holding a role with an open slot for the service's team (or organisation-wide), who
    did not request it, have not decided on it, and did not train its model where the
    environment separates duties. Empty unless the release waits for approval. The one
    answer to "who should be told this release waits for them"."""
    if release.state != ReleaseState.PENDING_APPROVAL:
        return []
    progress = release_policy_progress(release)
    if progress.rejected:
        return []
    open_roles = [r.role for r in progress.roles if not r.met]
    if not open_roles:
        return []
    holders = holders_q(open_roles, release.service.owner_team_id)
    decided = [a.approver_id for a in release.approvals.all()]
    people = (
        get_user_model()
        .objects.filter(holders)
        .exclude(pk__in=decided)
        .distinct()
        .order_by("username")
    )
    if release.requested_by_id is not None:
        people = people.exclude(pk=release.requested_by_id)
    return [person for person in people if not permissions.trainer_blocked(person, release)]


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


def guard_judges_as(release: Release) -> Release:
    """The release whose kind the auto-rollback guard goes by for ``release``: a drift
    restore re-commits the files of the release it restores, so it stands for that one
    (followed through a restore of a restore); any other release for itself. So a drift
    restore of a deploy stays guarded as the deploy was, and a drift restore of a
    rollback is still never rolled back (no loop)."""
    seen = set()
    while release.restores_in_place and release.pk not in seen:
        seen.add(release.pk)
        release = release.rollback_target
    return release


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
    return (
        Service.objects.select_related("owner_team")
        .prefetch_related(
            Prefetch("targets", queryset=ServiceEnvironment.objects.select_related("environment"))
        )
        .order_by("name")
    )


def services_released_by(user) -> QuerySet[Service]:
    """The services ``user`` may create releases of: their teams' (every team's for an
    organisation-wide ML engineer or an admin)."""
    team_ids = permissions.creator_team_ids(user)
    services = Service.objects.order_by("name")
    return services if team_ids is None else services.filter(owner_team_id__in=team_ids)


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
    objects: tuple = ()  # apps.gitops.diff.ObjectChange per changed object, in words


def _changes(against: str, before: dict, after: dict, *, folder: str) -> Changes:
    from apps.gitops.diff import structured_changes, unified_diff

    return Changes(
        against=against,
        diff=unified_diff(before, after, folder=folder),
        objects=tuple(structured_changes(before, after)),
    )


OPEN_STATES = (ReleaseState.DRAFT, ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED)


def release_changes(release: Release) -> Changes:
    """The unified diff reviewers look at. While the release is open it is compared with
    what the GitOps repository holds now for its folder; afterwards with the release that
    was live before it (from the database, so history pages need no git access)."""
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
        return _changes(f"what {folder} holds now", current, release.rendered_files, folder=folder)
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
        return _changes(
            "an empty folder (first release here)", {}, release.rendered_files, folder=folder
        )
    return _changes(
        f"release #{previous.pk} ({previous.model_version})",
        previous.rendered_files,
        release.rendered_files,
        folder=folder,
    )


def replaced_release(release: Release) -> Release | None:
    """The release this one replaces in its environment: the live one while this release
    is still open, afterwards the one that was live before it went live. Reviewers and
    auditors compare against it, before and after go-live alike."""
    if release.live_at is None:
        live = live_release(service=release.service, environment=release.environment)
        return live if live is not None and live.pk != release.pk else None
    return (
        Release.objects.select_related("model_version")
        .filter(
            service_id=release.service_id,
            environment_id=release.environment_id,
            live_at__isnull=False,
            live_at__lt=release.live_at,
        )
        .exclude(pk=release.pk)
        .order_by("-live_at")
        .first()
    )


@dataclass(frozen=True)
class Review:
    """What the top of the release page says, and what an approver's snapshot keeps."""

    summary: object  # apps.releases.review.ReviewSummary
    card: object | None  # apps.registry.selectors.ModelCard
    staging: object | None  # apps.releases.review.StagingFigures
    staging_rows: list
    replaced: Release | None


def release_review(release: Release, *, panels: list) -> Review:
    """The plain-language summary of ``release`` from what its page shows: the model card
    comparison, the serving-configuration change against the release it replaces, the
    soak evidence of the release it promotes (contributed by the metrics panel) and the
    approval progress. ``panels`` are the release page's panels
    (``apps.releases.panels.release_panels``; passed in, since panels read selectors)."""
    from apps.releases.review import StagingFigures, build_summary

    card = next((p.context["card"] for p in panels if "card" in p.context), None)
    replaced = replaced_release(release)
    staging, rows = None, []
    source = release.promoted_from
    if source is not None and source.live_at is not None:
        rows = _evidence_rows(panels, source.pk)
        statuses = {getattr(r, "status", "") for r in rows}
        slo = "over" if "over SLO" in statuses else "within" if "within SLO" in statuses else ""
        end = timezone.now() if source.state == ReleaseState.LIVE else source.ended_at
        soaked = max(timedelta(0), (end or source.live_at) - source.live_at)
        staging = StagingFigures(
            environment=source.environment.name,
            soaked_minutes=int(soaked.total_seconds() // 60),
            required_minutes=release.environment.min_soak_minutes,
            slo=slo or "no data",
        )
    summary = build_summary(
        to_version=f"v{release.model_version.version}",
        from_version=f"v{replaced.model_version.version}" if replaced else None,
        environment=release.environment.name,
        config_before=replaced.config if replaced else None,
        config_after=release.config,
        better=card.better_count if card else 0,
        worse=card.worse_count if card else 0,
        compared=bool(card and card.compare_to),
        staging=staging,
        progress=release_policy_progress(release),
    )
    return Review(summary=summary, card=card, staging=staging, staging_rows=rows, replaced=replaced)


def _evidence_rows(panels: list, release_id: int) -> list:
    for panel in panels:
        for section in panel.context.get("sections", ()):
            if getattr(section.get("release"), "pk", None) == release_id:
                return list(section.get("rows", ()))
    return []


def review_snapshot(release: Release, *, panels: list) -> dict:
    """What a reviewer saw when deciding, as JSON kept on their Approval: the summary, the
    metric comparison against the then-live version, the soak figures and the digest.
    Shown after go-live, when the live comparison no longer exists."""
    review = release_review(release, panels=panels)
    card = review.card
    return {
        "summary": review.summary.parts,
        "digest": release.digest,
        "compared_with": card.compare_label if card and card.compare_to else "",
        "metrics": [
            {
                "name": m.name,
                "value": m.value,
                "other": m.other,
                "verdict": m.verdict,
            }
            for m in (card.metrics if card else [])
        ],
        "staging": {
            "environment": review.staging.environment,
            "soaked_minutes": review.staging.soaked_minutes,
            "required_minutes": review.staging.required_minutes,
            "slo": review.staging.slo,
            "rows": [
                {
                    "label": r.label,
                    "slo": r.threshold_text,
                    "average": r.avg_text,
                    "worst": r.max_text,
                    "over": r.over,
                    "samples": r.samples,
                    "status": r.status,
                }
                for r in review.staging_rows
            ],
        }
        if review.staging
        else None,
        # The shadow evaluation reviewers saw (contributed by the metrics panel), if any.
        # The shadow evaluation reviewers saw: this release's own judged run before
        # approval, else the shadow run the metrics panel found (a rollout's shadow step).
        "shadow": judged_report(release)
        or next((p.context["report"] for p in panels if "report" in p.context), None),
        "taken_at": timezone.now().isoformat(timespec="seconds"),
    }
