"""Following deploying releases to live (or failed) from what Argo CD reports.

Argo CD's verdict combines three things (``docs/rollout-verdict.md`` has the whole
table, generated from ``rollout_verdict`` by its test):

- sync status at a revision: Synced means the live objects match that commit;
- the last sync *operation* and the commit it ran for: Running / Terminating (still
  applying, hooks and waves included), Succeeded, Failed / Error (Argo CD's automated
  sync does not try the same commit again, so waiting would only burn the timeout);
- health, only as good as the health check for each kind (the GitOps repo template
  ships Lua checks for Seldon, KServe and KEDA).

A release is live when Argo CD's Application ``<service>-<environment>`` is Synced at the
release's commit (or a descendant of it: a later unrelated commit elsewhere in the repo
also carries this folder), no operation for that commit is still running or has failed,
and it is Healthy. A Failed/Error operation for that commit fails the release at once
with Argo CD's message; Degraded at that commit fails it after a grace period; anything
else not live within ROLLOUT_TIMEOUT_SECONDS fails it, except Suspended (someone paused
it on purpose: failing would commit a restore behind their back).

Where Argo CD's health says too little, the serving object's own status is read too
(``apps.gitops.workloads``): a Seldon ``Model`` or KServe ``InferenceService`` that is not
ready keeps the release waiting with the controller's reason, and a batch release is
"scheduled" until the first Job of its CronJob succeeds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import yaml
from django.conf import settings
from django.utils import timezone

from apps.gitops.argo import FAILED_PHASES, ApplicationStatus
from apps.gitops.errors import GitOpsError
from apps.releases import services
from apps.releases.models import Release, ReleaseState, Rollout, RolloutState, ServiceEnvironment
from apps.releases.repo_drift import check_live_folders

log = logging.getLogger(__name__)

# Argo CD may report Degraded briefly while pods restart; wait this long before failing.
DEGRADED_GRACE = timedelta(seconds=60)
RUNNING_PHASES = ("Running", "Terminating")
# What to do about a paused rollout, for the usual culprits.
SUSPENDED_HINT = (
    "resume it in the cluster (Argo Rollouts: promote or resume; KEDA: remove the "
    "autoscaling.keda.sh/paused annotation; KServe: remove serving.kserve.io/stop; "
    "CronJob: set suspend: false) and the release goes live"
)


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
    operation_at_commit: bool | None = None,
) -> Verdict:
    """Pure decision from one observation.

    ``at_commit``: the revision Argo CD compares with is the release's commit or a
    descendant of it. ``operation_at_commit``: the same for the last sync operation's
    revision (defaults to ``at_commit``: Argo CD's operation ran for the revision it
    compares with). An operation for an older commit says nothing about this release.
    """
    elapsed = now - started_at
    timeout = timedelta(seconds=settings.ROLLOUT_TIMEOUT_SECONDS)
    detail = f" ({status.message})" if status.message else ""
    ours = at_commit if operation_at_commit is None else operation_at_commit
    phase = status.operation_phase if ours else ""
    if not status.exists:
        if elapsed > timeout:
            return Verdict(
                "failed",
                f"Argo CD never created application {status.name} within "
                f"{int(timeout.total_seconds())} s; is the ApplicationSet installed?",
            )
        return Verdict("waiting", f"waiting for Argo CD to create application {status.name}")
    if phase in FAILED_PHASES:
        why = status.failure_message or status.message or "no message"
        return Verdict("failed", f"Argo CD sync {phase.lower()}: {why}")
    applying = phase in RUNNING_PHASES
    if at_commit and not applying and status.synced and status.healthy:
        return Verdict("live", f"Synced at {status.revision[:12]} and Healthy")
    if at_commit and status.health_status == "Suspended":
        why = status.health_message or status.message or "a resource is suspended"
        return Verdict("waiting", f"paused: Argo CD reports Suspended ({why}); {SUSPENDED_HINT}")
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
    state = f"Argo CD says {status.sync_status or '?'}/{status.health_status or '?'}"
    if not at_commit:
        if status.health_status == "Degraded":
            # The previous revision is what is degraded; ours has not been applied yet.
            return Verdict("waiting", f"syncing: {state} on the previous revision{detail}")
        return Verdict("waiting", f"syncing: {state}{detail}")
    if applying:
        return Verdict("waiting", f"syncing: operation {phase}, {state}{detail}")
    return Verdict("waiting", f"{(status.health_status or 'progressing').lower()}: {state}{detail}")


def follow_rollouts(
    *, reader, writer=None, now: datetime | None = None, workloads=None
) -> list[tuple[int, str]]:
    """Observe every deploying release once and move it to live or failed when Argo CD's
    answer (and the serving object's own status) says so. Also records the status of
    every target with a live release for the fleet overview, and checks that the folder
    Argo CD syncs still holds the live release's approved files (``repo_drift``; needs
    ``writer``). ``workloads`` reads serving
    objects and Jobs; by default the reader's own (``reader.workloads``), if it has one.
    Returns (release id, outcome) pairs."""
    now = now or timezone.now()
    if workloads is None:
        workloads = getattr(reader, "workloads", None)
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
        operation_at_commit = (
            _at_commit(release.commit_sha, status.operation_revision, writer)
            if status.operation_revision
            else None
        )
        degraded_since = _degraded_since(release, status, now)
        verdict = rollout_verdict(
            status=status,
            at_commit=at_commit,
            started_at=release.deploy_started_at or now,
            now=now,
            degraded_since=degraded_since,
            operation_at_commit=operation_at_commit,
        )
        # A failed sync never applied our objects: what they say is the previous revision's.
        sync_failed = verdict.outcome == "failed" and status.operation_failed
        if workloads is not None and at_commit and not sync_failed:
            verdict = _workload_verdict(release, verdict, workloads)
        _record_target(release.service_id, release.environment_id, status)
        seen_targets.add((release.service_id, release.environment_id))
        if verdict.outcome == "live" and _stepping(release):
            # A step of a progressive rollout is healthy: the step controller, not Argo
            # CD, decides when the candidate takes all the traffic.
            services.release_note_status(release=release, message=f"step: {verdict.message}")
            verdict = Verdict("waiting", verdict.message)
        elif verdict.outcome == "live":
            services.release_mark_live(release=release, message=verdict.message)
        elif verdict.outcome == "failed":
            services.release_mark_failed(release=release, message=verdict.message)
        else:
            services.release_note_status(release=release, message=verdict.message)
        results.append((release.pk, verdict.outcome))
    _refresh_live_targets(reader, skip=seen_targets)
    # After the statuses are recorded, so each target is checked at the revision just seen.
    check_live_folders(writer=writer)
    return results


def _stepping(release: Release) -> bool:
    """The release is between rollout steps: not promoted yet."""
    return (
        release.is_progressive
        and Rollout.objects.filter(release=release)
        .exclude(state=RolloutState.PROMOTED, pending="")
        .exists()
    )


def serving_object(release: Release) -> dict | None:
    """The object whose own status tells more than Argo CD's health: the Seldon Model,
    the InferenceService or the batch CronJob among the release's rendered files."""
    for name in sorted(release.rendered_files or {}):
        if not name.endswith((".yaml", ".yml")):
            continue
        try:
            documents = list(yaml.safe_load_all(release.rendered_files[name]))
        except yaml.YAMLError:
            continue
        for obj in documents:
            if isinstance(obj, dict) and obj.get("kind") in (
                "Model",
                "InferenceService",
                "CronJob",
            ):
                metadata = obj.get("metadata") or {}
                if metadata.get("name"):
                    return obj
    return None


