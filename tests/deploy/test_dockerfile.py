"""Static checks of the Dockerfile and .dockerignore (no Docker engine runs here), plus
the parts of the build that can run without one.

- two stages; the base image pinned by tag and sha256 digest, Python 3.11, slim;
- runtime dependencies only from requirements.lock, with --require-hashes and nothing
  installed beside it; the lock has the mlflow-skinny client, not the mlflow server;
- the lock-file filter the Dockerfile applies (dropping this machine's mirror paths)
  really keeps every pin and hash;
- collectstatic at build time, and the runtime stage copies its output;
- the runtime stage runs as a numeric non-root user, sets PYTHONDONTWRITEBYTECODE, has
  a HEALTHCHECK written in Python (no curl in slim), an init process, and a gunicorn
  command whose config file exists; no ENV or ARG carries a secret;
- .dockerignore keeps secrets, the virtualenv, git and tests out of the context;
- (slow) the build's collectstatic command, run as written on a copy of the context the
  .dockerignore selects, produces the static files the pages load.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = ROOT / "requirements.lock"
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL|_KEY\b")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) with line continuations joined, comments dropped."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(
                r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], parts[0]
            )
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base=base, name=name))
        elif not stages and keyword == "ARG":
            key, _, default = rest.partition("=")
            args[key] = default
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def dockerfile():
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(dockerfile) -> Stage:
    return dockerfile[1][-1]


def test_multi_stage_with_a_pinned_slim_python_311_base(dockerfile):
    _args, stages = dockerfile
    assert len(stages) >= 2
    assert [s.name for s in stages] == ["build", "runtime"]
    for stage in stages:
        match = re.fullmatch(
            r"python:(?P<version>3\.11\.\d+)-slim(?:-\w+)?@sha256:[0-9a-f]{64}", stage.base
        )
        assert match, f"stage {stage.name}: {stage.base} is not pinned by version and digest"
    assert stages[0].base == stages[1].base, "both stages on the same base"
    assert sys.version_info[:2] == (3, 11), "the image's Python should be the tests' Python"


def test_runtime_dependencies_come_only_from_the_lock_with_hashes(dockerfile):
    _args, stages = dockerfile
    installs = [
        run for stage in stages for run in stage.all("RUN") if re.search(r"\bpip3? install", run)
    ]
    assert len(installs) == 1, installs
    (install,) = installs
    assert "--require-hashes" in install
    assert "requirements.lock" in install
    command = install.split("pip install", 1)[1].split("&&")[0]
    words = shlex.split(command)
    requirement_files = [words[i + 1] for i, w in enumerate(words) if w in ("-r", "--requirement")]
    named = [w for w in words if not w.startswith("-") and w not in requirement_files]
    assert not named, f"installed outside the lock: {named}"
    lock = LOCK.read_text()
    assert re.search(r"^mlflow-skinny==", lock, re.M)
    assert not re.search(r"^mlflow==", lock, re.M), "the runtime lock must not pull mlflow"
    assert re.search(r"^gunicorn==", lock, re.M)


def test_the_lock_filter_keeps_every_pin_and_hash(dockerfile, tmp_path):
    _args, stages = dockerfile
    (install,) = [r for r in stages[0].all("RUN") if "pip install" in r]
    sed_command = install.split(">")[0].strip()
    assert sed_command.startswith("sed ")
    done = subprocess.run(
        [*shlex.split(sed_command)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    filtered = done.stdout
    for line in filtered.splitlines():
        assert not re.match(r"--(extra-index-url|index-url|find-links)\s+(file:|/)", line), line
    pins = re.findall(r"^([A-Za-z0-9_.\-]+==\S+)", LOCK.read_text(), re.M)
    assert re.findall(r"^([A-Za-z0-9_.\-]+==\S+)", filtered, re.M) == pins
    assert filtered.count("--hash=sha256:") == LOCK.read_text().count("--hash=sha256:")


def test_collectstatic_runs_at_build_and_the_runtime_gets_its_output(dockerfile, runtime):
    _args, stages = dockerfile
    build = stages[0]
    assert any("manage.py collectstatic --noinput" in run for run in build.all("RUN"))
    copies = runtime.all("COPY")
    assert any(c.startswith("--from=build /src /app") for c in copies), copies
    assert any(c.startswith("--from=build /opt/venv") for c in copies), copies


def test_the_runtime_runs_as_a_numeric_non_root_user(runtime):
    users = runtime.all("USER")
    assert users, "no USER in the runtime stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]
    keywords = [kw for kw, _ in runtime.instructions]
    assert keywords.index("USER") < keywords.index("CMD")
    assert not any(kw == "RUN" for kw in keywords[keywords.index("USER") :]), "RUN after USER"


def test_runtime_environment_and_no_secret_in_env_or_arg(dockerfile, runtime):
    args, stages = dockerfile
    env = " ".join(runtime.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    for stage in stages:
        for keyword in ("ENV", "ARG"):
            for value in stage.all(keyword):
                for key in re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", value):
                    assert not _SECRET_NAME.search(key), f"{keyword} {key} in {stage.name}"
    for key in args:
        assert not _SECRET_NAME.search(key)


def test_healthcheck_in_python_and_the_command_files_exist(runtime):
    (healthcheck,) = runtime.all("HEALTHCHECK")
    assert "curl" not in healthcheck and "wget" not in healthcheck
    assert '"python", "/app/deploy/docker/healthcheck.py", "web", "/healthz"' in healthcheck
    assert (ROOT / "deploy" / "docker" / "healthcheck.py").is_file()
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert "tini" in entrypoint
    (cmd,) = runtime.all("CMD")
    assert cmd == '["gunicorn", "--config", "/app/deploy/gunicorn.conf.py"]'
    assert (ROOT / "deploy" / "gunicorn.conf.py").is_file()
    apt = " ".join(r for r in runtime.all("RUN") if "apt-get install" in r)
    for package in ("git", "openssh-client", "tini"):
        assert re.search(rf"\b{package}\b", apt), f"{package} is needed at run time"
    assert "rm -rf /var/lib/apt/lists/*" in apt


# --- .dockerignore ------------------------------------------------------------------------


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.removeprefix("!").strip("/")
        regex = ""
        i = 0
        while i < len(line):
            if line.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif line.startswith("**", i):
                regex += ".*"
                i += 2
            elif line[i] == "*":
                regex += "[^/]*"
                i += 1
            elif line[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(line[i])
                i += 1
        patterns.append((negate, re.compile(regex + r"(?:/.*)?\Z")))
    return patterns


def build_context(root: Path) -> list[str]:
    """The files Docker would send, by .dockerignore's rules (last match wins)."""
    patterns = _ignore_patterns()
    kept = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        excluded = False
        for negate, pattern in patterns:
            if pattern.match(relative):
                excluded = not negate
        if not excluded:
            kept.append(relative)
    return kept


