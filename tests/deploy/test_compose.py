"""Static checks of docker-compose.yml (no Docker engine runs here).

1. It validates against the Compose Specification's JSON schema (vendored in
   tests/deploy/schemas/, see the README there): a misspelt key or a wrong type fails.
2. What the schema cannot see:
   - every service is health-checked, or waits on its dependencies with a condition;
     ``service_healthy`` only on services that have a health check,
     ``service_completed_successfully`` only on one-shot services;
   - named volumes are declared; bind mounts are relative to the project (nothing from
     this machine's file system), and their sources exist;
   - third-party images are pinned to a version (no ``latest``, no bare name);
   - Slipway's containers take their settings from the env file, and no secret is
     written in the file itself (only ``${...}`` interpolation); every variable
     interpolated is documented in .env.example;
   - ports are published on 127.0.0.1 only; one beat;
   - the files the commands name exist in the repository (gunicorn config, health-check
     script, Prometheus config), and the Prometheus config passes ``promtool``.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.services import need_executable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
ENV_EXAMPLE = ROOT / ".env.example"
SLIPWAY_SERVICES = {"migrate", "web", "worker", "beat"}
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?\-+][^}]*)?\}")
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL|_KEY$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_the_vendored_schema_is_a_valid_draft7_schema():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["title"] == "Compose Specification"


def test_compose_file_matches_the_compose_specification(compose):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(map(str, e.path)))
    assert not errors, "\n".join(
        f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors
    )


def test_the_schema_check_would_catch_a_misspelt_key(compose):
    schema = json.loads(SCHEMA.read_text())
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["web"]["helthcheck"] = broken["services"]["web"].pop("healthcheck")
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_the_whole_stack_is_there(services):
    assert set(services) == {
        "postgres",
        "redis",
        "mlflow",
        "prometheus",
        *SLIPWAY_SERVICES,
    }


def _healthcheck(service: dict) -> dict | None:
    check = service.get("healthcheck")
    if not check or check.get("disable") is True or check.get("test") in (["NONE"], "NONE"):
        return None
    return check


def _conditions(service: dict) -> dict[str, str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return {name: "service_started" for name in depends}
    return {name: spec["condition"] for name, spec in depends.items()}


def test_every_service_is_health_checked_or_waits_on_conditions(services):
    for name, service in services.items():
        conditions = _conditions(service)
        assert _healthcheck(service) or (
            conditions and "service_started" not in conditions.values()
        ), f"{name}: no health check and no depends_on condition"
    # Every long-running service has a health check of its own.
    for name, service in services.items():
        if service.get("restart") != "no":
            assert _healthcheck(service), f"{name} runs for good but has no health check"


def test_dependencies_wait_for_what_they_can(services):
    for name, service in services.items():
        for dependency, condition in _conditions(service).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            target = services[dependency]
            if condition == "service_healthy":
                assert _healthcheck(target), f"{name} waits for {dependency} to be healthy"
            if condition == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} is not a one-shot service"
    for name in SLIPWAY_SERVICES - {"migrate"}:
        assert _conditions(services[name]).get("migrate") == "service_completed_successfully"
    assert _conditions(services["migrate"]).get("postgres") == "service_healthy"


def _mounts(service: dict) -> list[tuple[str, str, str]]:
    """(type, source, target) of each volume entry, short or long syntax."""
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mounts.append((entry["type"], entry.get("source", ""), entry["target"]))
            continue
        source, _, rest = entry.partition(":")
        target = rest.split(":")[0]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append((kind, source, target))
    return mounts


def test_named_volumes_are_declared_and_bind_mounts_stay_in_the_project(compose, services):
    declared = set(compose.get("volumes", {}))
    used = set()
    for name, service in services.items():
        for kind, source, target in _mounts(service):
            if kind == "volume":
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
            elif kind == "bind":
                assert source.startswith("./"), f"{name}: {source} is a path of this machine"
                assert ".." not in Path(source).parts, f"{name}: {source} leaves the project"
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            assert target.startswith("/"), f"{name}: {target}"
    assert declared == used, f"declared but unused: {declared - used}"


def test_no_path_of_this_machine_appears_anywhere():
    text = COMPOSE.read_text()
    # Built from parts so that this file does not itself hold the paths it looks for.
    markers = [f"/{top}/" for top in ("work", "home", "root", "Users", "opt")] + ["C:" + "\\"]
    for marker in markers:
        assert marker not in text, marker


def _interpolate(text: str, environment: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default} and ${VAR:?message}."""

    def value(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2) or "", match.group(3) or ""
        current = environment.get(name)
        if operator in (":-", "-"):
            unset = current is None or (operator == ":-" and current == "")
            return argument if unset else current
        if operator in (":?", "?") and not current:
            raise AssertionError(f"${{{name}}} is required: {argument}")
        return current or ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}", value, text)


