"""Rollout plans as an ML engineer writes them: good plans, and every refusal by field."""

from __future__ import annotations

import pytest

from apps.gitops.traffic.plan import (
    DEFAULT_OBSERVE,
    DEFAULT_PLANS,
    MAX_OBSERVE_MINUTES,
    Observe,
    PlanError,
    Strategy,
    parse_rollout_plan,
)


def refusal(raw) -> dict[str, str]:
    with pytest.raises(PlanError) as caught:
        parse_rollout_plan(raw)
    return caught.value.errors


def test_no_plan_is_all_at_once_in_one_commit():
    plan = parse_rollout_plan(None)
    assert plan.strategy is Strategy.ALL_AT_ONCE
    assert [(s.number, s.weight, s.observe) for s in plan.steps()] == [(1, 100, None)]
    assert parse_rollout_plan({}) == plan


def test_canary_steps_then_an_implicit_promotion():
    plan = parse_rollout_plan(
        {
            "strategy": "canary",
            "steps": [
                {"weight": 5, "observe": {"minutes": 15, "requests": 2000}},
                {"weight": 25, "observe": {"requests": 500}},
                {"weight": 60},
            ],
        }
    )
    steps = plan.steps()
    assert [(s.number, s.weight) for s in steps] == [(1, 5), (2, 25), (3, 60), (4, 100)]
    assert steps[0].observe == Observe(minutes=15, requests=2000)
    assert steps[1].observe == Observe(requests=500)
    assert steps[2].observe == DEFAULT_OBSERVE
    assert steps[-1].is_promotion and steps[-1].observe is None


def test_a_spelled_out_final_100_is_the_same_promotion():
    written = parse_rollout_plan({"strategy": "canary", "steps": [{"weight": 10}, {"weight": 100}]})
    implicit = parse_rollout_plan({"strategy": "canary", "steps": [{"weight": 10}]})
    assert written == implicit
    assert [s.weight for s in written.steps()] == [10, 100]


def test_blue_green_observes_at_zero_then_switches():
    plan = parse_rollout_plan({"strategy": "blue-green", "observe": {"minutes": 20}})
    assert [(s.weight, s.mirror_percent, s.observe) for s in plan.steps()] == [
        (0, 0, Observe(minutes=20)),
        (100, 0, None),
    ]


def test_shadow_mirrors_a_share_and_never_routes_responses_to_the_candidate():
    plan = parse_rollout_plan({"strategy": "shadow", "mirror_percent": 25})
    first, last = plan.steps()
    assert (first.weight, first.mirror_percent) == (0, 25)
    assert first.observe == DEFAULT_PLANS[Strategy.SHADOW].observe
    assert last.is_promotion


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_strategy_alone_gets_its_default_plan_and_round_trips(strategy):
    plan = parse_rollout_plan({"strategy": strategy.value})
    assert plan == DEFAULT_PLANS[strategy]
    assert parse_rollout_plan(plan.as_dict()) == plan
    assert plan.steps()[-1].is_promotion
    weights = [s.weight for s in plan.steps()]
    assert weights == sorted(weights) and all(0 <= w <= 100 for w in weights)


def test_unknown_strategy():
    errors = refusal({"strategy": "linear"})
    assert "'linear' is not a strategy" in errors["rollout.strategy"]
    assert "canary" in errors["rollout.strategy"]


def test_weights_that_do_not_rise():
    errors = refusal({"strategy": "canary", "steps": [{"weight": 20}, {"weight": 20}]})
    assert errors == {
        "rollout.steps[1].weight": "20 does not rise above the previous step's 20: each step "
        "must send more traffic to the candidate than the one before."
    }
    errors = refusal({"strategy": "canary", "steps": [{"weight": 50}, {"weight": 10}]})
    assert "does not rise above the previous step's 50" in errors["rollout.steps[1].weight"]


