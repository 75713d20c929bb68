"""Promotion: ask for a release that soaked in one environment (staging) to be released
in the environment that promotes from it (prod), through that environment's reviewers."""

from __future__ import annotations

from apps.audit.services import audited_atomic
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.releases import permissions
from apps.releases.models import (
    Environment,
    Release,
    ReleaseKind,
    ReleaseState,
    ServiceEnvironment,
)
from apps.releases.rendering import resolve_config
from apps.releases.selectors import soak_gate, standing_promotion
from apps.releases.services._idempotency import keyed_release, replay, request_fingerprint
from apps.releases.services._transitions import _committed_text, _locked
from apps.releases.services.artifacts import release_check_artifacts
from apps.releases.services.create import (
    KeyRaced,
    _create,
    _ensure_releasable,
    submit_checked,
)
from apps.releases.services.freeze import break_glass_reason, record_override, refuse_if_frozen


def release_promote(
    *,
    actor,
    source: Release,
    environment: Environment | None = None,
    reason: str = "",
    idempotency_key: str | None = None,
    break_glass: str = "",
) -> tuple[Release, bool]:
    """Request promotion of a release that is live in the source environment (staging) to
    the environment that promotes from it (prod). Checks the soak-time gate, then creates
    and submits the promotion release for the target environment's reviewers.

    Into a frozen environment the request is refused (409, why and until when) unless
    ``break_glass`` gives on-call's or an admin's reason: then it goes through the freeze,
    audited, and still needs the environment's approvals."""
    if break_glass:
        # On-call may promote through a freeze (a fix during an incident) though they
        # do not request ordinary promotions.
        break_glass = break_glass_reason(actor, break_glass, service=source.service)
    elif not permissions.can_promote(actor):
        if permissions.can_break_freeze(actor):
            raise Forbidden(
                "On-call promotes only to break glass through a freeze: say why in "
                "break_glass. Ordinary promotions are requested by ML engineers."
            )
        raise Forbidden("Only ML engineers and admins request promotion.")
    elif not permissions.can_promote(actor, source.service):
        raise Forbidden(permissions.other_team_refusal(source.service, "an ML engineer"))
    reason = _committed_text(reason, field="reason")
    # The request as sent: no environment (the default target) and a named one are
    # different requests under one key.
    fingerprint = request_fingerprint(
        "promote",
        source=source.pk,
        environment=environment.name if environment is not None else None,
        reason=reason,
        **({"break_glass": break_glass} if break_glass else {}),
    )
    existing = keyed_release(actor=actor, key=idempotency_key)
    if existing is not None:
        return _replay_promotion(existing, fingerprint, source), False
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
    if not break_glass:
        # First, before the artifact check's I/O; submit_checked checks again under the
        # lock, in case the freeze begins meanwhile.
        refuse_if_frozen(environment=environment, doing="promotion")
    _ensure_releasable(source.model_version, source.service)
    # The target environment may configure the server differently (its overrides): check
    # the artifacts against what the promotion will run, before taking any lock.
    target_config = resolve_config(
        service=source.service,
        environment=environment,
        target=ServiceEnvironment.objects.filter(
            service=source.service, environment=environment
        ).first(),
        overrides=source.config_overrides,
    )
    release_check_artifacts(
        service=source.service, model_version=source.model_version, config=target_config
    )
    try:
        return _promote_locked(
            actor=actor,
            source=source,
            environment=environment,
            reason=reason,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            break_glass=break_glass,
        )
    except KeyRaced as raced:
        return _replay_promotion(raced.release, fingerprint, source), False


def _replay_promotion(existing: Release, fingerprint: str, source: Release) -> Release:
    return replay(
        existing, fingerprint=fingerprint, legacy_same=existing.promoted_from_id == source.pk
    )


def _promote_locked(
    *, actor, source, environment, reason, idempotency_key, fingerprint, break_glass=""
):
    with audited_atomic():
        # One standing promotion per source and target: a second click, a browser's
        # resubmit or a colleague's request would put the same change in front of
        # reviewers twice, or one that is live already.
        # The source row lock makes two racing requests check one after the other.
        _locked(source)
        # A request with this key may have committed while this one waited for the lock:
        # then this one is its replay, not a "standing promotion" conflict.
        keyed = keyed_release(actor=actor, key=idempotency_key)
        if keyed is not None:
            return _replay_promotion(keyed, fingerprint, source), False
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
            idempotency_fingerprint=fingerprint,
        )
        if break_glass:
            record_override(actor=actor, release=release, reason=break_glass)
        return submit_checked(actor=actor, release=release), True