def test_third_party_images_are_pinned_and_slipway_is_built(services):
    for name, service in services.items():
        image = _interpolate(service["image"], {})
        repository, tag = image, ""
        if ":" in image.split("/")[-1]:
            repository, _, tag = image.rpartition(":")
        if name in SLIPWAY_SERVICES:
            assert service["build"]["context"] == "."
            assert repository == "slipway" and tag and tag != "latest", image
            continue
        assert "build" not in service
        assert "@sha256:" in image or re.fullmatch(r"v?\d+(\.\d+)+(-[a-z0-9.]+)?", tag), (
            f"{name}: {image} is not pinned to a version"
        )


def test_slipway_services_read_the_env_file_and_no_secret_is_inline(services):
    for name, service in services.items():
        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for key, value in environment.items():
            text = str(value)
            secretish = _SECRET_NAME.search(key) or re.search(r"://[^/\s:@]+:[^/\s@]+@", text)
            if secretish:
                assert _INTERPOLATION.search(text), f"{name}: {key} holds a literal secret"
        if name in SLIPWAY_SERVICES:
            assert service["env_file"] == [".env"], name


def test_every_interpolated_variable_is_documented_in_env_example():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    used = set(_INTERPOLATION.findall(COMPOSE.read_text()))
    assert used, "expected ${...} interpolation in docker-compose.yml"
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"


def test_ports_are_published_on_localhost_only(services):
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
    assert "ports" not in services["postgres"] and "ports" not in services["redis"]


def test_one_beat_only(services):
    beat = services["beat"]
    assert "scale" not in beat and "replicas" not in beat.get("deploy", {})


def test_redis_keeps_queued_tasks_across_a_restart(services):
    assert "--appendonly" in services["redis"]["command"]


def test_mlflow_server_runs_no_jobs_and_accepts_slipways_host_header(services):
    mlflow = services["mlflow"]
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    allowed = next(a for a in mlflow["command"] if a.startswith("--allowed-hosts="))
    tracking_uri = services["web"]["environment"]["MLFLOW_TRACKING_URI"]
    assert tracking_uri.removeprefix("http://") in allowed.split("=", 1)[1].split(",")


def test_files_named_by_commands_exist(services):
    for name in SLIPWAY_SERVICES:
        service = services[name]
        words = [*service.get("command", []), *(_healthcheck(service) or {}).get("test", [])]
        for word in words:
            if isinstance(word, str) and word.startswith("/app/"):
                assert (ROOT / word.removeprefix("/app/")).is_file(), f"{name}: {word}"


def test_prometheus_config_is_valid_and_scrapes_slipway():
    promtool = need_executable("promtool", "prometheus")
    config = ROOT / "deploy" / "compose" / "prometheus.yml"
    done = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(config.read_text())["scrape_configs"]}
    (targets,) = [c["targets"] for c in jobs["slipway"]["static_configs"]]
    assert targets == ["web:8000"]
    assert jobs["slipway"].get("metrics_path", "/metrics") == "/metrics"
    allowed = re.search(r"^ALLOWED_HOSTS=(.*)$", ENV_EXAMPLE.read_text(), re.M).group(1)
    assert "web" in allowed.split(","), "Prometheus sends Host: web:8000"


def test_prometheus_loads_slipways_recording_rules_from_the_repository(services):
    # The config names the rules by their path in the container; docker-compose.yml must
    # mount a file of this repository there, one promtool accepts.
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    mounts = {}
    for volume in services["prometheus"]["volumes"]:
        source, _, rest = volume.partition(":")
        mounts[rest.split(":")[0]] = source
    assert config["rule_files"], "the compose Prometheus loads no rules"
    for path in config["rule_files"]:
        assert path in mounts, f"{path} is not mounted into the prometheus container"
        source = ROOT / mounts[path]
        assert source.is_file(), mounts[path]
        promtool = need_executable("promtool", "prometheus")
        done = subprocess.run(
            [promtool, "check", "rules", str(source)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_scrapes_slipway_with_the_metrics_token(compose, services):
    # /metrics is closed without a token: the compose Prometheus must present the one the
    # Slipway containers read (METRICS_TOKEN in .env), as a file mounted from a secret.
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    (slipway,) = [job for job in config["scrape_configs"] if job["job_name"] == "slipway"]
    credentials = slipway["authorization"]["credentials_file"]
    secret = credentials.removeprefix("/run/secrets/")
    assert credentials != secret, "the token file is a compose secret under /run/secrets/"
    assert secret in services["prometheus"]["secrets"]
    assert compose["secrets"][secret] == {"environment": "METRICS_TOKEN"}
    assert re.search(r"^METRICS_TOKEN=", ENV_EXAMPLE.read_text(), re.M)
