"""The README works as written: every shell command in its code blocks runs, on a demo
state seeded the way `make demo` seeds it, and ends with exit 0 and no traceback.

Skipped: `make demo` and `make test` (tests/browser/test_demo_story.py and CI run them),
and blocks marked `<!-- readme-test: skip (why) -->` on the line above their fence. The
README's `.venv/bin/python` is the interpreter running this test (the clone's `.venv` is
the one `make demo` would build from the same lock).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\b.*-->")
TESTED_ELSEWHERE = ("make demo", "make test")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    skipped: bool
    commands: tuple[str, ...]


def _commands(lines: list[str]) -> tuple[str, ...]:
    """Shell commands of a block: comment lines and trailing `  # ...` comments dropped,
    backslash continuations joined."""
    commands, pending = [], ""
    for raw in lines:
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        line = re.split(r"\s{2,}#\s", line, maxsplit=1)[0].rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(pending + line)
        pending = ""
    return tuple(commands)


def readme_blocks(text: str) -> list[Block]:
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, language = i, match.group(2)
        body = []
        i += 1
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i])
            i += 1
        previous = next((x for x in reversed(lines[:start]) if x.strip()), "")
        blocks.append(
            Block(
                line=start + 1,
                language=language,
                skipped=bool(SKIP_MARK.search(previous)),
                commands=_commands(body),
            )
        )
        i += 1
    return blocks


def runnable_commands() -> list[tuple[int, str]]:
    found = []
    for block in readme_blocks(README.read_text(encoding="utf-8")):
        if block.language not in ("sh", "bash", "shell") or block.skipped:
            continue
        found.extend(
            (block.line, command)
            for command in block.commands
            if not command.startswith(TESTED_ELSEWHERE)
        )
    return found


def test_the_parser_reads_blocks_marks_and_continuations():
    text = (
        "intro\n```sh\nmake demo   # run it\n# a comment\n"
        "echo a \\\n  b  # tail\n```\n<!-- readme-test: skip (needs a cluster) -->\n"
        "   ```sh\n   kubectl apply -f x\n   ```\n```yaml\nkey: value\n```\n"
    )
    blocks = readme_blocks(text)
    assert [(b.language, b.skipped) for b in blocks] == [
        ("sh", False),
        ("sh", True),
        ("yaml", False),
    ]
    assert blocks[0].commands == ("make demo", "echo a  b")
    assert blocks[1].commands == ("kubectl apply -f x",)


def test_the_readme_has_commands_to_run():
    commands = [command for _, command in runnable_commands()]
    assert any("audit_verify" in c for c in commands), commands
    assert any("create_api_token ci-bot" in c for c in commands), commands


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory):
    """A demo state folder seeded exactly as `make demo` seeds it (migrate,
    collectstatic, demo_seed), without starting the servers."""
    state = tmp_path_factory.mktemp("readme-demo")
    env = _clean_env(state)
    result = subprocess.run(
        [sys.executable, "-m", "apps.demo", "prepare"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return state


def _clean_env(state: Path) -> dict[str, str]:
    # What a person has in a fresh shell: none of the test suite's own settings.
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "DJANGO_SETTINGS_MODULE",
            "SECRET_KEY",
            "SECRET_KEY_FILE",
            "SLIPWAY_VAR_DIR",
            "DEBUG",
        )
    }
    env["SLIPWAY_DEMO_DIR"] = str(state)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


@pytest.mark.parametrize(("line", "command"), runnable_commands())
def test_readme_command_runs_on_the_demo_state(demo_state, line, command):
    words = shlex.split(command)
    if words[0] == ".venv/bin/python":
        words[0] = sys.executable
    result = subprocess.run(
        words,
        cwd=ROOT,
        env=_clean_env(demo_state),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"README line {line}: {command}\n{output[-3000:]}"
    assert "Traceback" not in output, f"README line {line}: {command}\n{output[-3000:]}"


def test_plain_manage_py_without_configuration_still_fails_loudly(tmp_path):
    """The demo wrapper must not have made production lenient: no SECRET_KEY and no
    DEBUG is a refusal to start, naming the variable."""
    env = _clean_env(tmp_path)
    env.pop("SLIPWAY_DEMO_DIR")
    env["SLIPWAY_VAR_DIR"] = str(tmp_path / "var")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr
