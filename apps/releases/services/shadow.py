"""Shadow evaluation of a release that waits for approval (docs/progressive-delivery.md).

Before reviewers approve a release into an environment whose policy asks for it
(``Environment.shadow_evaluation``: off / optional / required), the candidate receives a
mirrored share of that environment's live requests: the live release keeps answering
every client, the candidate's answers are recorded and dropped. After the observe window
the analysis judges the candidate against the live release on the same requests, the
report is stored with the release (and kept in each approval's evidence snapshot), and
the live release's own files are committed back.

It is a change to prod even though no answer changes, so it is started only by an ML
engineer of the service's team (or automatically when the policy requires it), never
during a freeze, never while a deploy or rollout of the target is under way, one per
target at a time, and audited.

Crash safety is the rollout's: every commit is decided here, under the evaluation's row
lock, *before* it is made (``pending`` "start" / "end"); the deployer makes it under the
repository writer lock (``apps.releases.shadow_commits``) and records it with
``shadow_record_commit``. A worker killed between the push and the record makes the same
commit again next pass, and the git writer finds it by its Step-Key trailer.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.gitops.errors import RenderError
from apps.gitops.traffic import (
    TrafficStep,
)
from apps.gitops.traffic.render import render_step
from apps.releases import permissions
from apps.releases import queue as release_queue
from apps.releases.freeze import freeze_status
from apps.releases.models import (
    RELEASE_IN_FLIGHT_STATES,
    SHADOW_ACTIVE_STATES,
    SHADOW_END,
    SHADOW_START,
    Release,
    ReleaseState,
    ServiceEnvironment,
    ShadowEvaluation,
    ShadowState,
)
from apps.releases.services._transitions import _committed_text, _locked
from apps.releases.services.freeze import frozen_refusal
from apps.releases.services.shadow_policy import (
    latest_evaluation,
    live_release,
    shadow_plan,
    shadow_required_now,
    shadow_unavailable,
)

SHADOW_ACTOR = "shadow-evaluation"


# --- what applies to a release ---------------------------------------------------------


# --- start ------------------------------------------------------------------------------


def _check_engineer(actor, release: Release, doing: str) -> None:
    if not permissions.can_promote(actor):
        raise Forbidden(f"Only ML engineers and admins {doing} a shadow evaluation.")
    if not permissions.can_promote(actor, release.service):
        raise Forbidden(permissions.other_team_refusal(release.service, "an ML engineer"))


def _blocking_change(release: Release) -> str | None:
    """A deploy or rollout of the target under way: the folder is not the live release's."""
    moving = (
        Release.objects.filter(
            service_id=release.service_id,
            environment_id=release.environment_id,
            state__in=RELEASE_IN_FLIGHT_STATES,
        )
        .exclude(pk=release.pk)
        .order_by("pk")
        .first()
    )
    if moving is None:
        return None
    what = "rolling out" if moving.is_progressive else moving.get_state_display().lower()
    return (
        f"Release #{moving.pk} of {release.service.name} is {what} in "
        f"{release.environment.name}; start the shadow evaluation once it is live or has "
        "ended (the evaluation mirrors traffic from the live release)."
    )


def _other_running(release: Release) -> ShadowEvaluation | None:
    return (
        ShadowEvaluation.objects.filter(
            service_id=release.service_id,
            environment_id=release.environment_id,
            state__in=SHADOW_ACTIVE_STATES,
        )
        .select_related("release")
        .first()
    )


def _one_at_a_time(other: ShadowEvaluation) -> Conflict:
    return Conflict(
        f"Release #{other.release_id}'s shadow evaluation is {other.get_state_display().lower()} "
        f"on {other.release.service.name} in {other.release.environment.name} (started by "
        f"{other.started_by_label}); one evaluation per target at a time. Start this one "
        "once it has ended, or stop it first."
    )


