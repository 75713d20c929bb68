"""The GitOps repository template platform teams start from."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import yaml

from apps.gitops.paths import release_folder

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template"
PLACEHOLDER = "https://git.example.com/platform/gitops.git"


def load(relative: str) -> dict:
    return yaml.safe_load((TEMPLATE / relative).read_text())


def test_environment_folders_exist():
    assert (TEMPLATE / "environments/staging/.gitkeep").is_file()
    assert (TEMPLATE / "environments/prod/.gitkeep").is_file()


def test_applicationset_generates_one_application_per_release_folder():
    appset = load("argocd/applicationset.yaml")
    assert appset["kind"] == "ApplicationSet"
    spec = appset["spec"]
    assert spec["goTemplate"] is True
    directories = spec["generators"][0]["git"]["directories"]
    assert directories == [{"path": "environments/*/*"}]
    # The folders the writer creates are exactly what the generator matches.
    assert fnmatch(str(release_folder("prod", "churn")), directories[0]["path"])
    template = spec["template"]
    assert template["metadata"]["name"] == (
        "{{ index .path.segments 2 }}-{{ index .path.segments 1 }}"
    )
    app = template["spec"]
    assert app["destination"]["namespace"] == "{{ index .path.segments 1 }}"
    assert app["source"]["path"] == "{{ .path.path }}"
    assert app["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in app["syncPolicy"]["syncOptions"]
    assert app["project"] == load("argocd/appproject.yaml")["metadata"]["name"]


def test_repository_url_is_a_placeholder_the_readme_says_to_replace():
    appset = load("argocd/applicationset.yaml")
    assert appset["spec"]["generators"][0]["git"]["repoURL"] == PLACEHOLDER
    assert appset["spec"]["template"]["spec"]["source"]["repoURL"] == PLACEHOLDER
    assert PLACEHOLDER in load("argocd/appproject.yaml")["spec"]["sourceRepos"]
    readme = (TEMPLATE / "README.md").read_text()
    assert PLACEHOLDER in readme and "Replace" in readme


def test_appproject_refuses_secrets_and_allows_the_rendered_kinds():
    project = load("argocd/appproject.yaml")["spec"]
    assert {"group": "", "kind": "Secret"} in project["namespaceResourceBlacklist"]
    allowed = {(k["group"], k["kind"]) for k in project["namespaceResourceWhitelist"]}
    for pair in [
        ("apps", "Deployment"),
        ("serving.kserve.io", "InferenceService"),
        ("mlops.seldon.io", "Model"),
        ("keda.sh", "ScaledObject"),
        ("batch", "CronJob"),
        ("policy", "PodDisruptionBudget"),
    ]:
        assert pair in allowed


def test_ci_workflow_builds_and_validates_changed_folders():
    workflow = load(".github/workflows/validate.yaml")
    steps = workflow["jobs"]["manifests"]["steps"]
    script = "\n".join(step.get("run", "") for step in steps)
    assert "kustomize build" in script and "kubeconform" in script
    assert "git diff --name-only" in script
    assert workflow["jobs"]["manifests"]["timeout-minutes"] <= 15
