"""What shadow evaluation means for one release (docs/progressive-delivery.md): the
environment's policy, why an evaluation cannot run, its settings, and the approval gate
(a failing report blocks approval; under ``required`` approval waits for a passing one).
Reads only; the actions are in ``services.shadow``."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.core.errors import DomainError
from apps.gitops.traffic import (
    DEFAULT_PLANS,
    Observe,
    PlanError,
    Strategy,
    capability,
    parse_rollout_plan,
)
from apps.gitops.traffic.capabilities import DEPLOYMENT_RUNTIMES
from apps.releases.models import (
    Release,
    ReleaseKind,
    ReleaseState,
    ServiceEnvironment,
    ShadowEvaluation,
)
from apps.releases.rendering import resolve_shadow_settings

OFF, OPTIONAL, REQUIRED = "off", "optional", "required"


def shadow_policy(release: Release) -> str:
    """off / optional / required for this release: rollbacks never wait for one (they
    undo a change), and a target with nothing live has no traffic to mirror."""
    return release.environment.shadow_evaluation or OFF


def shadow_unavailable(release: Release) -> str | None:
    """Why no shadow evaluation of ``release`` can run, in a sentence a person can act
    on; None when one can. Asked before review (the page, submit) and at start."""
    policy = shadow_policy(release)
    env = release.environment
    if policy == OFF:
        return (
            f"Shadow evaluation is off in {env.name}; an admin can make it optional or "
            "required on the environment."
        )
    if release.kind == ReleaseKind.ROLLBACK:
        return "A rollback is not evaluated in shadow: it puts back a version that ran here."
    found = capability(release.service.runtime, env.kserve_mode)
    if not found.supports(Strategy.SHADOW):
        return f"Shadow evaluation is not available here. {found.refusals[Strategy.SHADOW]}"
    live = live_release(release)
    if live is None:
        return (
            f"Nothing is live for {release.service.name} in {env.name}: there is no "
            "production traffic to mirror, so the first release is reviewed without one."
        )
    if live.pk == release.pk:
        return "This release is the live one."
    if (
        release.service.runtime in DEPLOYMENT_RUNTIMES
        and live.model_version_id == release.model_version_id
    ):
        return (
            f"The live release serves model version {release.model_version.version} too, "
            "and the metrics of Deployment runtimes tell the two apart by version: a "
            "configuration-only change cannot be evaluated in shadow."
        )
    return None


def shadow_required_now(release: Release) -> bool:
    """Whether approvals of ``release`` wait for a judged shadow report: the policy is
    required and an evaluation can run (a refusal is given at submit instead)."""
    return shadow_policy(release) == REQUIRED and shadow_unavailable(release) is None


def live_release(release: Release) -> Release | None:
    return Release.objects.filter(
        service_id=release.service_id,
        environment_id=release.environment_id,
        state=ReleaseState.LIVE,
    ).first()


def latest_evaluation(release: Release) -> ShadowEvaluation | None:
    return ShadowEvaluation.objects.filter(release=release).order_by("-run").first()


def judged_evaluation(release: Release) -> ShadowEvaluation | None:
    """The latest evaluation of ``release`` with a final report."""
    return (
        ShadowEvaluation.objects.filter(release=release, judged_at__isnull=False)
        .order_by("-run")
        .first()
    )


def shadow_plan(release: Release, target: ServiceEnvironment | None):
    """(mirror percent, Observe, analysis config) of an evaluation of ``release``:
    ``shadow_evaluation:`` in the configuration layers, else the release's own plan when
    it is a shadow plan, else the default shadow plan. Refused by field path."""
    written, analysis = resolve_shadow_settings(
        service=release.service,
        environment=release.environment,
        target=target,
        release_overrides=release.config_overrides,
    )
    try:
        if written is not None:
            if not isinstance(written, dict):
                raise PlanError(
                    {"shadow_evaluation": "must be a mapping such as {mirror_percent: 10}."}
                )
            plan = parse_rollout_plan({**written, "strategy": "shadow"}, prefix="shadow_evaluation")
        elif (release.rollout_plan or {}).get("strategy") == Strategy.SHADOW.value:
            plan = parse_rollout_plan(release.rollout_plan)
        else:
            plan = DEFAULT_PLANS[Strategy.SHADOW]
    except PlanError as exc:
        raise DomainError(
            "The shadow evaluation settings were refused: "
            + " ".join(f"{path}: {message}" for path, message in exc.errors.items()),
            field_errors={path: [message] for path, message in exc.errors.items()},
        ) from exc
    if not isinstance(analysis, dict):
        raise DomainError(
            "The service's analysis config must be a mapping with thresholds and promql.",
            field_errors={"analysis": ["must be a mapping"]},
        )
    return plan.mirror_percent, plan.observe or Observe(minutes=60), analysis


# --- the approval gate ------------------------------------------------------------------


def shadow_approval_refusal(release: Release) -> str | None:
    """Why an approval of ``release`` must wait, or None. The current report is the
    latest judged run. A failing one blocks approval under any policy (rejecting stays
    possible; a new run's report replaces it); under ``required`` an approval waits for
    a report that passed."""
    policy = shadow_policy(release)
    if policy == OFF:
        return None
    judged = judged_evaluation(release)
    if judged is not None and judged.verdict == "fail":
        return (
            f"The shadow evaluation (run {judged.run}) failed: {judged.verdict_message} "
            "Approving is blocked: reject the release, or have an ML engineer run the "
            "evaluation again if the failure came from something other than the model."
        )
    if policy != REQUIRED or not shadow_required_now(release):
        return None
    if judged is not None and judged.verdict == "pass":
        return None
    env = release.environment.name
    latest = latest_evaluation(release)
    if latest is not None and latest.is_active and latest.judged_at is None:
        left = ""
        if latest.started_at and latest.observe_minutes:
            ends = latest.started_at + timedelta(minutes=latest.observe_minutes)
            minutes = max(0, int((ends - timezone.now()).total_seconds() // 60) + 1)
            left = f" (about {minutes} more minutes)"
        return (
            f"{env} requires a shadow evaluation before approval, and it is still "
            f"running{left}. Approve once its report is ready; reviewers are notified then."
        )
    if judged is not None:
        return (
            f"{env} requires a shadow evaluation before approval, and the last one was "
            f"inconclusive ({judged.verdict_message}). An ML engineer can run another one "
            "when there is more traffic, or with a longer window."
        )
    return (
        f"{env} requires a shadow evaluation before approval, and none has been judged "
        "yet. An ML engineer of the team starts one from the release page (or POST "
        f"/api/v1/releases/{release.pk}/shadow-evaluation/)."
    )


def shadow_submit_refusal(release: Release) -> str | None:
    """Refused before review: the environment requires a shadow evaluation and this
    runtime (or KServe mode) cannot mirror traffic, so no report could ever exist."""
    if shadow_policy(release) != REQUIRED or release.kind == ReleaseKind.ROLLBACK:
        return None
    found = capability(release.service.runtime, release.environment.kserve_mode)
    if found.supports(Strategy.SHADOW):
        return None
    return (
        f"{release.environment.name} requires a shadow evaluation before approval, and it "
        f"is not available here. {found.refusals[Strategy.SHADOW]} Or ask an admin to make "
        f"shadow evaluation optional in {release.environment.name}."
    )