def shadow_evaluation_start(
    *, release: Release, actor=None, system_actor: str | None = None, reason: str = ""
) -> tuple[ShadowEvaluation, bool]:
    """Start a shadow evaluation of ``release`` (waiting for approval) in its
    environment. Returns (evaluation, created): a second start while one of this release
    runs returns that one (idempotent); another release's evaluation on the target, a
    deploy under way or a freeze is a 409 saying which and until when.

    The evaluation's files are rendered here (the live release's files plus the
    candidate on a mirrored share), outside any lock; the start commit is decided under
    the release's row lock and made after commit by the deployer.
    """
    if actor is not None:
        _check_engineer(actor, release, "start")
    # The reason goes into the start commit's message: refuse a secret in it now.
    reason = _committed_text(reason, field="reason")
    release = Release.objects.select_related("service", "environment", "model_version").get(
        pk=release.pk
    )
    files, mirror, observe, analysis, live = _render(release)
    try:
        with audited_atomic():
            return _start_locked(
                release=release,
                actor=actor,
                system_actor=system_actor,
                reason=reason,
                files=files,
                mirror=mirror,
                observe=observe,
                analysis=analysis,
                live=live,
            )
    except IntegrityError:
        # Another release's evaluation of this target won the race (the partial unique
        # index): name it, as the check under the lock would have.
        other = _other_running(release)
        if other is None:
            raise
        if other.release_id == release.pk:
            return other, False
        raise _one_at_a_time(other) from None


def _render(release: Release):
    _refuse_state(release)
    why = shadow_unavailable(release)
    if why:
        raise DomainError(why, field_errors={"shadow_evaluation": [why]})
    target = ServiceEnvironment.objects.filter(
        service_id=release.service_id, environment_id=release.environment_id
    ).first()
    mirror, observe, analysis = shadow_plan(release, target)
    live = live_release(release)
    step = TrafficStep(number=1, weight=0, mirror_percent=mirror, observe=observe)
    try:
        files = render_step(
            runtime=release.service.runtime,
            kserve_mode=release.environment.kserve_mode,
            service=release.service.name,
            stable=live.rendered_files,
            candidate=release.rendered_files,
            step=step,
        )
    except RenderError as exc:
        raise DomainError(
            f"The shadow evaluation cannot be rendered: {exc}",
            field_errors={"shadow_evaluation": [str(exc)]},
        ) from exc
    return files, mirror, observe, analysis, live


def _refuse_state(release: Release) -> None:
    if release.state != ReleaseState.PENDING_APPROVAL:
        raise Conflict(
            f"Release #{release.pk} is {release.get_state_display().lower()}; a shadow "
            "evaluation runs while a release waits for approval."
        )


def _start_locked(
    *, release, actor, system_actor, reason, files, mirror, observe, analysis, live
) -> tuple[ShadowEvaluation, bool]:
    release = _locked(release)
    _refuse_state(release)
    other = _other_running(release)
    if other is not None and other.release_id == release.pk:
        return other, False
    if other is not None:
        raise _one_at_a_time(other)
    if live_release(release) != live:
        raise Conflict("The live release changed while the evaluation was prepared; start again.")
    blocking = _blocking_change(release)
    if blocking:
        raise Conflict(blocking)
    # A freeze holds every change to the environment, and mirroring is one; a release
    # let through the freeze (break glass, audited) may be evaluated.
    if not release.freeze_override_reason:
        status = freeze_status(release.environment)
        if status.frozen:
            raise frozen_refusal(status, doing="shadow evaluation")
    run = (
        ShadowEvaluation.objects.filter(release=release)
        .order_by("-run")
        .values_list("run", flat=True)
        .first()
        or 0
    ) + 1
    with transaction.atomic():  # a savepoint: the unique index may refuse the insert
        evaluation = ShadowEvaluation.objects.create(
            release=release,
            service_id=release.service_id,
            environment_id=release.environment_id,
            live=live,
            run=run,
            state=ShadowState.STARTING,
            pending=SHADOW_START,
            mirror_percent=mirror,
            observe_minutes=observe.minutes,
            observe_requests=observe.requests,
            analysis_config=analysis,
            files=files,
            started_by=actor,
            started_by_system=system_actor or "",
            reason=reason,
            message=f"starting: {mirror}% of requests to be mirrored to the candidate",
        )
    audit_record(
        actor=actor,
        system_actor=system_actor,
        action="shadow.start",
        target_type="release",
        target_id=release.pk,
        after={
            "run": run,
            "environment": release.environment.name,
            "live": live.pk,
            "mirror_percent": mirror,
            "observe": observe.as_dict(),
            "reason": reason,
        },
    )
    release_queue.enqueue_rollout_commits_on_commit()
    return evaluation, True


