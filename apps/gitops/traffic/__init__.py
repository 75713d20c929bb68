"""Progressive delivery, adapter side: rollout plans, what each runtime can run, and the
files of each step. Pure functions over plain values; no domain app is imported."""

from apps.gitops.traffic.capabilities import (
    Capability,
    Mechanism,
    capability,
    check_plan_supported,
    plan_refusal,
)
from apps.gitops.traffic.plan import (
    DEFAULT_PLANS,
    Observe,
    PlanError,
    RolloutPlan,
    Strategy,
    TrafficStep,
    parse_rollout_plan,
)
from apps.gitops.traffic.render import RouteParent, render_abort, render_step

__all__ = [
    "DEFAULT_PLANS",
    "Capability",
    "Mechanism",
    "Observe",
    "PlanError",
    "RolloutPlan",
    "RouteParent",
    "Strategy",
    "TrafficStep",
    "capability",
    "check_plan_supported",
    "parse_rollout_plan",
    "plan_refusal",
    "render_abort",
    "render_step",
]
