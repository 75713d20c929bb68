"""Creating releases and the requester's own moves: create a draft (idempotent with a
key), submit it for approval, cancel it before it deploys."""

from __future__ import annotations

import uuid

from django.db import IntegrityError
from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.gitops.config import ConfigError
from apps.gitops.errors import GitOpsError, RenderError
from apps.gitops.traffic import PlanError, Strategy, check_plan_supported, parse_rollout_plan
from apps.gitops.traffic import render_step as render_traffic_step
from apps.registry.models import ModelVersion
from apps.releases import permissions
from apps.releases import queue as release_queue
from apps.releases.analysis_config import analysis_config_check
from apps.releases.models import (
    Environment,
    Release,
    ReleaseKind,
    ReleaseState,
    Service,
    ServiceEnvironment,
)
from apps.releases.rendering import (
    control_plane_secrets,
    render_release,
    resolve_config,
    resolve_rollout_settings,
    rollout_digest,
)
from apps.releases.selectors import release_policy_progress
from apps.releases.services._idempotency import keyed_release, replay, request_fingerprint
from apps.releases.services._transitions import (
    _check_transition,
    _clean_text,
    _committed_text,
    _locked,
    _move,
)
from apps.releases.services.artifacts import release_check_artifacts
from apps.releases.services.freeze import refuse_if_frozen
from apps.releases.services.progressive import held_rollout
from apps.releases.services.shadow import shadow_autostart
from apps.releases.services.shadow_policy import shadow_submit_refusal


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
    rollout: dict | None = None,
) -> tuple[Release, bool]:
    """Create a draft release of a model version for a service in an environment.

    The manifests are rendered now, so the requester sees the diff and any configuration
    error before anyone is asked to approve. Returns (release, created); with an
    idempotency key the same request returns the first release instead of a second one.
    ``rollout`` overrides the plan the service's configuration gives (``rollout:``);
    a plan this runtime cannot run is refused here, before review.
    """
    if not permissions.can_create_release(actor):
        raise Forbidden("Only ML engineers and admins create releases.")
    if not permissions.can_create_release(actor, service):
        raise Forbidden(permissions.other_team_refusal(service, "an ML engineer"))
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

    if rollout is not None and not isinstance(rollout, dict):
        raise DomainError(
            'rollout must be an object such as {"strategy": "canary"}.',
            field_errors={"rollout": ["must be an object"]},
        )
    # The plan joins the fingerprint only when given, so keys used before plans existed
    # keep replaying.
    plan_part = {} if rollout is None else {"rollout": rollout}
    fingerprint = request_fingerprint(
        "create",
        service=service.name,
        environment=environment.name,
        model_version=model_version.version,
        config_overrides=overrides,
        reason=reason,
        **plan_part,
    )
    existing = keyed_release(actor=actor, key=idempotency_key)
    if existing is not None:
        replayed = _replay_create(
            existing, fingerprint, service, environment, model_version, overrides
        )
        return replayed, False

    _ensure_releasable(model_version, service)
    try:
        release = _create(
            actor=actor,
            service=service,
            environment=environment,
            model_version=model_version,
            overrides=overrides,
            reason=reason,
            kind=ReleaseKind.DEPLOY,
            idempotency_key=idempotency_key or None,
            idempotency_fingerprint=fingerprint,
            rollout=rollout,
        )
    except KeyRaced as raced:
        # Another request with this key committed first: this one is its replay (200 with
        # the same release), never a second 201.
        replayed = _replay_create(
            raced.release, fingerprint, service, environment, model_version, overrides
        )
        return replayed, False
    return release, True


def _replay_create(existing, fingerprint, service, environment, model_version, overrides):
    legacy_same = (
        existing.service_id == service.pk
        and existing.environment_id == environment.pk
        and existing.model_version_id == model_version.pk
        and existing.config_overrides == overrides
    )
    return replay(existing, fingerprint=fingerprint, legacy_same=legacy_same)


class KeyRaced(Exception):
    """Two requests with one idempotency key raced and the other one committed first."""

    def __init__(self, release: Release):
        super().__init__(f"idempotency key taken by release #{release.pk}")
        self.release = release


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
    idempotency_fingerprint="",
    promoted_from=None,
    system_actor="",
    rollout=None,
) -> Release:
    held = held_rollout(service=service, environment=environment, model_version=model_version)
    if held is not None:
        raise Conflict(
            f"{model_version} is held in {environment.name}: its rollout (release "
            f"#{held.release_id}) was aborted ({held.abort_reason}). Lift the hold on that "
            "release, with a reason, before releasing it here again."
        )
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
    progressive = _progressive_parts(
        service=service,
        environment=environment,
        target=target,
        overrides=overrides,
        requested=rollout,
        candidate=rendered.files,
    )
    digest = rendered.digest
    if progressive["rollout_stable"] is not None:
        digest = rollout_digest(
            files=rendered.files,
            plan=progressive["rollout_plan"],
            step_files=progressive["rollout_files"],
            stable_uid=str(progressive["rollout_stable"].uid),
        )
    try:
        with audited_atomic():
            release = Release.objects.create(
                uid=uid,
                service=service,
                environment=environment,
                model_version=model_version,
                config_overrides=overrides,
                config=config,
                rendered_files=rendered.files,
                digest=digest,
                kind=kind,
                requested_by=actor,
                requested_by_system=system_actor,
                reason=reason,
                idempotency_key=idempotency_key,
                idempotency_fingerprint=idempotency_fingerprint if idempotency_key else "",
                promoted_from=promoted_from,
                **progressive,
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
                    "digest": digest,
                    "rollout": progressive["rollout_plan"] or {"strategy": "all-at-once"},
                },
            )
    except IntegrityError:
        # PostgreSQL waits for the other insert with this key to commit before refusing
        # ours, so the winner is visible here; the caller answers with a replay.
        existing = keyed_release(actor=actor, key=idempotency_key)
        if existing is not None:
            raise KeyRaced(existing) from None
        raise
    return release


