"""Release actions. One function per action; each one that moves a release locks its row,
checks the source state, writes the new state and its audit event in one transaction,
and schedules side effects (deploys, alias updates) only after that transaction commits.
"""

from __future__ import annotations

import uuid

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.roles import user_roles
from apps.audit.services import audit_record
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.gitops.config import ConfigError
from apps.gitops.errors import GitOpsError
from apps.gitops.validate import secret_findings
from apps.registry.models import ModelVersion
from apps.releases import permissions
from apps.releases.models import (
    RELEASE_TRANSITIONS,
    Approval,
    ApprovalDecision,
    Environment,
    Release,
    ReleaseKind,
    ReleaseState,
    Service,
    ServiceEnvironment,
)
from apps.releases.policy import open_slots_for
from apps.releases.rendering import control_plane_secrets, render_release, resolve_config
from apps.releases.selectors import release_policy_progress, soak_gate, standing_promotion

DEPLOY_TASK = "releases.deploy_pending"


# --- helpers ---------------------------------------------------------------------------


# Row locks on releases: only the release rows (not the service and environment rows a
# select_related joins in), and FOR NO KEY UPDATE, which a concurrent insert's foreign-key
# check (KEY SHARE, taken at COMMIT: Django's foreign keys are deferred) does not wait
# for. With a plain FOR UPDATE over the join, a submission held the environment row and
# waited for the audit chain lock while a creation held that lock and waited, at COMMIT,
# for the environment row: a deadlock, found under load (tests/hardening/test_lock_order.py).
LOCK = {"no_key": True, "of": ("self",)}


def _locked(release: Release) -> Release:
    """Re-read the release under a row lock; every transition starts here."""
    return (
        Release.objects.select_for_update(**LOCK)
        .select_related("service", "environment")
        .get(pk=release.pk)
    )


def _check_transition(release: Release, to_state: str, *, doing: str) -> None:
    if to_state not in RELEASE_TRANSITIONS[release.state]:
        raise Conflict(
            f"Cannot {doing} release #{release.pk}: it is {release.get_state_display().lower()}."
        )


def _move(
    release: Release,
    to_state: str,
    *,
    actor=None,
    system_actor=None,
    action: str,
    fields: dict | None = None,
    note: dict | None = None,
) -> None:
    """Write the new state (plus ``fields``) and its audit row. Caller holds the row lock."""
    before = release.state
    release.state = to_state
    changed = ["state"]
    for name, value in (fields or {}).items():
        setattr(release, name, value)
        changed.append(name)
    release.save(update_fields=changed)
    audit_record(
        actor=actor,
        system_actor=system_actor,
        action=action,
        target_type="release",
        target_id=release.pk,
        before={"state": before},
        after={"state": to_state, **(note or {})},
    )


def _enqueue_deploy_on_commit() -> None:
    """Deploys run in a worker after the approving transaction commits; sending by name
    keeps this module free of a task import (tasks import services)."""
    transaction.on_commit(lambda: current_app.send_task(DEPLOY_TASK))


def _clean_text(value: str, *, field: str) -> str:
    value = (value or "").strip()
    limit = settings.RELEASE_TEXT_MAX_LENGTH
    if len(value) > limit:
        raise DomainError(
            f"The {field} is {len(value)} characters; keep it under {limit}.",
            field_errors={field: [f"at most {limit} characters"]},
        )
    if "\x00" in value:
        raise DomainError(f"The {field} contains a NUL character.", field_errors={field: ["NUL"]})
    return value


def _committed_text(value: str, *, field: str) -> str:
    """Clean text that will be committed to the GitOps repository (a reason goes into the
    commit message and the metadata file), refusing what looks like a secret there and
    then, rather than failing the deploy later. Found by
    tests/hardening/test_security_gates.py; the deploy checks again (deploy.py)."""
    value = _clean_text(value, field=field)
    found = secret_findings(value, control_plane_secrets())
    if found:
        raise DomainError(
            f"The {field} contains what looks like {found[0]}; it would be committed to "
            "the GitOps repository. Leave it out.",
            field_errors={field: ["looks like a secret"]},
        )
    return value


