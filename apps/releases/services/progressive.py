"""The state of a progressive release's rollout, and the people in the loop.

Every decision is written here, under the rollout's row lock, *before* its commit is
made: ``pending`` names the commit ("step-2", "abort") and the deployer makes it
(``apps.releases.progressive``), then ``rollout_record_commit`` clears it with the
commit's id. So a worker killed between the push and the database write makes the same
commit again, and the git writer finds it by its Step-Key trailer: no step is pushed
twice and none is skipped. The step controller that judges each step lives in the
metrics layer (``apps.metrics.services.rollout``); it calls these functions.
"""

from __future__ import annotations

from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.gitops.traffic import TrafficStep, parse_rollout_plan
from apps.releases import permissions
from apps.releases import queue as release_queue
from apps.releases.models import (
    ABORT,
    Release,
    ReleaseState,
    Rollout,
    RolloutState,
    RolloutStep,
)
from apps.releases.notify import release_notify_auto_abort
from apps.releases.services._transitions import _clean_text, _locked, _move

ACTIVE_STATES = (RolloutState.RUNNING, RolloutState.PAUSED)


def rollout_steps_of(release: Release) -> tuple[TrafficStep, ...]:
    """Every commit of the release's plan, the promotion last."""
    return parse_rollout_plan(release.rollout_plan).steps()


def step_name(number: int) -> str:
    return f"step-{number}"


def _locked_rollout(rollout: Rollout) -> Rollout:
    return Rollout.objects.select_for_update().select_related("release").get(pk=rollout.pk)


def _audit(rollout: Rollout, action: str, *, actor=None, system_actor=None, **after) -> None:
    audit_record(
        actor=actor,
        system_actor=system_actor,
        action=f"rollout.{action}",
        target_type="release",
        target_id=rollout.release_id,
        after={"state": rollout.state, "step": rollout.step, **after},
    )


def rollout_start(*, release: Release) -> Rollout:
    """Make the rollout of a release the deployer just claimed, with its first step
    pending. Called in the claim's transaction; a second call returns the same row."""
    rollout, created = Rollout.objects.get_or_create(
        release=release, defaults={"pending": step_name(1), "pending_verdict": "none"}
    )
    if created:
        RolloutStep.objects.bulk_create(
            RolloutStep(
                rollout=rollout,
                number=step.number,
                weight=step.weight,
                mirror_percent=step.mirror_percent,
            )
            for step in rollout_steps_of(release)
        )
        _audit(rollout, "start", system_actor="deployer", plan=release.rollout_plan)
    return rollout


@audited_atomic
def rollout_record_commit(*, rollout: Rollout, name: str, commit_sha: str) -> Rollout:
    """The pending commit ``name`` is on the remote as ``commit_sha``: record it.

    Idempotent: a commit no longer pending (recorded already, or replaced by an abort
    decided meanwhile) changes nothing. The release's own commit id follows each step,
    so Argo CD's status is read at the step's commit; the promotion hands the release
    back to the usual follow-up, which marks it live once Argo CD says so.
    """
    rollout = _locked_rollout(rollout)
    if rollout.pending != name:
        return rollout
    release = _locked(rollout.release)
    now = timezone.now()
    if name == ABORT:
        rollout.abort_commit_sha = commit_sha
        rollout.pending = ""
        rollout.state = RolloutState.HELD
        rollout.ended_at = now
        rollout.message = (
            f"aborted at step {rollout.step}: {rollout.abort_reason}; the stable release "
            f"#{release.rollout_stable_id} is back at 100% (commit {commit_sha[:12]}), and "
            "this candidate is held until someone lifts the hold with a reason"
        )[:2000]
        rollout.save()
        _audit(rollout, "aborted", system_actor="deployer", commit=commit_sha)
        if release.state == ReleaseState.DEPLOYING:
            _move(
                release,
                ReleaseState.FAILED,
                system_actor="step-controller",
                action="release.failed",
                fields={"ended_at": now, "status_message": rollout.message},
                note={"rollout": "aborted", "commit": commit_sha},
            )
        return rollout
    number = int(name.removeprefix("step-"))
    steps = rollout_steps_of(release)
    step = steps[number - 1]
    RolloutStep.objects.filter(rollout=rollout, number=number).update(
        commit_sha=commit_sha, committed_at=now
    )
    rollout.step = number
    rollout.step_started_at = now
    rollout.pending = ""
    rollout.pending_verdict = ""
    if step.is_promotion:
        rollout.state = RolloutState.PROMOTED
        rollout.ended_at = now
        rollout.message = f"promoted: the candidate has 100% (commit {commit_sha[:12]})"
    else:
        rollout.message = f"step {number} of {len(steps)}: {_traffic(step)}; observing"
    rollout.save()
    _audit(rollout, "step", system_actor="deployer", commit=commit_sha, weight=step.weight)
    # The deployer recorded the commit on the release (release_record_commit) first.
    Release.objects.filter(pk=release.pk).update(status_message=rollout.message)
    return rollout


def _traffic(step: TrafficStep) -> str:
    if step.mirror_percent:
        return f"{step.mirror_percent}% of requests mirrored to the candidate"
    return f"the candidate at {step.weight}%"


