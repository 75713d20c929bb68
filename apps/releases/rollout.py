"""Following deploying releases to live (or failed) from what Argo CD reports.

A release is live when Argo CD's Application ``<service>-<environment>`` is Synced at the
release's commit (or a descendant of it: a later unrelated commit elsewhere in the repo
also carries this folder) and Healthy. It fails when Argo reports Degraded for longer
than a grace period, or when it is not healthy within ROLLOUT_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.gitops.argo import ApplicationStatus
from apps.gitops.errors import GitOpsError
from apps.releases import services
from apps.releases.models import Release, ReleaseState, ServiceEnvironment

log = logging.getLogger(__name__)

# Argo CD may report Degraded briefly while pods restart; wait this long before failing.
DEGRADED_GRACE = timedelta(seconds=60)


@dataclass(frozen=True)
class Verdict:
    outcome: str  # "live" | "failed" | "waiting"
    message: str


def rollout_verdict(
    *,
    status: ApplicationStatus,
    at_commit: bool,
    started_at: datetime,
    now: datetime,
    degraded_since: datetime | None = None,
) -> Verdict:
    """Pure decision from one observation. ``at_commit``: the synced revision is the
    release's commit or a descendant of it."""
    elapsed = now - started_at
    timeout = timedelta(seconds=settings.ROLLOUT_TIMEOUT_SECONDS)
    detail = f" ({status.message})" if status.message else ""
    if not status.exists:
        if elapsed > timeout:
            return Verdict(
                "failed",
                f"Argo CD never created application {status.name} within "
                f"{int(timeout.total_seconds())} s; is the ApplicationSet installed?",
            )
        return Verdict("waiting", f"waiting for Argo CD to create application {status.name}")
    if at_commit and status.sync_status == "Synced" and status.health_status == "Healthy":
        return Verdict("live", f"Synced at {status.revision[:12]} and Healthy")
    if at_commit and status.health_status == "Degraded":
        since = degraded_since or now
        if now - since >= DEGRADED_GRACE or elapsed > timeout:
            return Verdict("failed", f"Argo CD reports Degraded{detail}")
        return Verdict("waiting", f"Degraded for {int((now - since).total_seconds())} s{detail}")
    if elapsed > timeout:
        return Verdict(
            "failed",
            f"not Synced and Healthy after {int(timeout.total_seconds())} s: "
            f"{status.sync_status}/{status.health_status}{detail}",
        )
    phase = "syncing" if not at_commit else (status.health_status or "progressing").lower()
    return Verdict(
        "waiting",
        f"{phase}: Argo CD says {status.sync_status or '?'}/{status.health_status or '?'}{detail}",
    )


def follow_rollouts(*, reader, writer=None, now: datetime | None = None) -> list[tuple[int, str]]:
    """Observe every deploying release once and move it to live or failed when Argo CD's
    answer says so. Also records the status of every target with a live release for the
    fleet overview. Returns (release id, outcome) pairs."""
    now = now or timezone.now()
    results = []
    deploying = list(
        Release.objects.select_related("service", "environment")
        .filter(state=ReleaseState.DEPLOYING)
        .exclude(commit_sha="")  # claimed but not committed yet: nothing for Argo CD to sync
        .order_by("deploy_started_at", "pk")
    )
    seen_targets = set()
    for release in deploying:
        app = f"{release.service.name}-{release.environment.name}"
        try:
            status = reader.get(app)
        except GitOpsError as exc:
            services.release_note_status(release=release, message=f"cluster unreachable: {exc}")
            results.append((release.pk, "waiting"))
            continue
        at_commit = _at_commit(release.commit_sha, status.revision, writer)
        degraded_since = _degraded_since(release, status, now)
        verdict = rollout_verdict(
            status=status,
            at_commit=at_commit,
            started_at=release.deploy_started_at or now,
            now=now,
            degraded_since=degraded_since,
        )
        _record_target(release.service_id, release.environment_id, status)
        seen_targets.add((release.service_id, release.environment_id))
        if verdict.outcome == "live":
            services.release_mark_live(release=release, message=verdict.message)
        elif verdict.outcome == "failed":
            services.release_mark_failed(release=release, message=verdict.message)
        else:
            services.release_note_status(release=release, message=verdict.message)
        results.append((release.pk, verdict.outcome))
    _refresh_live_targets(reader, skip=seen_targets)
    return results


def _at_commit(commit: str, revision: str, writer) -> bool:
    if not commit or not revision:
        return False
    if revision == commit:
        return True
    if writer is None:
        return False
    try:
        return writer.is_ancestor(commit, revision)
    except GitOpsError:
        return False


def _degraded_since(release: Release, status: ApplicationStatus, now: datetime) -> datetime | None:
    """When Degraded was first seen, from the target's previous observation (read before
    this one is recorded); ``now`` when this is the first Degraded answer."""
    if status.health_status != "Degraded":
        return None
    target = ServiceEnvironment.objects.filter(
        service_id=release.service_id, environment_id=release.environment_id
    ).first()
    if target and target.health_status == "Degraded" and target.health_since:
        return max(target.health_since, release.deploy_started_at or target.health_since)
    return now


def _record_target(service_id: int, environment_id: int, status: ApplicationStatus) -> None:
    target, _ = ServiceEnvironment.objects.get_or_create(
        service_id=service_id, environment_id=environment_id
    )
    services.target_record_status(
        target=target,
        sync_status=status.sync_status or ("Missing" if not status.exists else ""),
        health_status=status.health_status or "",
        revision=status.revision or "",
        message=status.message or "",
    )


def _refresh_live_targets(reader, *, skip: set) -> None:
    for target in ServiceEnvironment.objects.select_related("service", "environment"):
        if (target.service_id, target.environment_id) in skip:
            continue
        if not Release.objects.filter(
            service_id=target.service_id,
            environment_id=target.environment_id,
            state=ReleaseState.LIVE,
        ).exists():
            continue
        try:
            status = reader.get(target.application_name)
        except GitOpsError:
            log.warning("cannot read Argo CD application %s", target.application_name)
            continue
        _record_target(target.service_id, target.environment_id, status)