@pytest.fixture(scope="module")
def context() -> list[str]:
    return build_context(ROOT)


def test_dockerignore_keeps_secrets_and_clutter_out(context):
    for path in context:
        top = path.split("/")[0]
        assert top not in {".git", ".venv", "var", "tests", ".env", "staticfiles", "control"}
        assert "__pycache__" not in path, path
        assert not path.endswith((".pem", ".key", ".sqlite3")), path
    assert ".env" not in context


def test_the_context_has_what_the_image_needs(context):
    needed = {
        "manage.py",
        "requirements.lock",
        "deploy/gunicorn.conf.py",
        "deploy/docker/healthcheck.py",
        "controlplane/settings.py",
        "controlplane/wsgi.py",
        "static/js/dashboards.js",
        "templates/base.html",
    }
    assert needed <= set(context), needed - set(context)


@pytest.mark.slow
def test_the_build_collects_the_static_files_the_pages_load(dockerfile, context, tmp_path):
    """Run the Dockerfile's collectstatic line, as written, on a copy of the context."""
    _args, stages = dockerfile
    (run,) = [r for r in stages[0].all("RUN") if "collectstatic" in r]
    command = run.split("&&")[0]
    words = shlex.split(command)
    environment = dict(w.split("=", 1) for w in words if re.match(r"[A-Z_]+=", w))
    argv = [w for w in words if not re.match(r"[A-Z_]+=", w)]
    assert argv[:2] == ["python", "manage.py"]
    source = tmp_path / "src"
    for relative in context:
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    var_dir = tmp_path / "var"
    environment["SLIPWAY_VAR_DIR"] = str(var_dir)
    environment["DATABASE_URL"] = f"sqlite:///{var_dir / 'build.sqlite3'}"
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    done = subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=source,
        env={**clean, **environment},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    collected = source / "staticfiles"
    referenced = {
        match
        for template in (ROOT / "templates").rglob("*.html")
        for match in re.findall(r"{%\s*static\s+['\"]([^'\"]+)['\"]\s*%}", template.read_text())
    }
    assert "vendor/plotly.min.js" in referenced
    missing = sorted(name for name in referenced if not (collected / name).is_file())
    assert not missing, f"templates load static files the image would not have: {missing}"
    assert (collected / "vendor/plotly.min.js.gz").is_file(), "whitenoise did not compress"
    assert (collected / "admin" / "css" / "base.css").is_file()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for name, version in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", path.read_text(), re.M):
        pins[name.lower().replace("_", "-")] = version
    return pins


def test_the_image_ships_the_versions_the_tests_ran():
    runtime, dev = _pins(LOCK), _pins(ROOT / "requirements-dev.lock")
    differ = {
        name: (version, dev[name]) for name, version in runtime.items() if dev.get(name) != version
    }
    assert not differ, f"runtime lock vs dev lock: {differ}"