def test_weights_above_100_zero_and_negative():
    errors = refusal(
        {"strategy": "canary", "steps": [{"weight": 0}, {"weight": -5}, {"weight": 120}]}
    )
    assert "0 is outside 1..99" in errors["rollout.steps[0].weight"]
    assert "-5 is outside 1..99" in errors["rollout.steps[1].weight"]
    assert "120 is outside 1..99" in errors["rollout.steps[2].weight"]


def test_100_before_the_last_step():
    errors = refusal({"strategy": "canary", "steps": [{"weight": 100}, {"weight": 50}]})
    assert "may only be the last step" in errors["rollout.steps[0].weight"]


def test_observing_the_promotion_is_refused_with_the_reason():
    errors = refusal(
        {
            "strategy": "canary",
            "steps": [{"weight": 10}, {"weight": 100, "observe": {"minutes": 5}}],
        }
    )
    assert "no stable version is left to compare against" in errors["rollout.steps[1].observe"]


def test_weight_not_a_whole_number():
    errors = refusal({"strategy": "canary", "steps": [{"weight": "10%"}, {"weight": True}]})
    assert errors["rollout.steps[0].weight"] == "must be a whole percentage, not '10%'."
    assert errors["rollout.steps[1].weight"] == "must be a whole percentage, not True."


def test_missing_or_empty_steps():
    assert "at least one step" in refusal({"strategy": "canary", "steps": []})["rollout.steps"]
    errors = refusal({"strategy": "canary", "steps": [{"observe": {"minutes": 5}}]})
    assert "is required" in errors["rollout.steps[0].weight"]
    only_promotion = refusal({"strategy": "canary", "steps": [{"weight": 100}]})
    assert "at least one step below 100%" in only_promotion["rollout.steps"]


def test_negative_zero_and_unbounded_observe_windows():
    errors = refusal(
        {
            "strategy": "canary",
            "steps": [
                {"weight": 10, "observe": {"minutes": -5}},
                {"weight": 20, "observe": {"requests": 0}},
                {"weight": 30, "observe": {"minutes": MAX_OBSERVE_MINUTES + 1}},
                {"weight": 40, "observe": {}},
            ],
        }
    )
    assert errors["rollout.steps[0].observe.minutes"] == (
        "-5 is not positive: a step must be watched for at least 1 minute."
    )
    assert "0 is not positive" in errors["rollout.steps[1].observe.requests"]
    assert (
        "more than the limit of 1440 minutes (a day)" in errors["rollout.steps[2].observe.minutes"]
    )
    assert "must give minutes, requests or both" in errors["rollout.steps[3].observe"]


def test_unknown_keys_everywhere_by_path():
    errors = refusal(
        {
            "strategy": "canary",
            "steps": [{"weight": 10, "pause": True, "observe": {"hours": 1}}],
            "mirror_percent": 5,
        }
    )
    assert errors["rollout.mirror_percent"] == (
        "is not a setting of a canary plan; it takes only strategy, steps."
    )
    assert errors["rollout.steps[0].pause"] == (
        "is not a setting of a canary step; it takes only weight, observe."
    )
    assert "it takes only minutes, requests" in errors["rollout.steps[0].observe.hours"]
    blue_green = refusal({"strategy": "blue-green", "steps": [{"weight": 10}]})
    assert "not a setting of a blue-green plan" in blue_green["rollout.steps"]


def test_mirror_percent_bounds():
    for bad in (0, 101, -1, "all", 2.5):
        errors = refusal({"strategy": "shadow", "mirror_percent": bad})
        assert "is not a whole percentage from 1 to 100" in errors["rollout.mirror_percent"]


def test_not_a_mapping_and_every_problem_in_one_error():
    assert "must be a mapping" in refusal(["canary"])["rollout"]
    with pytest.raises(PlanError) as caught:
        parse_rollout_plan(
            {
                "strategy": "canary",
                "steps": [{"weight": 0}, {"weight": 30, "observe": {"minutes": 0}}],
            }
        )
    assert len(caught.value.errors) == 2
    assert "rollout.steps[0].weight" in str(caught.value)
