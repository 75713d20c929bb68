"""The reviewers' side: approve or reject a release waiting for approval, for the role
their decision counts for under the environment's policy."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.releases import permissions
from apps.releases import queue as release_queue
from apps.releases.models import Approval, ApprovalDecision, Release, ReleaseState
from apps.releases.panels import release_panels
from apps.releases.policy import open_slots_for
from apps.releases.selectors import release_policy_progress, review_snapshot
from apps.releases.services._transitions import (
    _check_transition,
    _clean_text,
    _locked,
    _move,
)
from apps.releases.services.shadow_policy import shadow_approval_refusal


def _check_reviewer(actor, release: Release, *, doing: str) -> None:
    """Refuse a person who may not decide on this release: the requester, someone with no
    reviewer role for the service's team, the model's trainer where the environment
    separates duties."""
    if permissions.is_requester(actor, release):
        if doing == "approve":
            raise Forbidden("You requested this release; another person must approve it.")
        raise Forbidden("You requested this release; cancel it instead of rejecting it.")
    if not permissions.can_review(actor):
        raise Forbidden(f"Only product and compliance reviewers {doing} releases.")
    team = release.service.owner_team
    if not permissions.can_review(actor, release):
        raise Forbidden(
            f"{release.service.name} belongs to team {team.slug}; you are not a reviewer "
            f"for {team.slug}. Ask an admin for a reviewer grant on that team."
        )
    if permissions.trainer_blocked(actor, release):
        raise Forbidden(
            f"You trained this model (MLflow run {release.model_version.run_id or '?'}); "
            f"in {release.environment.name} someone else must review its release."
        )


def _reviewer_role(actor, release: Release, requested_role: str | None) -> str:
    """The role this person's decision counts for, or a clear refusal."""
    progress = release_policy_progress(release)
    held = permissions.review_roles(actor, release)
    required = {r.role for r in progress.roles}
    if requested_role:
        if requested_role not in held:
            raise Forbidden(
                f"You do not hold the {requested_role} role for team "
                f"{release.service.owner_team.slug}."
            )
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


@audited_atomic
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
    _check_reviewer(actor, release, doing="approve")
    if release.state != ReleaseState.PENDING_APPROVAL:
        raise Conflict(
            f"Cannot approve release #{release.pk}: it is "
            f"{release.get_state_display().lower()}, not waiting for approval."
        )
    if digest and digest != release.digest:
        raise Conflict("This release is not the one you reviewed (its digest differs); reload it.")
    role = _reviewer_role(actor, release, role)
    # The shadow report is evidence reviewers weigh: a failing one blocks approval, and
    # where the environment requires one, approval waits for it (rejecting never does).
    waiting = shadow_approval_refusal(release)
    if waiting:
        raise Conflict(waiting)
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
                evidence=review_snapshot(release, panels=release_panels(release)),
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
        release_queue.enqueue_deploy_on_commit()
    return release


@audited_atomic
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
    _check_reviewer(actor, release, doing="reject")
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
        evidence=review_snapshot(release, panels=release_panels(release)),
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