def _plan_error(exc: PlanError) -> DomainError:
    return DomainError(
        "The rollout plan was refused: "
        + " ".join(f"{path}: {message}" for path, message in exc.errors.items()),
        field_errors={path: [message] for path, message in exc.errors.items()},
    )


def _progressive_parts(*, service, environment, target, overrides, requested, candidate) -> dict:
    """The rollout fields of a new release: its plan, analysis config, every observed
    step's files (rendered now, against the release live today, so reviewers approve
    them) and that stable release. All empty for all-at-once.

    A plan the runtime cannot run is refused with the sentence saying why. A plan from
    the service's configuration, on a target where nothing is live yet, goes out
    all-at-once (there is no stable version to share traffic with); the same plan asked
    for in the request is refused, since the requester asked for something that cannot
    happen.
    """
    empty = {
        "rollout_plan": {},
        "rollout_analysis": {},
        "rollout_files": [],
        "rollout_stable": None,
    }
    configured, analysis = resolve_rollout_settings(
        service=service, environment=environment, target=target, overrides=overrides
    )
    raw = requested if requested is not None else configured
    try:
        plan = parse_rollout_plan(raw)
        if plan.strategy is Strategy.ALL_AT_ONCE:
            return empty
        check_plan_supported(plan, runtime=service.runtime, kserve_mode=environment.kserve_mode)
    except PlanError as exc:
        raise _plan_error(exc) from exc
    if not isinstance(analysis, dict):
        raise DomainError(
            "The service's analysis config must be a mapping with thresholds and promql.",
            field_errors={"analysis": ["must be a mapping"]},
        )
    # Checked now, with the parse that will judge every step: a bad threshold is a 400
    # naming the key, not a rollout that pauses at its first judgement.
    analysis_config_check(analysis, environment=environment.name, runtime=service.runtime)
    stable = Release.objects.filter(
        service=service, environment=environment, state=ReleaseState.LIVE
    ).first()
    if stable is None:
        if requested is None:
            return empty
        raise DomainError(
            f"Nothing is live for {service.name} in {environment.name}, so there is no "
            "stable version to share traffic with: the first release goes out "
            'all-at-once. Leave rollout out, or use {"strategy": "all-at-once"}.',
            field_errors={"rollout.strategy": ["no live release to compare with"]},
        )
    try:
        files = [
            render_traffic_step(
                runtime=service.runtime,
                kserve_mode=environment.kserve_mode,
                service=service.name,
                stable=stable.rendered_files,
                candidate=candidate,
                step=step,
            )
            for step in plan.steps()
            if not step.is_promotion
        ]
    except RenderError as exc:
        raise DomainError(
            f"The rollout steps cannot be rendered: {exc}",
            field_errors={"rollout": [str(exc)]},
        ) from exc
    return {
        "rollout_plan": plan.as_dict(),
        "rollout_analysis": analysis,
        "rollout_files": files,
        "rollout_stable": stable,
    }


def release_submit(*, actor, release: Release) -> Release:
    """Freeze a draft and ask the environment's reviewers for approval.

    From here on the release is immutable. An environment without approval rules
    approves it at once, and the deploy is queued after commit. First, outside any row
    lock, the model server must be able to load the version's artifacts: reviewers should
    not approve what cannot run.
    """
    if not permissions.can_submit_or_cancel(actor, release):
        raise Forbidden("Only the requester or an admin can submit this release.")
    _check_transition(release, ReleaseState.PENDING_APPROVAL, doing="submit")
    # Before the artifact check (slow I/O): a frozen environment is the first answer.
    refuse_if_frozen(release=release, doing=_asking(release))
    _refuse_unmirrorable(release)
    release_check_artifacts(
        service=release.service, model_version=release.model_version, config=release.config
    )
    return submit_checked(actor=actor, release=release)


def _refuse_unmirrorable(release: Release) -> None:
    """Before review: the environment requires a shadow report this runtime cannot give."""
    refusal = shadow_submit_refusal(release)
    if refusal:
        raise DomainError(refusal, field_errors={"shadow_evaluation": [refusal]})


def _asking(release: Release) -> str:
    return "promotion" if release.kind == ReleaseKind.PROMOTION else "release"


@audited_atomic
def submit_checked(*, actor, release: Release) -> Release:
    """``release_submit`` once the artifacts were checked (promotion checks them before
    its own transaction)."""
    release = _locked(release)
    if not permissions.can_submit_or_cancel(actor, release):
        raise Forbidden("Only the requester or an admin can submit this release.")
    _check_transition(release, ReleaseState.PENDING_APPROVAL, doing="submit")
    _ensure_releasable(release.model_version, release.service)
    # Checked again under the row lock: the freeze may have begun since the page loaded.
    refuse_if_frozen(release=release, doing=_asking(release))
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
        release_queue.enqueue_deploy_on_commit()
    else:
        _refuse_unmirrorable(release)
        _move(
            release,
            ReleaseState.PENDING_APPROVAL,
            actor=actor,
            action="release.submit",
            fields={"submitted_at": now},
            note={"policy": progress.summary},
        )
        # Where the environment requires a shadow report, the evaluation starts now:
        # its commit is made after this transaction commits.
        shadow_autostart(release=release)
    return release


@audited_atomic
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