@audited_atomic
def rollout_record_verdict(
    *, rollout: Rollout, number: int, verdict: str, message: str, analysis: dict
) -> None:
    """Store the latest verdict of step ``number`` with its numbers; audit it when it
    changes (every poll judges again; the audit keeps the moments that mattered)."""
    step = RolloutStep.objects.select_for_update().get(rollout=rollout, number=number)
    changed = step.verdict != verdict
    step.verdict = verdict
    step.verdict_message = message[:2000]
    step.analysis = analysis
    step.judged_at = timezone.now()
    step.save()
    if changed:
        _audit(
            rollout,
            "verdict",
            system_actor="step-controller",
            number=number,
            verdict=verdict,
            message=message[:500],
        )


@audited_atomic
def rollout_note(*, rollout: Rollout, message: str) -> None:
    """Keep the controller's latest word on the rollout (observing, waiting for data)."""
    Rollout.objects.filter(pk=rollout.pk).exclude(message=message[:2000]).update(
        message=message[:2000]
    )


@audited_atomic
def rollout_advance(*, rollout: Rollout, number: int, verdict: str) -> Rollout | None:
    """Step ``number`` passed: decide the next step (its commit is made next). None
    when the rollout moved meanwhile (paused, aborted, already advanced)."""
    rollout = _locked_rollout(rollout)
    if rollout.state != RolloutState.RUNNING or rollout.pending or rollout.step != number:
        return None
    rollout.pending = step_name(number + 1)
    rollout.pending_verdict = verdict
    rollout.save(update_fields=["pending", "pending_verdict", "updated_at"])
    _audit(rollout, "advance", system_actor="step-controller", to=number + 1, verdict=verdict)
    return rollout


@audited_atomic
def rollout_abort(
    *, rollout: Rollout, reason: str, actor=None, system_actor: str | None = None
) -> Rollout:
    """Send 100% back to the stable release (a forward commit of its files) and hold
    the candidate. A person needs on-call's or an admin's role and a written reason
    (break-glass: no review). Two aborts at once make one commit: the second finds the
    first pending or done and returns it."""
    if actor is not None:
        _person_check(
            actor,
            rollout,
            permissions.can_rollback,
            "on call",
            "Only on-call engineers and admins can abort a rollout.",
        )
    reason = _clean_text(reason, field="reason")
    if actor is not None and not reason:
        raise DomainError(
            "Say why you abort: the reason is kept in the audit log.",
            field_errors={"reason": ["required"]},
        )
    rollout = _locked_rollout(rollout)
    if rollout.pending == ABORT or rollout.state in (RolloutState.HELD, RolloutState.ABORTED):
        return rollout
    if rollout.state == RolloutState.PROMOTED or rollout.pending == step_name(
        len(rollout_steps_of(rollout.release))
    ):
        raise Conflict(
            "The rollout is already promoting the candidate to 100%; roll the release back instead."
        )
    who = actor.get_username() if actor is not None else system_actor
    rollout.pending = ABORT
    rollout.pending_verdict = "fail" if actor is None else f"aborted by {who}"[:64]
    rollout.abort_reason = reason[:2000]
    rollout.message = f"aborting: {reason}"[:2000]
    rollout.save()
    _audit(
        rollout,
        "abort",
        actor=actor,
        system_actor=system_actor,
        reason=reason,
        break_glass=actor is not None,
    )
    if actor is not None:
        release_queue.enqueue_rollout_commits_on_commit()
    else:
        # Nobody pressed a button: tell the requester and on-call, in this transaction.
        release_notify_auto_abort(release=rollout.release, reason=reason)
    return rollout


def _person_check(actor, rollout: Rollout, allowed, role_label: str, what: str) -> None:
    """Refuse ``actor`` unless ``allowed(actor)`` (``what`` says who may), and then
    unless ``allowed(actor, service)`` for the release's service (a role held for
    another team: the refusal names the team)."""
    if not allowed(actor):
        raise Forbidden(what)
    service = rollout.release.service
    if not allowed(actor, service):
        raise Forbidden(permissions.other_team_refusal(service, role_label))


@audited_atomic
def rollout_pause(
    *, rollout: Rollout, reason: str = "", actor=None, system_actor: str | None = None
) -> Rollout:
    """Stop advancing (the traffic stays where it is). ML engineers and admins; the
    controller pauses too when it cannot judge (metrics source down)."""
    if actor is not None:
        _person_check(
            actor,
            rollout,
            permissions.can_promote,
            "an ML engineer",
            "Only ML engineers and admins can pause.",
        )
    reason = _clean_text(reason, field="reason")
    rollout = _locked_rollout(rollout)
    if rollout.state == RolloutState.PAUSED:
        return rollout
    if rollout.state != RolloutState.RUNNING:
        raise Conflict(f"The rollout is {rollout.get_state_display().lower()}; nothing to pause.")
    rollout.state = RolloutState.PAUSED
    who = actor.get_username() if actor is not None else system_actor
    rollout.message = f"paused by {who}" + (f": {reason}" if reason else "")
    rollout.save()
    _audit(rollout, "pause", actor=actor, system_actor=system_actor, reason=reason)
    return rollout


