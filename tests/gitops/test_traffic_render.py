"""The files of each rollout step, per runtime: weights, shadow, promotion, abort, and a
real ``kubectl kustomize`` build of every step's folder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from apps.gitops.errors import ManifestError, RenderError
from apps.gitops.render import KUSTOMIZATION_FILE, render
from apps.gitops.runtimes import KSERVE_SERVING_RUNTIMES, KServeMode, Runtime
from apps.gitops.traffic.plan import DEFAULT_PLANS, Strategy, TrafficStep, parse_rollout_plan
from apps.gitops.traffic.render import (
    ANNOTATION_MIRROR,
    ANNOTATION_STEP,
    ANNOTATION_WEIGHT,
    LABEL_TRACK,
    RouteParent,
    render_abort,
    render_step,
)
from apps.gitops.validate import validate_manifests
from tests.gitops.conftest import make_request

STABLE_ID = "0b7e4c1a-9d2f-4e3b-8a61-2f4d5c6b7a80"
CANDIDATE_ID = "6f1c2a57-3a44-4c1e-9f0e-1c2b3d4e5f60"
DEPLOYMENT = [Runtime.CUSTOM, Runtime.FASTAPI, Runtime.BENTOML]
KSERVE = list(KSERVE_SERVING_RUNTIMES)
CANARY = parse_rollout_plan(
    {"strategy": "canary", "steps": [{"weight": 10}, {"weight": 50}, {"weight": 90}]}
)
SHADOW = parse_rollout_plan({"strategy": "shadow", "mirror_percent": 30})
BLUE_GREEN = DEFAULT_PLANS[Strategy.BLUE_GREEN]


def releases(runtime: Runtime) -> tuple[dict[str, str], dict[str, str]]:
    stable = render(
        make_request(
            runtime, release_id=STABLE_ID, model_version=3, model_uri="s3://models/churn/3"
        )
    ).files
    candidate = render(
        make_request(
            runtime, release_id=CANDIDATE_ID, model_version=4, model_uri="s3://models/churn/4"
        )
    ).files
    return stable, candidate


def step_files(runtime: Runtime, step: TrafficStep, **extra) -> dict[str, str]:
    stable, candidate = releases(runtime)
    return render_step(
        runtime=runtime,
        kserve_mode=KServeMode.KNATIVE,
        service="churn",
        stable=stable,
        candidate=candidate,
        step=step,
        **extra,
    )


def objects(files: dict[str, str]) -> dict[str, dict]:
    return {
        name: yaml.safe_load(text) for name, text in files.items() if name != KUSTOMIZATION_FILE
    }


def by_kind(files: dict[str, str], kind: str) -> list[dict]:
    return [doc for doc in objects(files).values() if doc["kind"] == kind]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- Deployment runtimes: HTTPRoute -------------------------------------------------------
@pytest.mark.parametrize("runtime", DEPLOYMENT, ids=str)
@pytest.mark.parametrize("plan", [CANARY, BLUE_GREEN], ids=["canary", "blue-green"])
def test_httproute_weights_add_up_to_100(runtime, plan):
    for step in plan.steps()[:-1]:
        (route,) = by_kind(step_files(runtime, step), "HTTPRoute")
        (rule,) = route["spec"]["rules"]
        weights = {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}
        assert weights == {"churn-stable": 100 - step.weight, "churn-candidate": step.weight}
        assert "filters" not in rule
        assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "churn"}]


@pytest.mark.parametrize("runtime", DEPLOYMENT, ids=str)
def test_httproute_shadow_mirrors_and_never_answers_from_the_candidate(runtime):
    step = SHADOW.steps()[0]
    (route,) = by_kind(step_files(runtime, step), "HTTPRoute")
    (rule,) = route["spec"]["rules"]
    assert [(ref["name"], ref["weight"]) for ref in rule["backendRefs"]] == [("churn-stable", 100)]
    (mirror,) = rule["filters"]
    assert mirror["type"] == "RequestMirror"
    assert mirror["requestMirror"]["backendRef"]["name"] == "churn-candidate"
    assert mirror["requestMirror"]["percent"] == 30
    assert route["metadata"]["annotations"][ANNOTATION_MIRROR] == "30"


@pytest.mark.parametrize("runtime", DEPLOYMENT, ids=str)
def test_stable_pods_are_untouched_and_each_service_selects_one_release(runtime):
    stable, _ = releases(runtime)
    files = step_files(runtime, CANARY.steps()[1])
    docs = objects(files)
    old = yaml.safe_load(stable["deployment.yaml"])
    # Same name, same selector, same pod template: no stable pod restarts.
    assert docs["deployment.yaml"]["spec"] == old["spec"]
    assert docs["deployment.yaml"]["metadata"]["labels"][LABEL_TRACK] == "stable"
    new = docs["deployment-candidate.yaml"]
    assert new["metadata"]["name"] == "churn-candidate"
    assert new["spec"]["template"]["metadata"]["labels"][LABEL_TRACK] == "candidate"
    assert ANNOTATION_STEP not in new["spec"]["template"]["metadata"]["annotations"]
    stable_pods = old["spec"]["template"]["metadata"]["labels"]
    candidate_pods = new["spec"]["template"]["metadata"]["labels"]
    assert not matches(new["spec"]["selector"]["matchLabels"], stable_pods)
    stable_svc, candidate_svc = docs["service-stable.yaml"], docs["service-candidate.yaml"]
    assert matches(stable_svc["spec"]["selector"], stable_pods)
    assert not matches(stable_svc["spec"]["selector"], candidate_pods)
    assert matches(candidate_svc["spec"]["selector"], candidate_pods)
    assert not matches(candidate_svc["spec"]["selector"], stable_pods)
    # The candidate runs at its HPA's minimum during the rollout.
    hpa = yaml.safe_load(releases(runtime)[1]["hpa.yaml"])
    assert new["spec"]["replicas"] == hpa["spec"]["minReplicas"]


def test_httproute_attached_to_a_gateway():
    parent = RouteParent(kind="Gateway", name="public", namespace="ingress", section_name="https")
    (route,) = by_kind(step_files(Runtime.CUSTOM, CANARY.steps()[0], parent=parent), "HTTPRoute")
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "ingress",
            "sectionName": "https",
        }
    ]
    with pytest.raises(RenderError, match="must be a Service or a Gateway"):
        step_files(Runtime.CUSTOM, CANARY.steps()[0], parent=RouteParent(kind="Ingress"))


# --- Seldon Core 2: Experiment --------------------------------------------------------------
def test_seldon_experiment_weights_add_up_to_100_and_the_default_is_a_candidate():
    stable, _ = releases(Runtime.SELDON)
    for step in CANARY.steps()[:-1]:
        files = step_files(Runtime.SELDON, step)
        docs = objects(files)
        # Same spec (no generation bump, no reload); only metadata says which step.
        assert docs["model.yaml"]["spec"] == yaml.safe_load(stable["model.yaml"])["spec"]
        assert docs["model-candidate.yaml"]["metadata"]["name"] == "churn-candidate"
        (experiment,) = by_kind(files, "Experiment")
        spec = experiment["spec"]
        assert spec["default"] == "churn" and spec["resourceType"] == "model"
        assert spec["candidates"] == [
            {"name": "churn", "weight": 100 - step.weight},
            {"name": "churn-candidate", "weight": step.weight},
        ]
        assert "mirror" not in spec
        annotations = experiment["metadata"]["annotations"]
        assert annotations[ANNOTATION_STEP] == str(step.number)
        assert annotations[ANNOTATION_WEIGHT] == str(step.weight)


def test_seldon_shadow_mirrors_and_never_answers_from_the_candidate():
    (experiment,) = by_kind(step_files(Runtime.SELDON, SHADOW.steps()[0]), "Experiment")
    spec = experiment["spec"]
    assert spec["candidates"] == [{"name": "churn", "weight": 100}]
    assert spec["mirror"] == {"name": "churn-candidate", "percent": 30}
    names = [c["name"] for c in spec["candidates"]] + [spec["mirror"]["name"]]
    assert len(names) == len(set(names))  # the scheduler refuses a name twice


def test_seldon_blue_green_at_zero_has_no_experiment():
    files = step_files(Runtime.SELDON, BLUE_GREEN.steps()[0])
    assert sorted(files) == ["kustomization.yaml", "model-candidate.yaml", "model.yaml"]


# --- KServe (Knative): canaryTrafficPercent -------------------------------------------------
@pytest.mark.parametrize("runtime", KSERVE, ids=str)
def test_kserve_canary_sets_the_percent_and_nothing_else_changes(runtime):
    _, candidate = releases(runtime)
    own = yaml.safe_load(candidate["inferenceservice.yaml"])
    for step in [*CANARY.steps()[:-1], BLUE_GREEN.steps()[0]]:
        (isvc,) = by_kind(step_files(runtime, step), "InferenceService")
        assert isvc["spec"]["predictor"].pop("canaryTrafficPercent") == step.weight
        # KServe copies the object's annotations into the Knative revision template: any
        # change there besides the percent would start a new revision at every step.
        assert isvc == own


def test_kserve_standard_and_shadow_are_refused_at_render_too():
    stable, candidate = releases(Runtime.KSERVE_SKLEARN)
    with pytest.raises(RenderError, match="Standard mode cannot split traffic"):
        render_step(
            runtime=Runtime.KSERVE_SKLEARN,
            kserve_mode=KServeMode.STANDARD,
            service="churn",
            stable=stable,
            candidate=candidate,
            step=CANARY.steps()[0],
        )
    with pytest.raises(RenderError, match="cannot mirror"):
        step_files(Runtime.KSERVE_SKLEARN, SHADOW.steps()[0])


# --- every runtime: promotion, abort, annotations, refusals, determinism ---------------------
TRAFFIC_RUNTIMES = [Runtime.CUSTOM, Runtime.SELDON, Runtime.KSERVE_SKLEARN]


@pytest.mark.parametrize("runtime", TRAFFIC_RUNTIMES, ids=str)
def test_promotion_is_the_candidate_and_abort_is_the_stable_alone(runtime):
    stable, candidate = releases(runtime)
    assert step_files(runtime, CANARY.steps()[-1]) == candidate
    assert render_abort(stable=stable) == stable
    aborted = objects(render_abort(stable=stable))
    assert all("candidate" not in doc["metadata"]["name"] for doc in aborted.values())
    assert not [d for d in aborted.values() if d["kind"] in ("HTTPRoute", "Experiment")]


@pytest.mark.parametrize("runtime", [Runtime.CUSTOM, Runtime.SELDON], ids=str)
def test_step_annotations_on_every_object(runtime):
    step = CANARY.steps()[1]
    for name, doc in objects(step_files(runtime, step)).items():
        annotations = doc["metadata"].get("annotations", {})
        assert annotations[ANNOTATION_STEP] == "2", name
        assert annotations[ANNOTATION_WEIGHT] == "50", name


@pytest.mark.parametrize("runtime", TRAFFIC_RUNTIMES, ids=str)
def test_steps_are_deterministic_and_validate(runtime):
    for step in CANARY.steps():
        first, second = step_files(runtime, step), step_files(runtime, step)
        assert first == second
        validate_manifests(first, require_image_digest=False)
        assert "kind: Secret" not in "".join(first.values())


def test_no_stable_release_means_no_split():
    _, candidate = releases(Runtime.CUSTOM)
    with pytest.raises(RenderError, match="no stable version to share traffic with"):
        render_step(
            runtime=Runtime.CUSTOM,
            kserve_mode="knative",
            service="churn",
            stable=None,
            candidate=candidate,
            step=CANARY.steps()[0],
        )


def test_a_service_name_too_long_for_the_derived_names():
    service = "s" * 55
    stable = render(make_request(Runtime.SELDON, service=service, release_id=STABLE_ID)).files
    candidate = render(make_request(Runtime.SELDON, service=service)).files
    with pytest.raises(RenderError, match="too long to name the rollout's object"):
        render_step(
            runtime=Runtime.SELDON,
            kserve_mode="knative",
            service=service,
            stable=stable,
            candidate=candidate,
            step=CANARY.steps()[0],
        )


# --- the schemas refuse what the CRDs refuse ------------------------------------------------
def _with(files: dict[str, str], name: str, change) -> dict[str, str]:
    doc = yaml.safe_load(files[name])
    change(doc)
    return {**files, name: yaml.safe_dump(doc)}


def test_httproute_schema_refusals():
    files = step_files(Runtime.CUSTOM, SHADOW.steps()[0])

    def break_route(doc):
        rule = doc["spec"]["rules"][0]
        rule["backendRefs"][0]["weight"] = -1
        del rule["filters"][0]["requestMirror"]["backendRef"]["port"]
        rule["filters"][0]["requestMirror"]["fraction"] = {"numerator": 1}
        rule["filters"].append({"type": "URLRewrite", "requestMirror": {"backendRef": {}}})
        rule["backendRefs"][0]["bogus"] = 1
        doc["spec"]["parentRefs"][0]["port"] = 0

    with pytest.raises(ManifestError) as caught:
        validate_manifests(_with(files, "httproute.yaml", break_route), require_image_digest=False)
    text = "\n".join(caught.value.problems)
    assert "-1 is less than the minimum of 0" in text
    assert "'port' is a required property" in text
    assert "should not be valid under" in text  # percent and fraction together
    assert "rules.0.filters.1" in text  # a requestMirror body on another filter type
    assert "'bogus' was unexpected" in text
    assert "spec.parentRefs.0.port: 0 is less than the minimum of 1" in text


def test_experiment_schema_refusals():
    files = step_files(Runtime.SELDON, CANARY.steps()[0])

    def break_experiment(doc):
        del doc["spec"]["candidates"]
        doc["spec"]["mirror"] = {"name": "x"}
        doc["spec"]["split"] = 5

    with pytest.raises(ManifestError) as caught:
        validate_manifests(
            _with(files, "experiment.yaml", break_experiment), require_image_digest=False
        )
    text = "\n".join(caught.value.problems)
    assert "'candidates' is a required property" in text
    assert "'percent' is a required property" in text
    assert "'split' was unexpected" in text


# --- kubectl kustomize over every step's folder ----------------------------------------------
def kustomize(files: dict[str, str], folder: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize build was not checked")
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize(
    ("runtime", "plan"),
    [
        (Runtime.CUSTOM, CANARY),
        (Runtime.BENTOML, SHADOW),
        (Runtime.SELDON, CANARY),
        (Runtime.SELDON, SHADOW),
        (Runtime.SELDON, BLUE_GREEN),
        (Runtime.KSERVE_TRITON, CANARY),
        (Runtime.KSERVE_MLFLOW, BLUE_GREEN),
    ],
    ids=lambda value: str(value) if isinstance(value, Runtime) else value.strategy.value,
)
def test_every_step_builds_with_kubectl_kustomize(runtime, plan, tmp_path):
    stable, _ = releases(runtime)
    for step in plan.steps():
        files = step_files(runtime, step)
        built = kustomize(files, tmp_path / f"step-{step.number}")
        assert sorted(doc["kind"] for doc in built) == sorted(
            doc["kind"] for doc in objects(files).values()
        )
    kustomize(render_abort(stable=stable), tmp_path / "abort")


def test_the_repository_template_allows_the_traffic_kinds():
    template = Path(__file__).resolve().parents[2] / "gitops-repo-template"
    project = yaml.safe_load((template / "argocd" / "appproject.yaml").read_text())["spec"]
    allowed = {(k["group"], k["kind"]) for k in project["namespaceResourceWhitelist"]}
    assert ("mlops.seldon.io", "Experiment") in allowed
    assert ("gateway.networking.k8s.io", "HTTPRoute") in allowed