def shadow_autostart(*, release: Release) -> ShadowEvaluation | None:
    """Start the evaluation a ``required`` policy asks for, for a release that just
    entered pending approval; in the caller's transaction. A reason it cannot start now
    (a deploy under way, another evaluation) is noted on the release page by the
    evaluation panel and retried by the controller's pass; nothing is refused here."""
    if not shadow_required_now(release):
        return None
    if _other_running(release) is not None or _blocking_change(release):
        return None
    try:
        files, mirror, observe, analysis, live = _render(release)
        with audited_atomic():  # a savepoint inside submit's transaction
            evaluation, _ = _start_locked(
                release=release,
                actor=None,
                system_actor=SHADOW_ACTOR,
                reason=f"required in {release.environment.name} before approval",
                files=files,
                mirror=mirror,
                observe=observe,
                analysis=analysis,
                live=live,
            )
    except (DomainError, IntegrityError):
        return None
    return evaluation


# --- stop, record, judge, end ------------------------------------------------------------


def _locked_evaluation(evaluation: ShadowEvaluation) -> ShadowEvaluation:
    return (
        ShadowEvaluation.objects.select_for_update(of=("self",))
        .select_related("release", "release__service", "release__environment", "live")
        .get(pk=evaluation.pk)
    )


def _audit(evaluation: ShadowEvaluation, action: str, *, actor=None, system_actor=None, **after):
    audit_record(
        actor=actor,
        system_actor=system_actor,
        action=f"shadow.{action}",
        target_type="release",
        target_id=evaluation.release_id,
        after={"run": evaluation.run, "state": evaluation.state, **after},
    )


@audited_atomic
def shadow_evaluation_stop(*, release: Release, actor, reason: str = "") -> ShadowEvaluation:
    """Stop the running evaluation of ``release`` early: the live release's own files go
    back at the next commit pass (within seconds, or one poll). ML engineers of the
    team and admins; a second stop returns the same evaluation."""
    _check_engineer(actor, release, "stop")
    reason = _committed_text(reason, field="reason")  # in the end commit's message
    evaluation = latest_evaluation(release)
    if evaluation is None:
        raise Conflict(f"Release #{release.pk} has no shadow evaluation to stop.")
    evaluation = _locked_evaluation(evaluation)
    if evaluation.state == ShadowState.ENDING:
        return evaluation
    if not evaluation.is_active:
        raise Conflict(
            f"The shadow evaluation of release #{release.pk} is "
            f"{evaluation.get_state_display().lower()}; nothing to stop."
        )
    # A start commit still pending may already be on the remote (its worker died before
    # recording it): the end commit puts the live files back either way.
    evaluation.state = ShadowState.ENDING
    evaluation.pending = SHADOW_END
    evaluation.stopped_by = actor
    evaluation.stop_reason = reason
    evaluation.message = f"stopping (by {actor.get_username()})" + (f": {reason}" if reason else "")
    evaluation.save()
    _audit(evaluation, "stop", actor=actor, reason=reason)
    release_queue.enqueue_rollout_commits_on_commit()
    return evaluation


@audited_atomic
def shadow_record_commit(
    *, evaluation: ShadowEvaluation, name: str, commit_sha: str
) -> ShadowEvaluation:
    """The pending commit ``name`` ("start"/"end") is on the remote: record it.
    Idempotent: a commit no longer pending changes nothing."""
    evaluation = _locked_evaluation(evaluation)
    if evaluation.pending != name:
        return evaluation
    now = timezone.now()
    evaluation.pending = ""
    if name == SHADOW_START:
        evaluation.state = ShadowState.RUNNING
        evaluation.start_commit_sha = commit_sha
        evaluation.started_at = now
        evaluation.message = (
            f"running: {evaluation.mirror_percent}% of requests mirrored to the candidate "
            f"(commit {commit_sha[:12]})"
        )
    else:
        evaluation.state = ShadowState.DONE
        evaluation.end_commit_sha = commit_sha
        evaluation.ended_at = now
        evaluation.message = (
            f"ended: release #{evaluation.live_id}'s own files are back (commit {commit_sha[:12]})"
        )
    evaluation.save()
    _audit(
        evaluation,
        "started" if name == SHADOW_START else "ended",
        system_actor="deployer",
        commit=commit_sha,
    )
    return evaluation


