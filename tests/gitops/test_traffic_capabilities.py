"""What each runtime x KServe mode can run, and what Slipway says before review when not."""

from __future__ import annotations

import pytest

from apps.gitops.runtimes import KSERVE_SERVING_RUNTIMES, KServeMode, Runtime
from apps.gitops.traffic.capabilities import (
    Mechanism,
    capability,
    check_plan_supported,
    plan_refusal,
)
from apps.gitops.traffic.plan import DEFAULT_PLANS, PlanError, Strategy

ALL = set(Strategy)
EXPECTED = {
    Runtime.CUSTOM: (Mechanism.GATEWAY_HTTPROUTE, ALL, ALL),
    Runtime.FASTAPI: (Mechanism.GATEWAY_HTTPROUTE, ALL, ALL),
    Runtime.BENTOML: (Mechanism.GATEWAY_HTTPROUTE, ALL, ALL),
    Runtime.SELDON: (Mechanism.SELDON_EXPERIMENT, ALL, ALL),
    Runtime.BATCH: (Mechanism.REPLACE, {Strategy.ALL_AT_ONCE}, {Strategy.ALL_AT_ONCE}),
    Runtime.STREAMING: (Mechanism.REPLACE, {Strategy.ALL_AT_ONCE}, {Strategy.ALL_AT_ONCE}),
}
for _runtime in KSERVE_SERVING_RUNTIMES:
    EXPECTED[_runtime] = (
        None,  # depends on the mode
        {Strategy.ALL_AT_ONCE, Strategy.CANARY, Strategy.BLUE_GREEN},  # Knative
        {Strategy.ALL_AT_ONCE},  # Standard
    )


def test_every_runtime_has_an_answer():
    assert set(EXPECTED) == set(Runtime)


@pytest.mark.parametrize("runtime", list(Runtime), ids=str)
@pytest.mark.parametrize("mode", list(KServeMode), ids=str)
def test_strategies_per_runtime_and_mode(runtime, mode):
    mechanism, knative, standard = EXPECTED[runtime]
    found = capability(runtime, mode)
    expected = knative if mode is KServeMode.KNATIVE else standard
    assert found.strategies == expected
    if mechanism is not None:
        assert found.mechanism is mechanism
    for strategy in Strategy:
        refusal = plan_refusal(DEFAULT_PLANS[strategy], runtime=runtime, kserve_mode=mode)
        if strategy in expected:
            assert refusal is None
        else:
            # Every refusal says what cannot be done and what to do instead.
            assert refusal.startswith(f"The {strategy.value} strategy is not available here.")
            assert "Use " in refusal


def test_kserve_modes_pick_their_mechanism():
    assert (
        capability(Runtime.KSERVE_SKLEARN, KServeMode.KNATIVE).mechanism is Mechanism.KSERVE_CANARY
    )
    assert capability(Runtime.KSERVE_SKLEARN, KServeMode.STANDARD).mechanism is Mechanism.REPLACE


def test_kserve_standard_canary_refusal_names_the_cause_and_the_ways_out():
    with pytest.raises(PlanError) as caught:
        check_plan_supported(
            DEFAULT_PLANS[Strategy.CANARY], runtime="kserve-xgboost", kserve_mode="standard"
        )
    message = caught.value.errors["rollout.strategy"]
    assert "KServe in Standard mode cannot split traffic by percentage" in message
    assert "canaryTrafficPercent is honoured only by the Knative reconciler" in message
    assert "Use all-at-once, or run this environment in Knative mode." in message


def test_kserve_knative_cannot_mirror():
    message = plan_refusal(
        DEFAULT_PLANS[Strategy.SHADOW], runtime=Runtime.KSERVE_ONNX, kserve_mode="knative"
    )
    assert "cannot mirror" in message and "Seldon Core 2" in message


def test_batch_and_streaming_have_no_traffic():
    batch = plan_refusal(DEFAULT_PLANS[Strategy.CANARY], runtime="batch", kserve_mode="knative")
    assert "serves no traffic" in batch
    streaming = plan_refusal(
        DEFAULT_PLANS[Strategy.SHADOW], runtime="streaming", kserve_mode="knative"
    )
    assert "reads a Kafka topic" in streaming


def test_a_supported_plan_passes_and_the_field_is_configurable():
    check_plan_supported(DEFAULT_PLANS[Strategy.SHADOW], runtime="seldon", kserve_mode="standard")
    with pytest.raises(PlanError) as caught:
        check_plan_supported(
            DEFAULT_PLANS[Strategy.BLUE_GREEN],
            runtime="batch",
            kserve_mode="knative",
            field="environments.prod.rollout.strategy",
        )
    assert list(caught.value.errors) == ["environments.prod.rollout.strategy"]