@audited_atomic
def rollout_resume(*, rollout: Rollout, actor) -> Rollout:
    """Let the controller judge and advance again (ML engineers and admins)."""
    _person_check(
        actor,
        rollout,
        permissions.can_promote,
        "an ML engineer",
        "Only ML engineers and admins can resume.",
    )
    rollout = _locked_rollout(rollout)
    if rollout.state == RolloutState.RUNNING:
        return rollout
    if rollout.state != RolloutState.PAUSED:
        raise Conflict(f"The rollout is {rollout.get_state_display().lower()}; it cannot resume.")
    rollout.state = RolloutState.RUNNING
    rollout.resumed_at = timezone.now()
    rollout.message = f"resumed by {actor.get_username()}; observing step {rollout.step}"
    rollout.save()
    _audit(rollout, "resume", actor=actor)
    return rollout


@audited_atomic
def rollout_promote_now(*, rollout: Rollout, actor, reason: str) -> Rollout:
    """Skip the remaining steps: the candidate goes to 100% at the next commit (on-call
    and admins, with a reason). Refused for a held or aborted candidate."""
    _person_check(
        actor,
        rollout,
        permissions.can_rollback,
        "on call",
        "Only on-call engineers and admins can promote now.",
    )
    reason = _clean_text(reason, field="reason")
    if not reason:
        raise DomainError("Say why you promote now.", field_errors={"reason": ["required"]})
    rollout = _locked_rollout(rollout)
    last = len(rollout_steps_of(rollout.release))
    if rollout.pending == step_name(last) or rollout.state == RolloutState.PROMOTED:
        return rollout
    if rollout.state not in ACTIVE_STATES or rollout.pending == ABORT:
        raise Conflict(
            f"The rollout is {rollout.get_state_display().lower()}; it cannot be promoted."
        )
    if rollout.pending:
        # A step's commit is in flight (perhaps already on the remote, its worker gone):
        # replacing it would leave that commit unrecorded. It is made within one poll.
        raise Conflict(
            f"{rollout.pending.replace('-', ' ').capitalize()} is being committed right now; "
            "promote again in a moment, once it is recorded (within one poll)."
        )
    rollout.state = RolloutState.RUNNING
    rollout.pending = step_name(last)
    rollout.pending_verdict = f"promoted by {actor.get_username()}"[:64]
    rollout.message = f"promoting now: {reason}"[:2000]
    rollout.save()
    _audit(rollout, "promote_now", actor=actor, reason=reason, break_glass=True)
    release_queue.enqueue_rollout_commits_on_commit()
    return rollout


@audited_atomic
def rollout_lift_hold(*, rollout: Rollout, actor, reason: str) -> Rollout:
    """Let this candidate be released here again (a new release, reviewed as usual):
    ML engineers, on-call and admins, with a reason."""
    _person_check(
        actor,
        rollout,
        lambda who, service=None: (
            permissions.can_promote(who, service) or permissions.can_rollback(who, service)
        ),
        "an ML engineer or on call",
        "Only ML engineers, on-call engineers and admins can lift a hold.",
    )
    reason = _clean_text(reason, field="reason")
    if not reason:
        raise DomainError("Say why the hold can be lifted.", field_errors={"reason": ["required"]})
    rollout = _locked_rollout(rollout)
    if rollout.state != RolloutState.HELD:
        raise Conflict(f"The rollout is {rollout.get_state_display().lower()}, not held.")
    rollout.state = RolloutState.ABORTED
    rollout.hold_lifted_reason = reason
    rollout.message = f"hold lifted by {actor.get_username()}: {reason}"[:2000]
    rollout.save()
    _audit(rollout, "lift_hold", actor=actor, reason=reason)
    return rollout


@audited_atomic
def rollout_end(*, rollout: Rollout, why: str) -> Rollout:
    """The release stopped deploying without this rollout (a rollback or a newer
    release replaced it, or Argo CD failed it): nothing more is committed for it."""
    rollout = _locked_rollout(rollout)
    if rollout.is_final:
        return rollout
    rollout.state = RolloutState.ABORTED
    rollout.pending = ""
    rollout.ended_at = timezone.now()
    rollout.message = why[:2000]
    rollout.save()
    _audit(rollout, "ended", system_actor="step-controller", why=why[:500])
    return rollout


def rollout_end_of(release: Release, *, why: str) -> None:
    """End the rollout of ``release``, if one is under way (it was superseded or failed);
    in the caller's transaction."""
    rollout = Rollout.objects.filter(release=release).first()
    if rollout is not None and not rollout.is_final:
        rollout_end(rollout=rollout, why=why)


def held_rollout(*, service, environment, model_version) -> Rollout | None:
    """The held rollout that keeps this model version out of this target, if any."""
    return (
        Rollout.objects.filter(
            state=RolloutState.HELD,
            release__service=service,
            release__environment=environment,
            release__model_version=model_version,
        )
        .select_related("release")
        .first()
    )
