"""Which rollout strategies each runtime can really run, and by what mechanism.

Slipway never proxies traffic itself: a strategy exists for a runtime only where the
controller that serves it honours a traffic split (see docs/progressive-delivery.md for
the sources). ``plan_refusal`` is asked before a release goes to review, so a plan the
cluster would silently ignore is refused with a sentence saying what to do instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from apps.gitops.runtimes import KSERVE_SERVING_RUNTIMES, KServeMode, Runtime
from apps.gitops.traffic.plan import PlanError, RolloutPlan, Strategy

DEPLOYMENT_RUNTIMES = frozenset({Runtime.CUSTOM, Runtime.FASTAPI, Runtime.BENTOML})
KSERVE_RUNTIMES = frozenset(KSERVE_SERVING_RUNTIMES)


class Mechanism(StrEnum):
    # Replace the objects in one commit; the controller's own rollout (a Deployment's
    # rolling update, a new Knative revision at 100%) moves the traffic.
    REPLACE = "replace"
    # serving.kserve.io/v1beta1 spec.predictor.canaryTrafficPercent (Knative mode only).
    KSERVE_CANARY = "kserve-canary"
    # mlops.seldon.io/v1alpha1 Experiment: candidates' weights, mirror percent.
    SELDON_EXPERIMENT = "seldon-experiment"
    # gateway.networking.k8s.io/v1 HTTPRoute: backendRefs weights, RequestMirror filter.
    GATEWAY_HTTPROUTE = "gateway-httproute"


@dataclass(frozen=True)
class Capability:
    """What one runtime (in one KServe mode) can do; ``refusals`` says why not, per
    strategy it cannot run."""

    mechanism: Mechanism
    strategies: frozenset[Strategy]
    refusals: dict[Strategy, str]

    def supports(self, strategy: Strategy) -> bool:
        return strategy in self.strategies


ALL = frozenset(Strategy)

_KSERVE_STANDARD = (
    "KServe in Standard mode cannot split traffic by percentage: canaryTrafficPercent is "
    "honoured only by the Knative reconciler, and in Standard mode a new version replaces "
    "the old one by a rolling update of one Deployment, with no moment at 0% or at a "
    "chosen share. Use all-at-once, or run this environment in Knative mode."
)
_KSERVE_NO_MIRROR = (
    "KServe in Knative mode can split traffic (canaryTrafficPercent) but cannot mirror "
    "it: Knative routes each request to exactly one revision. Use canary or blue-green, "
    "or serve this model with Seldon Core 2, whose Experiment can mirror."
)
_BATCH = (
    "A batch runtime (CronJob) serves no traffic: there is nothing to split or mirror. "
    "Use all-at-once; compare versions on the scored output instead."
)
_STREAMING = (
    "A streaming consumer reads a Kafka topic, it does not answer requests: there is no "
    "request traffic to split or mirror, and two consumers in one group would each "
    "take a share of partitions, not a chosen percentage. Use all-at-once."
)


def capability(runtime: Runtime | str, kserve_mode: KServeMode | str) -> Capability:
    """What ``runtime`` can do in an environment whose KServe runs in ``kserve_mode``
    (the mode matters to KServe runtimes only)."""
    runtime, kserve_mode = Runtime(runtime), KServeMode(kserve_mode)
    if runtime in DEPLOYMENT_RUNTIMES:
        return Capability(Mechanism.GATEWAY_HTTPROUTE, ALL, {})
    if runtime is Runtime.SELDON:
        return Capability(Mechanism.SELDON_EXPERIMENT, ALL, {})
    if runtime in KSERVE_RUNTIMES and kserve_mode is KServeMode.KNATIVE:
        return Capability(
            Mechanism.KSERVE_CANARY,
            frozenset({Strategy.ALL_AT_ONCE, Strategy.CANARY, Strategy.BLUE_GREEN}),
            {Strategy.SHADOW: _KSERVE_NO_MIRROR},
        )
    if runtime in KSERVE_RUNTIMES:
        return _only_all_at_once(_KSERVE_STANDARD)
    if runtime is Runtime.BATCH:
        return _only_all_at_once(_BATCH)
    if runtime is Runtime.STREAMING:
        return _only_all_at_once(_STREAMING)
    raise ValueError(f"no traffic capability is defined for runtime {runtime.value!r}")


def _only_all_at_once(why: str) -> Capability:
    return Capability(
        Mechanism.REPLACE,
        frozenset({Strategy.ALL_AT_ONCE}),
        {strategy: why for strategy in Strategy if strategy is not Strategy.ALL_AT_ONCE},
    )


def plan_refusal(
    plan: RolloutPlan, *, runtime: Runtime | str, kserve_mode: KServeMode | str
) -> str | None:
    """Why ``plan`` cannot run on this runtime and mode, in a sentence; None if it can."""
    found = capability(runtime, kserve_mode)
    if found.supports(plan.strategy):
        return None
    return (
        f"The {plan.strategy.value} strategy is not available here. {found.refusals[plan.strategy]}"
    )


def check_plan_supported(
    plan: RolloutPlan,
    *,
    runtime: Runtime | str,
    kserve_mode: KServeMode | str,
    field: str = "rollout.strategy",
) -> None:
    """Raise ``PlanError`` on ``field`` if the plan cannot run here (before review)."""
    refusal = plan_refusal(plan, runtime=runtime, kserve_mode=kserve_mode)
    if refusal:
        raise PlanError({field: refusal})