def _render_or_error(*, service, environment, model_version, release_uid, config):
    try:
        return render_release(
            service=service,
            environment=environment,
            model_version=model_version,
            release_uid=release_uid,
            config=config,
            forbidden_values=control_plane_secrets(),
        )
    except ConfigError as exc:
        errors = {f"config.{path}": [message] for path, message in exc.errors.items()}
        raise DomainError(
            "The serving configuration is not valid: "
            + "; ".join(f"{path}: {message}" for path, message in exc.errors.items()),
            field_errors=errors,
        ) from exc
    except GitOpsError as exc:
        raise DomainError(f"The manifests for this release cannot be rendered: {exc}") from exc


def _ensure_releasable(model_version: ModelVersion, service: Service) -> None:
    if model_version.name != service.registered_model:
        raise DomainError(
            f"{model_version} is not a version of {service.registered_model!r}, the model "
            f"service {service.name!r} serves.",
            field_errors={"model_version": ["belongs to another registered model"]},
        )
    if not model_version.is_releasable:
        raise DomainError(
            f"{model_version.not_releasable_reason}; choose a ready version.",
            field_errors={"model_version": [model_version.not_releasable_reason]},
        )


# --- creating releases ------------------------------------------------------------------


def release_create(
    *,
    actor,
    service: Service,
    environment: Environment,
    model_version: ModelVersion,
    config_overrides: dict | None = None,
    reason: str = "",
    idempotency_key: str | None = None,
) -> tuple[Release, bool]:
    """Create a draft release of a model version for a service in an environment.

    The manifests are rendered now, so the requester sees the diff and any configuration
    error before anyone is asked to approve. Returns (release, created); with an
    idempotency key the same request returns the first release instead of a second one.
    """
    if not permissions.can_create_release(actor):
        raise Forbidden("Only ML engineers and admins create releases.")
    if environment.promotes_from_id is not None:
        raise Conflict(
            f"{environment.name} takes releases by promotion from "
            f"{environment.promotes_from.name}: release to {environment.promotes_from.name} "
            "first, then request promotion once it has soaked."
        )
    reason = _committed_text(reason, field="reason")
    overrides = config_overrides or {}
    if not isinstance(overrides, dict):
        raise DomainError(
            "config_overrides must be an object.",
            field_errors={"config_overrides": ["must be an object"]},
        )

    if idempotency_key:
        existing = Release.objects.filter(
            requested_by=actor, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            return _idempotent_replay(
                existing, service, environment, model_version, overrides
            ), False

    _ensure_releasable(model_version, service)
    return _create(
        actor=actor,
        service=service,
        environment=environment,
        model_version=model_version,
        overrides=overrides,
        reason=reason,
        kind=ReleaseKind.DEPLOY,
        idempotency_key=idempotency_key or None,
    ), True


def _idempotent_replay(existing, service, environment, model_version, overrides) -> Release:
    same = (
        existing.service_id == service.pk
        and existing.environment_id == environment.pk
        and existing.model_version_id == model_version.pk
        and existing.config_overrides == overrides
    )
    if not same:
        raise Conflict(
            f"This Idempotency-Key was already used for release #{existing.pk} with a "
            "different request; use a new key for a new release."
        )
    return existing


def _create(
    *,
    actor,
    service,
    environment,
    model_version,
    overrides,
    reason,
    kind,
    idempotency_key=None,
    promoted_from=None,
    system_actor="",
) -> Release:
    target, _ = ServiceEnvironment.objects.get_or_create(service=service, environment=environment)
    config = resolve_config(
        service=service, environment=environment, target=target, overrides=overrides
    )
    uid = uuid.uuid4()
    rendered = _render_or_error(
        service=service,
        environment=environment,
        model_version=model_version,
        release_uid=uid,
        config=config,
    )
    try:
        with transaction.atomic():
            release = Release.objects.create(
                uid=uid,
                service=service,
                environment=environment,
                model_version=model_version,
                config_overrides=overrides,
                config=config,
                rendered_files=rendered.files,
                digest=rendered.digest,
                kind=kind,
                requested_by=actor,
                requested_by_system=system_actor,
                reason=reason,
                idempotency_key=idempotency_key,
                promoted_from=promoted_from,
            )
            audit_record(
                actor=actor,
                system_actor=system_actor or None,
                action="release.create",
                target_type="release",
                target_id=release.pk,
                after={
                    "state": release.state,
                    "kind": kind,
                    "service": service.name,
                    "environment": environment.name,
                    "model_version": str(model_version),
                    "digest": rendered.digest,
                },
            )
    except IntegrityError:
        # Two requests with one idempotency key raced; the other one won.
        existing = Release.objects.filter(
            requested_by=actor, idempotency_key=idempotency_key
        ).first()
        if idempotency_key and existing is not None:
            return _idempotent_replay(existing, service, environment, model_version, overrides)
        raise
    return release


# --- the approval path ------------------------------------------------------------------


@transaction.atomic
def release_submit(*, actor, release: Release) -> Release:
    """Freeze a draft and ask the environment's reviewers for approval.

    From here on the release is immutable. An environment without approval rules
    approves it at once, and the deploy is queued after commit.
    """
    release = _locked(release)
    if not permissions.can_submit_or_cancel(actor, release):
        raise Forbidden("Only the requester or an admin can submit this release.")
    _check_transition(release, ReleaseState.PENDING_APPROVAL, doing="submit")
    _ensure_releasable(release.model_version, release.service)
    now = timezone.now()
    progress = release_policy_progress(release)
    if progress.met:
        _move(
            release,
            ReleaseState.APPROVED,
            actor=actor,
            action="release.submit",
            fields={"submitted_at": now, "approved_at": now},
            note={"policy": "no approval required in " + release.environment.name},
        )
        _enqueue_deploy_on_commit()
    else:
        _move(
            release,
            ReleaseState.PENDING_APPROVAL,
            actor=actor,
            action="release.submit",
            fields={"submitted_at": now},
            note={"policy": progress.summary},
        )
    return release


def _reviewer_role(actor, release: Release, requested_role: str | None) -> str:
    """The role this person's decision counts for, or a clear refusal."""
    progress = release_policy_progress(release)
    held = user_roles(actor)
    required = {r.role for r in progress.roles}
    if requested_role:
        if requested_role not in held:
            raise Forbidden(f"You do not hold the {requested_role} role.")
        if requested_role not in required:
            raise Forbidden(
                f"{release.environment.name} does not ask for {requested_role} approval."
            )
        return requested_role
    reviewer_roles = held & required
    if not reviewer_roles:
        needed = ", ".join(sorted(required)) or "no one"
        raise Forbidden(f"Approvals for {release.environment.name} come from: {needed}.")
    open_roles = open_slots_for(user_roles=reviewer_roles, progress=progress)
    return open_roles[0] if open_roles else sorted(reviewer_roles)[0]


@transaction.atomic
def release_approve(
    *,
    actor,
    release: Release,
    role: str | None = None,
    comment: str = "",
    digest: str | None = None,
) -> Release:
    """Record one reviewer's approval; when the policy is met the release becomes approved
    and its deploy is queued after commit.

    The approval binds to the release digest the reviewer saw: a stale page (digest
    differs) is refused. Requesters never approve their own release, and a person's
    approval fills one slot only.
    """
    comment = _clean_text(comment, field="comment")
    release = _locked(release)
    if permissions.is_requester(actor, release):
        raise Forbidden("You requested this release; another person must approve it.")
    if not permissions.can_review(actor):
        raise Forbidden("Only product and compliance reviewers approve releases.")
    if release.state != ReleaseState.PENDING_APPROVAL:
        raise Conflict(
            f"Cannot approve release #{release.pk}: it is "
            f"{release.get_state_display().lower()}, not waiting for approval."
        )
    if digest and digest != release.digest:
        raise Conflict("This release is not the one you reviewed (its digest differs); reload it.")
    role = _reviewer_role(actor, release, role)
    progress = release_policy_progress(release)
    slot = next(r for r in progress.roles if r.role == role)
    if Approval.objects.filter(release=release, approver=actor).exists():
        raise Conflict("You have already given your decision on this release.")
    if slot.met:
        raise Conflict(f"The {role} approvals for release #{release.pk} are already complete.")
    try:
        with transaction.atomic():
            Approval.objects.create(
                release=release,
                approver=actor,
                role=role,
                decision=ApprovalDecision.APPROVE,
                comment=comment,
                digest=release.digest,
            )
    except IntegrityError:
        raise Conflict("You have already given your decision on this release.") from None
    audit_record(
        actor=actor,
        action="release.approve",
        target_type="release",
        target_id=release.pk,
        after={"role": role, "digest": release.digest, "comment": comment},
    )
    progress = release_policy_progress(release)
    if progress.met:
        _move(
            release,
            ReleaseState.APPROVED,
            system_actor="policy",
            action="release.approved",
            fields={"approved_at": timezone.now()},
            note={"policy": progress.summary},
        )
        _enqueue_deploy_on_commit()
    return release


@transaction.atomic
def release_reject(*, actor, release: Release, comment: str, role: str | None = None) -> Release:
    """Reject a release waiting for approval; one rejection ends it. A comment is required
    so the requester knows what to change."""
    comment = _clean_text(comment, field="comment")
    if not comment:
        raise DomainError(
            "Say why you reject the release, so the requester can act on it.",
            field_errors={"comment": ["required when rejecting"]},
        )
    release = _locked(release)
    if permissions.is_requester(actor, release):
        raise Forbidden("You requested this release; cancel it instead of rejecting it.")
    if not permissions.can_review(actor):
        raise Forbidden("Only product and compliance reviewers reject releases.")
    _check_transition(release, ReleaseState.REJECTED, doing="reject")
    role = _reviewer_role(actor, release, role)
    if Approval.objects.filter(release=release, approver=actor).exists():
        raise Conflict("You have already given your decision on this release.")
    Approval.objects.create(
        release=release,
        approver=actor,
        role=role,
        decision=ApprovalDecision.REJECT,
        comment=comment,
        digest=release.digest,
    )
    _move(
        release,
        ReleaseState.REJECTED,
        actor=actor,
        action="release.reject",
        fields={"ended_at": timezone.now()},
        note={"role": role, "comment": comment},
    )
    return release


@transaction.atomic
def release_cancel(*, actor, release: Release, reason: str = "") -> Release:
    """Withdraw a release that has not started deploying."""
    reason = _clean_text(reason, field="reason")
    release = _locked(release)
    if not permissions.can_submit_or_cancel(actor, release):
        raise Forbidden("Only the requester or an admin can cancel this release.")
    _check_transition(release, ReleaseState.CANCELLED, doing="cancel")
    _move(
        release,
        ReleaseState.CANCELLED,
        actor=actor,
        action="release.cancel",
        fields={"ended_at": timezone.now()},
        note={"reason": reason},
    )
    return release


# --- promotion and rollback ---------------------------------------------------------------


def release_promote(
    *,
    actor,
    source: Release,
    environment: Environment | None = None,
    reason: str = "",
    idempotency_key: str | None = None,
) -> tuple[Release, bool]:
    """Request promotion of a release that is live in the source environment (staging) to
    the environment that promotes from it (prod). Checks the soak-time gate, then creates
    and submits the promotion release for the target environment's reviewers."""
    if not permissions.can_promote(actor):
        raise Forbidden("Only ML engineers and admins request promotion.")
    reason = _committed_text(reason, field="reason")
    if idempotency_key:
        existing = Release.objects.filter(
            requested_by=actor, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            if existing.promoted_from_id != source.pk:
                raise Conflict(
                    f"This Idempotency-Key was already used for release #{existing.pk}; "
                    "use a new key for a new request."
                )
            return existing, False
    if source.state != ReleaseState.LIVE:
        raise Conflict(
            f"Release #{source.pk} is {source.get_state_display().lower()}; "
            "only a live release can be promoted."
        )
    targets = list(Environment.objects.filter(promotes_from=source.environment))
    if environment is None:
        if len(targets) != 1:
            raise DomainError(
                f"Say which environment to promote to: {source.environment.name} promotes to "
                + (", ".join(t.name for t in targets) or "no environment")
                + "."
            )
        environment = targets[0]
    elif environment not in targets:
        raise Conflict(
            f"{environment.name} does not take promotions from {source.environment.name}."
        )
    gate = soak_gate(source=source, target=environment)
    if not gate.passed:
        raise Conflict(gate.message)
    _ensure_releasable(source.model_version, source.service)
    with transaction.atomic():
        # One standing promotion per source and target: a second click, a browser's
        # resubmit or a colleague's request would put the same change in front of
        # reviewers twice, or one that is live already.
        # The source row lock makes two racing requests check one after the other.
        _locked(source)
        existing = standing_promotion(source=source, target=environment)
        if existing is not None:
            raise Conflict(
                f"Release #{existing.pk} already promotes #{source.pk} to {environment.name} "
                f"({existing.get_state_display().lower()}); follow it there, or cancel it "
                "before asking again."
            )
        release = _create(
            actor=actor,
            service=source.service,
            environment=environment,
            model_version=source.model_version,
            overrides=source.config_overrides,
            reason=reason,
            kind=ReleaseKind.PROMOTION,
            promoted_from=source,
            idempotency_key=idempotency_key or None,
        )
        return release_submit(actor=actor, release=release), True


def rollback_candidates(live: Release):
    """Releases ``live`` may be rolled back to: went live earlier and were superseded (not
    rolled back, which would mean they were bad), and differ from what is live (after a
    rollback, the release it restored would change nothing). Newest first."""
    return (
        Release.objects.filter(
            service_id=live.service_id,
            environment_id=live.environment_id,
            state=ReleaseState.SUPERSEDED,
            live_at__isnull=False,
            live_at__lt=live.live_at,
        )
        .exclude(digest=live.digest)
        .order_by("-live_at", "-pk")
    )


def rollback_default_target(live: Release) -> Release | None:
    """The last release that was live and healthy before ``live``."""
    return rollback_candidates(live).first()


def release_rollback(
    *,
    service: Service,
    environment: Environment,
    reason: str,
    actor=None,
    system_actor: str | None = None,
    target: Release | None = None,
    break_glass: bool = True,
    expected_live: Release | None = None,
) -> Release:
    """Take back the live release of a service in an environment by committing an earlier
    good release's manifests again (history moves forward; nothing is reverted or forced).

    On-call may skip approvals (break-glass) with a written reason, always audited.
    One rollback per target at a time: a double click, a second browser or a second
    person gets a Conflict naming the rollback already under way. ``expected_live``
    guards against acting on a stale page: if the live release changed, refuse.
    """
    if system_actor is None and not permissions.can_rollback(actor):
        raise Forbidden("Only on-call staff and admins roll back.")
    reason = _committed_text(reason, field="reason")
    if not reason:
        raise DomainError(
            "Say why you roll back; it goes in the audit log and the commit.",
            field_errors={"reason": ["required"]},
        )
    try:
        with transaction.atomic():
            return _rollback_locked(
                service=service,
                environment=environment,
                reason=reason,
                actor=actor,
                system_actor=system_actor,
                target=target,
                break_glass=break_glass,
                expected_live=expected_live,
            )
    except IntegrityError:
        # The partial unique index caught a concurrent rollback the lock did not (SQLite).
        raise _rollback_conflict(service, environment) from None


def _rollback_conflict(service, environment) -> Conflict:
    running = Release.objects.filter(
        service=service,
        environment=environment,
        kind=ReleaseKind.ROLLBACK,
        state__in=[ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED, ReleaseState.DEPLOYING],
    ).first()
    if running is None:
        return Conflict("Another rollback was just requested; reload the page.")
    return Conflict(
        f"A rollback is already under way: release #{running.pk} to "
        f"{running.model_version}, requested by {running.requester_label}."
    )


def _rollback_locked(
    *, service, environment, reason, actor, system_actor, target, break_glass, expected_live
) -> Release:
    # The live release's row is the per-target mutex: concurrent rollbacks queue here.
    live = (
        Release.objects.select_for_update(**LOCK)
        .filter(service=service, environment=environment, state=ReleaseState.LIVE)
        .first()
    )
    if live is None:
        raise Conflict(
            f"Nothing is live for {service.name} in {environment.name}; "
            "there is nothing to roll back."
        )
    if expected_live is not None and expected_live.pk != live.pk:
        raise Conflict(
            f"The live release changed (now #{live.pk}, {live.model_version}) since you "
            "opened the page; reload and check before rolling back."
        )
    if Release.objects.filter(
        service=service,
        environment=environment,
        kind=ReleaseKind.ROLLBACK,
        state__in=[ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED, ReleaseState.DEPLOYING],
    ).exists():
        raise _rollback_conflict(service, environment)
    if live.kind == ReleaseKind.ROLLBACK and system_actor:
        raise Conflict(
            "The live release is itself a rollback; the guard never rolls back a rollback."
        )
    if target is None:
        target = rollback_default_target(live)
        if target is None:
            raise Conflict(
                f"No earlier good release of {service.name} in {environment.name} to roll back to."
            )
    elif (target.service_id, target.environment_id) != (service.pk, environment.pk):
        raise DomainError("The rollback target belongs to another service or environment.")
    elif target.state != ReleaseState.SUPERSEDED or target.live_at is None:
        raise Conflict(
            f"Release #{target.pk} is {target.get_state_display().lower()}; roll back "
            "only to a release that was live and then superseded (a good one)."
        )
    elif target.digest == live.digest:
        raise Conflict(
            f"Release #{target.pk} has exactly the manifests that are live now "
            f"(#{live.pk}); rolling back to it would change nothing."
        )
    now = timezone.now()
    rollback = Release.objects.create(
        service=service,
        environment=environment,
        model_version=target.model_version,
        config_overrides=target.config_overrides,
        config=target.config,
        rendered_files=target.rendered_files,
        digest=target.digest,
        kind=ReleaseKind.ROLLBACK,
        state=ReleaseState.DRAFT,
        requested_by=actor,
        requested_by_system=system_actor or "",
        reason=reason,
        rollback_target=target,
        rolled_back_release=live,
        break_glass=break_glass,
    )
    audit_record(
        actor=actor,
        system_actor=system_actor,
        action="release.rollback",
        target_type="release",
        target_id=rollback.pk,
        after={
            "state": "draft",
            "rolls_back": live.pk,
            "restores": target.pk,
            "model_version": str(target.model_version),
            "break_glass": break_glass,
            "reason": reason,
        },
    )
    # Anything queued for this target would land after the rollback and undo it.
    for queued in (
        Release.objects.select_for_update(**LOCK)
        .filter(
            service=service,
            environment=environment,
            state__in=[ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED],
        )
        .exclude(pk=rollback.pk)
        .order_by("pk")
    ):
        _move(
            queued,
            ReleaseState.CANCELLED,
            actor=actor,
            system_actor=system_actor,
            action="release.cancel",
            fields={"ended_at": now},
            note={"reason": f"cancelled by rollback #{rollback.pk}"},
        )
    if break_glass:
        _move(
            rollback,
            ReleaseState.APPROVED,
            actor=actor,
            system_actor=system_actor,
            action="release.break_glass",
            fields={"submitted_at": now, "approved_at": now},
            note={"reason": reason},
        )
        _enqueue_deploy_on_commit()
    else:
        progress = release_policy_progress(rollback)
        state = ReleaseState.APPROVED if progress.met else ReleaseState.PENDING_APPROVAL
        _move(
            rollback,
            state,
            actor=actor,
            system_actor=system_actor,
            action="release.submit",
            fields={"submitted_at": now, **({"approved_at": now} if progress.met else {})},
            note={"policy": progress.summary},
        )
        if progress.met:
            _enqueue_deploy_on_commit()
    return rollback


# --- deployment progress (called by the deploy and status tasks) -------------------------


@transaction.atomic
def release_deploy_claim(*, release: Release) -> bool:
    """Claim an approved release for the deployer before its commit is made:
    approved -> deploying. From here it can no longer be cancelled, so the files that
    reach the repository always belong to a release Slipway is deploying. Returns False
    when the release is not approved any more (cancelled meanwhile): skip it.
    A deploying release without a commit is picked up again by the next drain, so a
    worker that dies right after claiming loses nothing.
    """
    release = _locked(release)
    if release.state == ReleaseState.DEPLOYING:
        return True
    if release.state != ReleaseState.APPROVED:
        return False
    _move(
        release,
        ReleaseState.DEPLOYING,
        system_actor="deployer",
        action="release.deploying",
        fields={
            "deploy_started_at": timezone.now(),
            "status_message": "committing to the GitOps repository",
        },
    )
    return True


@transaction.atomic
def release_record_commit(*, release: Release, commit_sha: str) -> Release:
    """Record the release's commit on the remote. Idempotent for a redelivered task.

    Any other release of the same target still deploying with an earlier commit can no
    longer go live (this commit replaced its files) and is superseded.
    """
    release = _locked(release)
    if release.state != ReleaseState.DEPLOYING:
        raise Conflict(
            f"Release #{release.pk} is {release.get_state_display().lower()}, "
            "not deploying; its commit cannot be recorded."
        )
    if release.commit_sha == commit_sha:
        return release
    now = timezone.now()
    for older in (
        Release.objects.select_for_update(**LOCK)
        .filter(
            service_id=release.service_id,
            environment_id=release.environment_id,
            state=ReleaseState.DEPLOYING,
        )
        .exclude(pk=release.pk)
        .exclude(commit_sha="")
        .order_by("pk")
    ):
        older.state = ReleaseState.SUPERSEDED
        older.ended_at = now
        older.status_message = f"replaced by release #{release.pk} before it went live"
        older.save(update_fields=["state", "ended_at", "status_message"])
        audit_record(
            system_actor="deployer",
            action="release.superseded",
            target_type="release",
            target_id=older.pk,
            before={"state": "deploying"},
            after={"state": "superseded", "by": release.pk},
        )
    release.commit_sha = commit_sha
    release.status_message = f"committed {commit_sha[:12]}; waiting for Argo CD to sync"
    release.save(update_fields=["commit_sha", "status_message"])
    audit_record(
        system_actor="deployer",
        action="release.committed",
        target_type="release",
        target_id=release.pk,
        after={"commit": commit_sha},
    )
    return release


@transaction.atomic
def release_mark_live(*, release: Release, message: str = "") -> Release:
    """Argo CD runs the release's commit and reports Healthy: deploying -> live.

    The release it replaces becomes superseded (or rolled_back, when this is a rollback
    of it). Rows are locked in primary-key order so two status pollers cannot deadlock.
    """
    previous_qs = Release.objects.filter(
        service_id=release.service_id,
        environment_id=release.environment_id,
        state=ReleaseState.LIVE,
    ).exclude(pk=release.pk)
    ids = sorted([release.pk, *previous_qs.values_list("pk", flat=True)])
    locked = {
        r.pk: r for r in Release.objects.select_for_update(**LOCK).filter(pk__in=ids).order_by("pk")
    }
    release = locked[release.pk]
    if release.state == ReleaseState.LIVE:
        return release
    _check_transition(release, ReleaseState.LIVE, doing="mark live")
    if not release.commit_sha:
        raise Conflict(f"Release #{release.pk} has no commit yet; it cannot be live.")
    now = timezone.now()
    for pk in ids:
        previous = locked[pk]
        if pk == release.pk or previous.state != ReleaseState.LIVE:
            continue
        rolled_back = release.kind == ReleaseKind.ROLLBACK and release.rolled_back_release_id == pk
        to_state = ReleaseState.ROLLED_BACK if rolled_back else ReleaseState.SUPERSEDED
        _move(
            previous,
            to_state,
            system_actor="deployer",
            action=f"release.{to_state}",
            fields={"ended_at": now},
            note={"by": release.pk},
        )
    _move(
        release,
        ReleaseState.LIVE,
        system_actor="deployer",
        action="release.live",
        fields={"live_at": now, "status_message": message or "Synced and Healthy"},
        note={"commit": release.commit_sha},
    )
    _assign_alias_on_commit(release)
    return release


def _assign_alias_on_commit(release: Release) -> None:
    """Point the MLflow alias named after the environment at the live version. MLflow
    being down never blocks this: the registry retries and shows the failure."""
    from apps.registry.services import registry_alias_assign

    registry_alias_assign(
        model_version=release.model_version,
        alias=release.environment.name,
        release_uid=str(release.uid),
        actor_label="deployer",
    )


@transaction.atomic
def release_mark_failed(*, release: Release, message: str) -> Release:
    """The rollout did not become healthy (or could not be committed): -> failed.

    If the failed release's files reached the repository, the live release's files are
    committed again (a restore, audited as a rollback by the deployer), so the repository
    always describes what Slipway calls live.
    """
    release = _locked(release)
    if release.state == ReleaseState.FAILED:
        return release
    _check_transition(release, ReleaseState.FAILED, doing="mark failed")
    _move(
        release,
        ReleaseState.FAILED,
        system_actor="deployer",
        action="release.failed",
        fields={"ended_at": timezone.now(), "status_message": message[:2000]},
        note={"message": message[:500]},
    )
    if release.commit_sha:
        _restore_live_after_failure(release)
    return release


def _restore_live_after_failure(failed: Release) -> Release | None:
    """Commit the live release's manifests again after ``failed`` replaced them."""
    target = failed.service_id, failed.environment_id
    still_moving = Release.objects.filter(
        service_id=target[0],
        environment_id=target[1],
        state__in=[ReleaseState.APPROVED, ReleaseState.DEPLOYING],
    ).exists()
    live = (
        Release.objects.select_for_update(**LOCK)
        .filter(service_id=target[0], environment_id=target[1], state=ReleaseState.LIVE)
        .first()
    )
    if still_moving or live is None:
        return None  # a newer release will overwrite the folder, or there is nothing to restore
    now = timezone.now()
    restore = Release.objects.create(
        service_id=target[0],
        environment_id=target[1],
        model_version=live.model_version,
        config_overrides=live.config_overrides,
        config=live.config,
        rendered_files=live.rendered_files,
        digest=live.digest,
        kind=ReleaseKind.ROLLBACK,
        state=ReleaseState.APPROVED,
        requested_by_system="deployer",
        reason=f"Automatic restore of live release #{live.pk} after release #{failed.pk} failed "
        "to roll out.",
        rollback_target=live,
        rolled_back_release=failed,
        break_glass=True,
        submitted_at=now,
        approved_at=now,
    )
    audit_record(
        system_actor="deployer",
        action="release.restore",
        target_type="release",
        target_id=restore.pk,
        after={"state": "approved", "restores": live.pk, "after_failure_of": failed.pk},
    )
    _enqueue_deploy_on_commit()
    return restore


def release_note_status(*, release: Release, message: str) -> None:
    """Keep the latest word from git or Argo CD on the release page (no state change)."""
    Release.objects.filter(pk=release.pk).exclude(status_message=message).update(
        status_message=message[:2000]
    )


def target_record_status(
    *, target: ServiceEnvironment, sync_status: str, health_status: str, revision: str, message: str
) -> None:
    """Store what Argo CD last said about a service in an environment (fleet overview),
    and since when its health has been what it is."""
    now = timezone.now()
    ServiceEnvironment.objects.filter(pk=target.pk).exclude(
        health_status=health_status[:32]
    ).update(health_since=now)
    ServiceEnvironment.objects.filter(pk=target.pk).update(
        sync_status=sync_status[:32],
        health_status=health_status[:32],
        synced_revision=revision[:64],
        status_message=message[:2000],
        status_observed_at=now,
    )