@audited_atomic
def shadow_evaluation_end_without_commit(*, evaluation: ShadowEvaluation, why: str) -> None:
    """Another change replaced the target's folder (a deploy, rollback or drift restore),
    or the start commit can no longer be made: the evaluation ends with no end commit,
    since the live release's files are not what the folder should hold any more."""
    evaluation = _locked_evaluation(evaluation)
    if not evaluation.is_active:
        return
    evaluation.state = ShadowState.ENDED
    evaluation.pending = ""
    evaluation.ended_at = timezone.now()
    evaluation.message = why[:2000]
    evaluation.save()
    _audit(evaluation, "ended", system_actor="deployer", why=why[:500], commit=None)


def shadow_end_for_target(*, service_id: int, environment_id: int, why: str) -> None:
    """End every active evaluation of a target whose folder a deploy is replacing; the
    deployer calls it under the repository writer lock, before its commit."""
    for evaluation in ShadowEvaluation.objects.filter(
        service_id=service_id, environment_id=environment_id, state__in=SHADOW_ACTIVE_STATES
    ):
        shadow_evaluation_end_without_commit(evaluation=evaluation, why=why)


@audited_atomic
def shadow_note(
    *,
    evaluation: ShadowEvaluation,
    message: str,
    analysis: dict | None = None,
    verdict: str = "",
    requests: float | None = None,
) -> None:
    """Keep the controller's latest word and the interim figures of a running
    evaluation (its time left and the requests so far are shown live)."""
    fields = {"message": message[:2000], "updated_at": timezone.now()}
    if analysis is not None:
        fields.update(analysis=analysis, verdict=verdict, verdict_message="")
    if requests is not None:
        fields["requests"] = int(requests)
    ShadowEvaluation.objects.filter(pk=evaluation.pk, state=ShadowState.RUNNING).update(**fields)


@audited_atomic
def shadow_record_report(
    *,
    evaluation: ShadowEvaluation,
    verdict: str,
    message: str,
    analysis: dict,
    requests: float | None,
) -> ShadowEvaluation | None:
    """The evaluation is judged: store its report, decide the end commit (the live
    release's own files back) and tell the reviewers who can decide now, all in one
    transaction. None when the evaluation moved meanwhile (stopped, ended)."""
    from apps.releases.notify import release_notify_shadow_report

    evaluation = _locked_evaluation(evaluation)
    if evaluation.state != ShadowState.RUNNING or evaluation.pending:
        return None
    now = timezone.now()
    evaluation.verdict = verdict
    evaluation.verdict_message = message[:2000]
    evaluation.analysis = analysis
    evaluation.requests = int(requests) if requests is not None else None
    evaluation.judged_at = now
    evaluation.state = ShadowState.ENDING
    evaluation.pending = SHADOW_END
    evaluation.message = f"judged {verdict}: {message}"[:2000]
    evaluation.save()
    _audit(
        evaluation,
        "report",
        system_actor="step-controller",
        verdict=verdict,
        message=message[:500],
        requests=evaluation.requests,
        window={"start": analysis.get("start"), "end": analysis.get("end")},
    )
    release_notify_shadow_report(release=evaluation.release, evaluation=evaluation)
    return evaluation


@audited_atomic
def shadow_decide_end(*, evaluation: ShadowEvaluation, why: str) -> ShadowEvaluation | None:
    """End a running evaluation without a report (its release was rejected, cancelled or
    approved meanwhile), or one whose start is still pending (it may be on the remote
    already): the end commit is decided, the message says why."""
    evaluation = _locked_evaluation(evaluation)
    starting = evaluation.state == ShadowState.STARTING and evaluation.pending == SHADOW_START
    if not starting and (evaluation.state != ShadowState.RUNNING or evaluation.pending):
        return None
    evaluation.state = ShadowState.ENDING
    evaluation.pending = SHADOW_END
    evaluation.message = why[:2000]
    evaluation.save()
    _audit(evaluation, "stop", system_actor="step-controller", reason=why[:500])
    return evaluation
