"""The conformance corpus: what the real controllers accept and do, case by case.

Cases live in ``tests/gitops/conformance/*.yaml`` (format in its README), written from
the upstream CRDs, webhooks and docs named in each case. Every case is rendered: an
accepted one must contain its expected fields and build with ``kubectl kustomize``; a
refused one must raise ConfigError on its field with its message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.gitops.config import ConfigError
from apps.gitops.render import KUSTOMIZATION_FILE, render
from apps.gitops.runtimes import KSERVE_SERVING_RUNTIMES, KServeMode, Runtime
from tests.gitops.conftest import make_request

CORPUS = Path(__file__).parent / "conformance"
REQUIRED = {"name", "runtime", "environment", "config", "accepted", "behaviour", "source"}


def load_cases() -> list[dict]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            case["id"] = f"{path.stem}/{case['name']}"
            cases.append(case)
    return cases


CASES = load_cases()


def render_case(case: dict):
    environment = case["environment"]
    extra: dict[str, Any] = {"kserve_mode": KServeMode(environment["kserve_mode"])}
    if "kserve_version" in environment:
        extra["kserve_version"] = environment["kserve_version"]
    if "model_uri" in case:
        extra["model_uri"] = case["model_uri"]
    return render(make_request(Runtime(case["runtime"]), config=case["config"], **extra))


def contains(actual: Any, expected: Any, path: str = "") -> list[str]:
    """Where ``actual`` differs from the partial ``expected`` (empty: it contains it)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, got {actual!r}"]
        problems = []
        for key, value in expected.items():
            where = f"{path}.{key}" if path else key
            if value is None:
                if key in actual:
                    problems.append(f"{where}: expected absent, got {actual[key]!r}")
            elif key not in actual:
                problems.append(f"{where}: missing")
            else:
                problems += contains(actual[key], value, where)
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        problems = []
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            problems += contains(got, want, f"{path}[{index}]")
        return problems
    return [] if actual == expected else [f"{path}: expected {expected!r}, got {actual!r}"]


def test_the_corpus_is_well_formed_and_covers_every_runtime_and_mode():
    names = [case["id"] for case in CASES]
    assert len(names) == len(set(names)), "case names are unique per file"
    for case in CASES:
        assert set(case) >= REQUIRED, f"{case['id']} lacks {REQUIRED - set(case)}"
        assert ("expect" in case) == case["accepted"], case["id"]
        assert ("refusal" in case) != case["accepted"], case["id"]
    assert {Runtime(case["runtime"]) for case in CASES} == set(Runtime) - {
        Runtime.FASTAPI  # renders exactly as custom
    }
    for runtime in KSERVE_SERVING_RUNTIMES:
        modes = {
            case["environment"]["kserve_mode"]
            for case in CASES
            if case["runtime"] == runtime.value and case["accepted"]
        }
        assert modes == {mode.value for mode in KServeMode}, runtime


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case(case, tmp_path):
    if not case["accepted"]:
        with pytest.raises(ConfigError) as caught:
            render_case(case)
        refusal = case["refusal"]
        assert refusal["field"] in caught.value.errors, caught.value.errors
        assert refusal["contains"] in caught.value.errors[refusal["field"]]
        return
    rendered = render_case(case)
    for name, expected in case["expect"].items():
        assert name in rendered.files, f"{name} not rendered"
        problems = contains(yaml.safe_load(rendered.files[name]), expected)
        assert not problems, problems
    kustomize(rendered.files, tmp_path)


def kustomize(files: dict[str, str], folder: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("kubectl is required (REQUIRE_SERVICES=1) but not on PATH")
        pytest.skip("kubectl is not installed: the kustomize build was not checked")
    for name, text in files.items():
        (folder / name).write_text(text)
    assert KUSTOMIZATION_FILE in files
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kinds = sorted(doc["kind"] for doc in built)
    assert kinds == sorted(
        yaml.safe_load(text)["kind"] for name, text in files.items() if name != KUSTOMIZATION_FILE
    )
