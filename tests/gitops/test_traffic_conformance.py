"""Rollout steps held to what the real controllers do, case by case.

Cases live under ``traffic_cases`` in ``tests/gitops/conformance/traffic-*.yaml``, each
written from the upstream source it names. A case gives a runtime, a KServe mode, a
plan and a step number; an accepted one must contain ``expect`` (partial objects, as in
the release corpus: ``null`` means absent, a whole file ``null`` means not rendered), a
refused one must be refused before review (``plan_refusal``) and at render time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from apps.gitops.errors import RenderError
from apps.gitops.runtimes import KServeMode, Runtime
from apps.gitops.traffic.capabilities import plan_refusal
from apps.gitops.traffic.plan import parse_rollout_plan
from apps.gitops.traffic.render import render_step
from tests.gitops.test_conformance import contains
from tests.gitops.test_traffic_render import releases

CORPUS = Path(__file__).parent / "conformance"
REQUIRED = {"name", "runtime", "plan", "step", "accepted", "behaviour", "source"}


def load_cases() -> list[dict]:
    cases = []
    for path in sorted(CORPUS.glob("traffic-*.yaml")):
        for case in yaml.safe_load(path.read_text())["traffic_cases"]:
            case["id"] = f"{path.stem}/{case['name']}"
            cases.append(case)
    return cases


CASES = load_cases()


def test_the_corpus_is_well_formed_and_covers_each_mechanism():
    assert len({case["id"] for case in CASES}) == len(CASES)
    for case in CASES:
        assert set(case) >= REQUIRED, case["id"]
        assert ("expect" in case) == case["accepted"], case["id"]
        assert ("refusal" in case) != case["accepted"], case["id"]
    runtimes = {case["runtime"] for case in CASES if case["accepted"]}
    assert {"kserve-sklearn", "seldon", "custom"} <= runtimes
    strategies = {case["plan"]["strategy"] for case in CASES if case["accepted"]}
    assert strategies == {"canary", "blue-green", "shadow"}


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case(case):
    runtime = Runtime(case["runtime"])
    mode = KServeMode(case.get("kserve_mode", "knative"))
    plan = parse_rollout_plan(case["plan"])
    step = plan.steps()[case["step"] - 1]
    stable, candidate = releases(runtime)

    def rendered() -> dict[str, str]:
        return render_step(
            runtime=runtime,
            kserve_mode=mode,
            service="churn",
            stable=stable,
            candidate=candidate,
            step=step,
        )

    if not case["accepted"]:
        refusal = plan_refusal(plan, runtime=runtime, kserve_mode=mode)
        assert refusal and case["refusal"]["contains"] in refusal
        with pytest.raises(RenderError, match=case["refusal"]["contains"]):
            rendered()
        return
    assert plan_refusal(plan, runtime=runtime, kserve_mode=mode) is None
    files = rendered()
    for name, expected in case["expect"].items():
        if expected is None:
            assert name not in files, f"{name} should not be rendered"
            continue
        assert name in files, f"{name} not rendered"
        problems = contains(yaml.safe_load(files[name]), expected)
        assert not problems, problems
