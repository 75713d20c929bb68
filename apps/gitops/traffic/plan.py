"""Rollout plans: how a release's traffic moves from the stable version to the candidate.

An ML engineer writes the plan under ``rollout:`` in a service or environment
configuration; ``parse_rollout_plan`` turns it into a frozen ``RolloutPlan`` or raises
``PlanError`` with one sentence per field path (``rollout.steps[1].weight``).

What a plan says::

    rollout: {strategy: all-at-once}                    # the default: one commit, 100%
    rollout:
      strategy: canary
      steps:                                            # weights rise strictly, 1..99
        - {weight: 10, observe: {minutes: 15, requests: 2000}}
        - {weight: 50, observe: {minutes: 30}}
    rollout: {strategy: blue-green, observe: {minutes: 20}}      # 0% while checked, then 100%
    rollout: {strategy: shadow, mirror_percent: 20, observe: {requests: 5000}}

Promotion to 100% is never written by hand: Slipway adds it after the last observed
step, because at 100% there is no stable version left to compare against on the same
traffic, so a step there could observe nothing useful. A last step of ``weight: 100``
without ``observe`` is accepted as a spelled-out promotion; with ``observe`` it is
refused for that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from apps.gitops.errors import GitOpsError

# Longest single observation: a day. A longer soak is a sign the plan wants a schedule,
# not a step, and it would hold the release (and its reviewers' approval) for days.
MAX_OBSERVE_MINUTES = 24 * 60
MAX_OBSERVE_REQUESTS = 100_000_000
MAX_CANARY_STEPS = 10
DEFAULT_OBSERVE_MINUTES = 10
DEFAULT_MIRROR_PERCENT = 10


class Strategy(StrEnum):
    ALL_AT_ONCE = "all-at-once"
    CANARY = "canary"
    BLUE_GREEN = "blue-green"
    SHADOW = "shadow"


class PlanError(GitOpsError, ValueError):
    """A rollout plan a person must fix; ``errors`` maps a field path to a sentence."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__(
            "The rollout plan was refused:\n"
            + "\n".join(f"- {field}: {message}" for field, message in self.errors.items())
        )


@dataclass(frozen=True)
class Observe:
    """How long a step is watched: minutes, a minimum request count, or both (both must
    be reached before the step can pass)."""

    minutes: int | None = None
    requests: int | None = None

    def as_dict(self) -> dict[str, int]:
        values = {"minutes": self.minutes, "requests": self.requests}
        return {key: value for key, value in values.items() if value is not None}


DEFAULT_OBSERVE = Observe(minutes=DEFAULT_OBSERVE_MINUTES)


@dataclass(frozen=True)
class TrafficStep:
    """One commit of a rollout.

    ``weight`` is the candidate's share of responses (0-100); ``mirror_percent`` the
    share of requests copied to the candidate whose answers are recorded and dropped
    (shadow only). ``observe`` is None for the promotion, which ends the rollout.
    """

    number: int  # 1-based, as shown to people and written in the commit trailer
    weight: int
    mirror_percent: int = 0
    observe: Observe | None = None

    @property
    def is_promotion(self) -> bool:
        return self.weight == 100


@dataclass(frozen=True)
class CanaryStep:
    weight: int
    observe: Observe


@dataclass(frozen=True)
class RolloutPlan:
    strategy: Strategy
    canary_steps: tuple[CanaryStep, ...] = ()  # canary only
    observe: Observe | None = None  # blue-green and shadow
    mirror_percent: int | None = None  # shadow only

    def steps(self) -> tuple[TrafficStep, ...]:
        """Every commit of the rollout in order; the last one is always the promotion."""
        if self.strategy is Strategy.CANARY:
            middle = [
                TrafficStep(number=index, weight=step.weight, observe=step.observe)
                for index, step in enumerate(self.canary_steps, start=1)
            ]
        elif self.strategy is Strategy.BLUE_GREEN:
            middle = [TrafficStep(number=1, weight=0, observe=self.observe)]
        elif self.strategy is Strategy.SHADOW:
            middle = [
                TrafficStep(
                    number=1,
                    weight=0,
                    mirror_percent=self.mirror_percent or 0,
                    observe=self.observe,
                )
            ]
        else:
            middle = []
        return (*middle, TrafficStep(number=len(middle) + 1, weight=100))

    def as_dict(self) -> dict[str, Any]:
        """The canonical form (what reviewers approve and the digest covers);
        ``parse_rollout_plan(plan.as_dict()) == plan``."""
        data: dict[str, Any] = {"strategy": self.strategy.value}
        if self.strategy is Strategy.CANARY:
            data["steps"] = [
                {"weight": step.weight, "observe": step.observe.as_dict()}
                for step in self.canary_steps
            ]
        if self.observe is not None:
            data["observe"] = self.observe.as_dict()
        if self.mirror_percent is not None:
            data["mirror_percent"] = self.mirror_percent
        return data


