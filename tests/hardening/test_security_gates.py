"""Security gates that run with `make test`:

- bandit over apps/ and controlplane/ (configuration in pyproject's [tool.bandit]): no
  finding of medium or high severity;
- pip-audit over requirements.lock, when an advisory database answers (skipped with the
  reason otherwise: a closed network is not a vulnerability);
- no secret of the control plane ever reaches the GitOps repository: planted in the
  approved manifests (by someone who can write to the database and fixes up the
  digest), in a release's reason (which goes into the metadata file and the commit
  message), in clear, base64 at any alignment, or URL-safe base64: the push is refused.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys

import pytest
import requests

from apps.gitops.render import manifests_digest
from apps.releases import services
from apps.releases.deploy import deploy_pending
from apps.releases.models import Release, ReleaseState
from tests import factories
from tests.hardening.support import ROOT

# Findings in files this work may not change, reported to their owner; each entry names
# file and test id exactly so nothing else can hide behind it. Remove when fixed.
# (path, test id) pairs accepted with a reason; empty: every finding is fixed or marked
# with a `# nosec <id>` and a comment saying why at the line itself.
BANDIT_KNOWN: set[tuple[str, str]] = set()


def test_bandit_finds_nothing_of_medium_or_high_severity():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit",
            "-r",
            "apps",
            "controlplane",
            "-c",
            "pyproject.toml",
            "-f",
            "json",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    assert not report["errors"], report["errors"]
    lines = report["metrics"]["_totals"]["loc"]
    print(f"\nbandit: {lines:,} lines of apps/ and controlplane/ scanned")
    assert lines > 5000  # it really scanned the code
    serious = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"
        for r in report["results"]
        if r["issue_severity"] in ("MEDIUM", "HIGH")
        and (r["filename"].removeprefix("./"), r["test_id"]) not in BANDIT_KNOWN
    ]
    assert not serious, "\n".join(serious)


# --- pip-audit ----------------------------------------------------------------------------
def _advisory_service() -> tuple[str | None, str]:
    """Which vulnerability service answers here, checked with short timeouts: PyPI's JSON
    API (with its ``vulnerabilities`` field) or OSV. (None, why) when neither does: a
    mirror that answers 404 for every package would make pip-audit report "no known
    vulnerabilities" having audited nothing."""
    reasons = []
    try:
        response = requests.get("https://pypi.org/pypi/pip/json", timeout=5)
        if response.status_code == 200 and "vulnerabilities" in response.json():
            return "pypi", ""
        reasons.append(f"PyPI's JSON API answered {response.status_code}")
    except (requests.RequestException, ValueError) as exc:
        reasons.append(f"PyPI's JSON API: {type(exc).__name__}")
    try:
        response = requests.post(
            "https://api.osv.dev/v1/query",
            json={"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "23.0"},
            timeout=5,
        )
        if response.status_code == 200:
            return "osv", ""
        reasons.append(f"OSV answered {response.status_code}")
    except requests.RequestException as exc:
        reasons.append(f"OSV: {type(exc).__name__}")
    return None, "; ".join(reasons)


def test_pip_audit_finds_no_known_vulnerability_in_the_lock_file(tmp_path):
    service, why = _advisory_service()
    if service is None:
        pytest.skip(f"no vulnerability advisory database is reachable ({why})")
    out = tmp_path / "audit.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "-r",
            "requirements.lock",
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--vulnerability-service",
            service,
            "-f",
            "json",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.exists(), result.stderr[-2000:]
    dependencies = json.loads(out.read_text())["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        pytest.skip(f"the advisory database ({service}) knew none of the {len(dependencies)} pins")
    vulnerable = [
        f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}"
        for d in audited
        if d.get("vulns")
    ]
    assert not vulnerable, "\n".join(vulnerable)


# --- secrets never reach the GitOps repository ------------------------------------------
SECRET_SETTINGS = ["SECRET_KEY", "AUDIT_CHAIN_KEY", "GITOPS_HTTPS_TOKEN", "ARGOCD_TOKEN"]


def _forms(secret: str) -> dict[str, str]:
    """Ways a secret could be smuggled: clear, base64 at the three alignments it can have
    inside a longer blob (HTTP Basic credentials are "user:token"), URL-safe base64."""
    b64 = base64.b64encode
    return {
        "clear": secret,
        "base64": b64(secret.encode()).decode(),
        "basic-auth": b64(f"git:{secret}".encode()).decode(),  # token at offset 4
        "base64-offset-2": b64(f"ab{secret}".encode()).decode(),
        "urlsafe-base64": base64.urlsafe_b64encode(f"x{secret}".encode()).decode(),
    }


@pytest.fixture
def secret_settings(settings):
    """Every control-plane secret set to a fresh random value that contains the
    characters URL-safe base64 differs on."""
    values = {}
    for name in SECRET_SETTINGS:
        value = secrets.token_urlsafe(30) + "~?>"
        setattr(settings, name, value)
        values[name] = value
    return values


@pytest.fixture
def approved(people, environments, service, model_versions):
    staging, _ = environments
    alice = people["alice"]
    return factories.approved_release(service, staging, 1, requester=alice)


def _assert_nothing_reached_the_repository(gitops_remote, before: int, needles: list[str]):
    assert gitops_remote.commit_count() == before
    everything = gitops_remote.git("log", "-p", "--all", "--format=%B").stdout.decode()
    for needle in needles:
        assert needle not in everything


@pytest.mark.parametrize("setting", SECRET_SETTINGS)
@pytest.mark.parametrize("form", list(_forms("x")))
def test_a_secret_planted_in_the_manifests_blocks_the_push(
    setting, form, secret_settings, approved, gitops_remote, make_git_writer
):
    planted = _forms(secret_settings[setting])[form]
    files = dict(approved.rendered_files)
    files["deployment.yaml"] += f"# {planted}\n"
    Release.objects.filter(pk=approved.pk).update(
        rendered_files=files, digest=manifests_digest(files)
    )
    before = gitops_remote.commit_count()
    deploy_pending(writer=make_git_writer(gitops_remote.url))
    approved.refresh_from_db()
    assert approved.state == ReleaseState.FAILED, (setting, form)
    assert planted not in approved.status_message
    assert secret_settings[setting] not in approved.status_message
    _assert_nothing_reached_the_repository(
        gitops_remote, before, [planted, secret_settings[setting]]
    )


@pytest.mark.parametrize("form", ["clear", "base64", "basic-auth"])
def test_a_secret_in_the_reason_never_reaches_the_commit_or_metadata(
    form, secret_settings, approved, gitops_remote, make_git_writer
):
    """The reason goes into the metadata file and the commit message body."""
    planted = _forms(secret_settings["GITOPS_HTTPS_TOKEN"])[form]
    Release.objects.filter(pk=approved.pk).update(reason=f"token for the demo: {planted}")
    before = gitops_remote.commit_count()
    deploy_pending(writer=make_git_writer(gitops_remote.url))
    approved.refresh_from_db()
    assert approved.state == ReleaseState.FAILED
    assert planted not in approved.status_message
    _assert_nothing_reached_the_repository(
        gitops_remote, before, [planted, secret_settings["GITOPS_HTTPS_TOKEN"]]
    )


def test_a_secret_in_a_reason_is_refused_when_the_release_is_created(
    secret_settings, people, environments, service, model_versions
):
    from apps.core.errors import DomainError

    staging, _ = environments
    with pytest.raises(DomainError) as refused:
        services.release_create(
            actor=people["alice"],
            service=service,
            environment=staging,
            model_version=model_versions[0],
            reason=f"uses {secret_settings['GITOPS_HTTPS_TOKEN']}",
        )
    assert secret_settings["GITOPS_HTTPS_TOKEN"] not in refused.value.message
    assert not Release.objects.exists()


def test_the_scanner_finds_a_secret_wrapped_over_lines_and_never_echoes_it():
    from apps.gitops.validate import secret_findings

    secret = secrets.token_urlsafe(48)
    blob = base64.b64encode(f"user:{secret}".encode()).decode()
    wrapped = "\n".join(blob[i : i + 20] for i in range(0, len(blob), 20))
    found = secret_findings(f"see below\n{wrapped}\n", {secret})
    assert found == ["one of the control plane's own secrets"]
    assert secret_findings("an ordinary reason: p95 doubled after v2", {secret}) == []