def _workload_verdict(release: Release, verdict: Verdict, workloads) -> Verdict:
    """Refine a verdict with the serving object's (or Jobs') own word: live only when it
    is ready too; waiting and failed say the controller's reason first (Argo CD 3.x often
    leaves the app's health message empty).

    A cluster error here never fails a release: Argo CD's verdict stands, with a log line.
    """
    obj = serving_object(release)
    if obj is None:
        return verdict
    metadata = obj["metadata"]
    namespace = metadata.get("namespace") or release.environment.name
    try:
        if obj["kind"] == "CronJob":
            if verdict.outcome != "live":
                return verdict
            return _batch_verdict(release, workloads, namespace, metadata["name"])
        own = workloads.serving_status(kind=obj["kind"], namespace=namespace, name=metadata["name"])
    except GitOpsError as exc:
        log.warning("cannot read the serving object of release %s: %s", release.pk, exc)
        return verdict
    if own.ready:
        return verdict
    if verdict.outcome == "live":
        return Verdict("waiting", f"{own.message} (Argo CD says Synced and Healthy)")
    return Verdict(verdict.outcome, f"{own.message}; {verdict.message}"[:2000])


def _batch_verdict(release: Release, workloads, namespace: str, cronjob: str) -> Verdict:
    """A batch release is live once the first Job of this release's CronJob succeeds.

    Argo CD calls a CronJob Healthy before it ever runs, so sync alone proves nothing.
    There is no timeout while scheduled: the next run may be a day away.
    """
    runs = workloads.release_jobs(namespace=namespace, release_id=str(release.uid))
    if not runs:
        return Verdict(
            "waiting",
            f"scheduled: CronJob {cronjob} is in place; the release goes live when its "
            f"first run succeeds (to check now: kubectl -n {namespace} create job "
            f"--from=cronjob/{cronjob} {cronjob}-check)",
        )
    succeeded = next((run for run in runs if run.state == "succeeded"), None)
    if succeeded:
        return Verdict("live", f"first run succeeded: {succeeded.message}")
    first = runs[0]
    if first.state == "failed":
        return Verdict("failed", f"first scoring run failed: {first.message}")
    return Verdict("waiting", f"scheduled: first run in progress ({first.message})")


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
