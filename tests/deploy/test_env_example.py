""".env.example documents every environment variable Slipway reads, and nothing else.

"Reads" means: controlplane/settings.py (``env_str("NAME"...)`` and friends), the
settings the ops modules look up (controlplane/readiness.py and prometheus.py,
apps/core/security.py and probes.py, apps/gitops/ops.py), the metrics settings
apps/metrics/conf.py proposes, the gunicorn config, and the variables docker-compose.yml
interpolates. A variable added to settings.py
without a line here fails this test, which keeps the configuration table honest.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
# Set in docker-compose.yml to its own services; documented as comments in .env.example.
SET_BY_COMPOSE = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "MLFLOW_TRACKING_URI",
    "PROMETHEUS_URL",
}


def documented() -> dict[str, str]:
    """{name: the comment block above it}. Consecutive lines share one comment block
    (SESSION_COOKIE_SECURE and CSRF_COOKIE_SECURE, say); a blank line ends a block."""
    names: dict[str, str] = {}
    comment: list[str] = []
    after_assignment = False
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            names[match.group(1)] = " ".join(comment)
            after_assignment = True
        elif line.startswith("#"):
            if after_assignment:
                comment = []
            comment.append(line.lstrip("# "))
            after_assignment = False
        else:
            comment, after_assignment = [], False
    return names


def settings_variables() -> set[str]:
    tree = ast.parse((ROOT / "controlplane" / "settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id.startswith("env_")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value)
    return names


def deploy_module_settings() -> set[str]:
    names = set()
    for module in (
        "controlplane/readiness.py",
        "controlplane/prometheus.py",
        "apps/core/security.py",
        "apps/core/probes.py",
        "apps/gitops/ops.py",
    ):
        text = (ROOT / module).read_text()
        names |= set(re.findall(r'getattr\(settings, "([A-Z][A-Z0-9_]*)"', text))
    # OIDC_ENABLED is derived in settings.py (OIDC_RP_CLIENT_ID set), not read from the env.
    return names - {
        "CELERY_BROKER_TRANSPORT_OPTIONS",
        "CELERY_BROKER_USE_SSL",
        "CSP_POLICY",
        "OIDC_ENABLED",
    }


def gunicorn_variables() -> set[str]:
    text = (ROOT / "deploy" / "gunicorn.conf.py").read_text()
    return set(re.findall(r'os\.environ\.get\("([A-Z][A-Z0-9_]*)"', text)) - {
        "PORT",
        "GUNICORN_GRACEFUL_TIMEOUT",
        "GUNICORN_MAX_REQUESTS",
        "GUNICORN_MAX_REQUESTS_JITTER",
        "GUNICORN_WORKER_TMP_DIR",
        "GUNICORN_LOG_LEVEL",
        "FORWARDED_ALLOW_IPS",
    }


def compose_variables() -> set[str]:
    text = (ROOT / "docker-compose.yml").read_text()
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def test_every_variable_settings_read_is_documented():
    missing = settings_variables() - set(documented())
    assert not missing, f"add to .env.example (with a comment): {sorted(missing)}"


def test_every_other_variable_slipway_reads_is_documented():
    wanted = deploy_module_settings() | gunicorn_variables()
    wanted |= compose_variables()
    missing = wanted - set(documented())
    assert not missing, sorted(missing)


def test_nothing_stale_is_documented():
    known = (
        settings_variables()
        | deploy_module_settings()
        | gunicorn_variables()
        | compose_variables()
        | {"GUNICORN_ACCESS_LOG"}
    )
    stale = set(documented()) - known
    assert not stale, f"documented but read by nothing: {sorted(stale)}"


def test_every_variable_has_a_comment_and_compose_owned_ones_are_commented_out():
    text = ENV_EXAMPLE.read_text()
    for name, comment in documented().items():
        assert comment, f"{name} has no explanation above it"
    for name in SET_BY_COMPOSE:
        assert re.search(rf"^# {name}=", text, re.M), f"{name} is set by docker-compose.yml"


def test_secrets_are_empty_in_the_example():
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match and re.search(r"SECRET|PASSWORD|TOKEN|_KEY$", match.group(1)):
            assert match.group(2) == "", f"{match.group(1)} must not have an example value"