DEFAULT_PLANS: dict[Strategy, RolloutPlan] = {
    Strategy.ALL_AT_ONCE: RolloutPlan(Strategy.ALL_AT_ONCE),
    # 10% catches a broken model on little traffic; 50% gives the analysis enough
    # requests on both sides for latency percentiles and the output distribution.
    Strategy.CANARY: RolloutPlan(
        Strategy.CANARY,
        canary_steps=(
            CanaryStep(10, Observe(minutes=15, requests=1000)),
            CanaryStep(50, Observe(minutes=15, requests=1000)),
        ),
    ),
    Strategy.BLUE_GREEN: RolloutPlan(Strategy.BLUE_GREEN, observe=Observe(minutes=15)),
    # Mirroring doubles the work for the mirrored share: 10% is cheap and, over an
    # hour of production traffic, enough requests for PSI and agreement.
    Strategy.SHADOW: RolloutPlan(
        Strategy.SHADOW, observe=Observe(minutes=60), mirror_percent=DEFAULT_MIRROR_PERCENT
    ),
}

_KEYS = {
    Strategy.ALL_AT_ONCE: ("strategy",),
    Strategy.CANARY: ("strategy", "steps"),
    Strategy.BLUE_GREEN: ("strategy", "observe"),
    Strategy.SHADOW: ("strategy", "observe", "mirror_percent"),
}


def parse_rollout_plan(raw: Mapping[str, Any] | None, *, prefix: str = "rollout") -> RolloutPlan:
    """Parse what a person wrote under ``rollout:``; None or ``{}`` is all-at-once.

    A strategy alone gets that strategy's default plan. Raises ``PlanError`` listing
    every problem by field path.
    """
    if raw is None:
        return DEFAULT_PLANS[Strategy.ALL_AT_ONCE]
    if not isinstance(raw, Mapping):
        raise PlanError({prefix: "must be a mapping such as {strategy: canary, steps: [...]}."})
    errors: dict[str, str] = {}
    strategy_text = raw.get("strategy", Strategy.ALL_AT_ONCE.value)
    try:
        strategy = Strategy(strategy_text)
    except ValueError:
        raise PlanError(
            {
                f"{prefix}.strategy": f"{strategy_text!r} is not a strategy; use one of "
                + ", ".join(s.value for s in Strategy)
                + "."
            }
        ) from None
    _unknown_keys(raw, _KEYS[strategy], prefix, errors, why=f"a {strategy.value} plan")
    default = DEFAULT_PLANS[strategy]
    plan = default
    if strategy is Strategy.CANARY and "steps" in raw:
        steps = _canary_steps(raw["steps"], f"{prefix}.steps", errors)
        plan = RolloutPlan(strategy, canary_steps=steps)
    elif strategy in (Strategy.BLUE_GREEN, Strategy.SHADOW):
        observe = default.observe
        if "observe" in raw:
            observe = _observe(raw["observe"], f"{prefix}.observe", errors)
        mirror = default.mirror_percent
        if strategy is Strategy.SHADOW and "mirror_percent" in raw:
            mirror = _mirror_percent(raw["mirror_percent"], f"{prefix}.mirror_percent", errors)
        plan = RolloutPlan(strategy, observe=observe, mirror_percent=mirror)
    if errors:
        raise PlanError(errors)
    return plan


