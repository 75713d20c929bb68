"""The GitOps repository template platform teams start from."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from apps.gitops.conventions import METADATA_FILE
from apps.gitops.errors import UnsafePathError
from apps.gitops.paths import release_folder
from apps.gitops.projects import TeamProject, project_name, team_projects_yaml
from apps.gitops.render import release_metadata_file

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
    files = spec["generators"][0]["git"]["files"]
    assert files == [{"path": f"environments/*/*/{METADATA_FILE}"}]
    # The metadata file the writer puts in every release folder is what the generator
    # matches: one Application per folder, as before teams.
    assert fnmatch(str(release_folder("prod", "churn") / METADATA_FILE), files[0]["path"])
    template = spec["template"]
    assert template["metadata"]["name"] == (
        "{{ index .path.segments 2 }}-{{ index .path.segments 1 }}"
    )
    app = template["spec"]
    assert app["destination"]["namespace"] == "{{ index .path.segments 1 }}"
    assert app["source"]["path"] == "{{ .path.path }}"
    assert app["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in app["syncPolicy"]["syncOptions"]
    # The team's project from the metadata file's "team"; the base project without one.
    base = load("argocd/appproject.yaml")["metadata"]["name"]
    assert app["project"] == (
        '{{ if index . "team" }}' + base + '-{{ index . "team" }}{{ else }}' + base + "{{ end }}"
    )
    assert project_name("risk-ml") == f"{base}-risk-ml"


def test_release_metadata_names_the_team_the_applicationset_reads():
    _, text = release_metadata_file(
        release_id="r",
        kind="deploy",
        model_name="churn",
        model_version=1,
        requested_by="alice",
        approvers=[],
        team="risk-ml",
    )
    assert yaml.safe_load(text)["team"] == "risk-ml"


def test_one_appproject_per_team_limits_source_and_namespaces():
    base = load("argocd/appproject.yaml")
    text = team_projects_yaml(
        base,
        teams=[TeamProject("risk-ml", "Risk ML"), TeamProject("growth-ml")],
        repo_url="https://git.example.com/acme/gitops.git",
        namespaces=["staging", "prod", "staging"],
    )
    projects = list(yaml.safe_load_all(text))
    assert [p["metadata"]["name"] for p in projects] == ["slipway-growth-ml", "slipway-risk-ml"]
    for project in projects:
        assert project["apiVersion"] == "argoproj.io/v1alpha1"
        assert project["kind"] == "AppProject"
        assert project["metadata"]["namespace"] == "argocd"
        spec = project["spec"]
        assert spec["sourceRepos"] == ["https://git.example.com/acme/gitops.git"]
        assert spec["destinations"] == [
            {"server": "https://kubernetes.default.svc", "namespace": "prod"},
            {"server": "https://kubernetes.default.svc", "namespace": "staging"},
        ]
        # The base's guard rails are kept: the rendered kinds only, never a Secret.
        assert spec["namespaceResourceWhitelist"] == base["spec"]["namespaceResourceWhitelist"]
        assert {"group": "", "kind": "Secret"} in spec["namespaceResourceBlacklist"]
        assert "roles" not in spec
    assert "Risk ML" in projects[1]["spec"]["description"]
    # The base itself is left as it was (deep copies).
    assert base == load("argocd/appproject.yaml")


def test_team_projects_refuse_a_team_name_argo_cd_cannot_take():
    base = load("argocd/appproject.yaml")
    with pytest.raises(UnsafePathError, match="not valid"):
        team_projects_yaml(
            base, teams=[TeamProject("Risk_ML")], repo_url=PLACEHOLDER, namespaces=["prod"]
        )
    with pytest.raises(ValueError, match="repository URL"):
        team_projects_yaml(base, teams=[TeamProject("risk")], repo_url="", namespaces=["prod"])


@pytest.mark.django_db
def test_the_command_generates_the_projects_of_the_teams_and_environments(tmp_path):
    from tests import factories

    factories.make_environments()
    factories.make_team("risk-ml", "Risk ML")
    factories.make_team("growth-ml")
    out = tmp_path / "projects.yaml"
    call_command("gitops_team_projects", output=out)
    projects = list(yaml.safe_load_all(out.read_text()))
    assert [p["metadata"]["name"] for p in projects] == ["slipway-growth-ml", "slipway-risk-ml"]
    assert projects[0]["spec"]["sourceRepos"] == [PLACEHOLDER]
    assert {d["namespace"] for d in projects[0]["spec"]["destinations"]} == {"staging", "prod"}


@pytest.mark.django_db
def test_the_command_says_when_there_is_no_team_yet():
    with pytest.raises(CommandError, match="no teams yet"):
        call_command("gitops_team_projects")


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