def _unknown_keys(
    raw: Mapping[str, Any], allowed: tuple[str, ...], prefix: str, errors: dict, *, why: str
) -> None:
    for key in raw:
        if key not in allowed:
            errors[f"{prefix}.{key}"] = (
                f"is not a setting of {why}; it takes only {', '.join(allowed)}."
            )


def _integer(value: Any) -> bool:
    # YAML's true/false are ints to Python; a weight of "true" is a typo, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _canary_steps(raw: Any, path: str, errors: dict) -> tuple[CanaryStep, ...]:
    if not isinstance(raw, list) or not raw:
        errors[path] = "must list at least one step, e.g. [{weight: 10}, {weight: 50}]."
        return ()
    if len(raw) > MAX_CANARY_STEPS + 1:
        errors[path] = f"has {len(raw)} steps; at most {MAX_CANARY_STEPS} are allowed."
        return ()
    steps: list[CanaryStep] = []
    previous: int | None = None
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(item, Mapping):
            errors[where] = "must be a mapping such as {weight: 10, observe: {minutes: 15}}."
            continue
        _unknown_keys(item, ("weight", "observe"), where, errors, why="a canary step")
        weight = item.get("weight")
        last = index == len(raw) - 1
        if weight is None:
            errors[f"{where}.weight"] = "is required: the candidate's share of traffic, 1 to 99."
            continue
        if not _integer(weight):
            errors[f"{where}.weight"] = f"must be a whole percentage, not {weight!r}."
            continue
        if weight == 100 and last:
            # The promotion spelled out; it is added anyway, so it is dropped here.
            if "observe" in item:
                errors[f"{where}.observe"] = (
                    "a step at 100% cannot be observed: no stable version is left to "
                    "compare against. Observe the step before it, or remove this one "
                    "(Slipway promotes to 100% after the last step)."
                )
            continue
        if not 1 <= weight <= 99:
            errors[f"{where}.weight"] = (
                f"{weight} is outside 1..99: a canary step sends part of the traffic to the "
                "candidate (100% is the promotion Slipway adds after the last step"
                + (", and may only be the last step" if weight == 100 else "")
                + ")."
            )
            continue
        if previous is not None and weight <= previous:
            errors[f"{where}.weight"] = (
                f"{weight} does not rise above the previous step's {previous}: each step "
                "must send more traffic to the candidate than the one before."
            )
            continue
        previous = weight
        observe = DEFAULT_OBSERVE
        if "observe" in item:
            observe = _observe(item["observe"], f"{where}.observe", errors)
        steps.append(CanaryStep(weight, observe))
    if not steps and path not in errors and not any(k.startswith(path) for k in errors):
        errors[path] = "must list at least one step below 100%."
    return tuple(steps)


def _observe(raw: Any, path: str, errors: dict) -> Observe:
    if not isinstance(raw, Mapping) or not raw:
        errors[path] = "must give minutes, requests or both, e.g. {minutes: 15, requests: 1000}."
        return DEFAULT_OBSERVE
    _unknown_keys(raw, ("minutes", "requests"), path, errors, why="observe")
    values: dict[str, int | None] = {"minutes": None, "requests": None}
    for key, upper, unit in (
        ("minutes", MAX_OBSERVE_MINUTES, "minutes (a day)"),
        ("requests", MAX_OBSERVE_REQUESTS, "requests"),
    ):
        if key not in raw:
            continue
        value = raw[key]
        if not _integer(value):
            errors[f"{path}.{key}"] = f"must be a whole number, not {value!r}."
        elif value <= 0:
            errors[f"{path}.{key}"] = (
                f"{value} is not positive: a step must be watched for at least 1 {key[:-1]}."
            )
        elif value > upper:
            errors[f"{path}.{key}"] = f"{value} is more than the limit of {upper} {unit}."
        else:
            values[key] = value
    if values["minutes"] is None and values["requests"] is None:
        return DEFAULT_OBSERVE
    return Observe(minutes=values["minutes"], requests=values["requests"])


def _mirror_percent(raw: Any, path: str, errors: dict) -> int | None:
    if not _integer(raw) or not 1 <= raw <= 100:
        errors[path] = (
            f"{raw!r} is not a whole percentage from 1 to 100: the share of live requests "
            "copied to the candidate."
        )
        return None
    return raw
