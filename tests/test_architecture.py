"""Imports run one way (docs/architecture.md, "The import rule").

Every module under apps/ and controlplane/ is parsed (ast, nothing is imported), and every
``import`` statement counts: module level, inside functions (lazy imports), and under
``if TYPE_CHECKING``. String references (INSTALLED_APPS, ``include("apps.x.urls")``,
``send_task("name")``) do not.

The layers, bottom to top::

    core < audit < accounts < {registry, gitops, notifications} < releases < metrics < dashboards

A module may import its own app and any app below it, never one above or beside it.
ARCHITECTURE.md draws ``{gitops, registry, accounts, audit}`` as one group; inside it the
order is what the design asks of each app: every action writes its own audit row (so
accounts and registry import audit, and audit imports no domain app), and permission
helpers live in accounts (so registry's views import accounts). gitops holds pure
adapters and imports core only. ``demo`` is the top-level runner and may import anything.
Nothing imports ``dashboards`` or ``demo``. ``controlplane`` only wires: outside
settings.py, urls.py and celery.py it imports ``apps.core`` only (the ops endpoints read
the registry in apps/core/ops.py that each app fills from its ``AppConfig.ready()``).

No two modules of one app import each other in a circle (services <-> tasks is the usual
one: services enqueue through the app's ``queue.py`` instead).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS = {
    "core": 0,
    "audit": 1,
    "accounts": 2,
    "registry": 3,
    "gitops": 3,
    "notifications": 3,
    "releases": 4,
    "metrics": 5,
    "dashboards": 6,
    "evidence": 6,
}
TOP_LEVEL_RUNNERS = {"demo"}  # may import every app; nothing imports them
NEVER_IMPORTED = {"dashboards", "evidence", "demo"}
# gitops is the adapter layer: plain dataclasses in and out, no domain app.
ONLY_CORE = {"core": set(), "gitops": {"core"}}
CONTROLPLANE_WIRING = {"settings.py", "urls.py", "celery.py"}

# Known circles to be broken, as sets of files; none today. An entry that is no longer a
# circle fails the test, so the list cannot go stale.
TEMPORARY_CYCLE_ALLOWANCES: list[set[str]] = []


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    path: str  # importing file, relative to the root
    line: int
    target: str  # the module imported, dotted (a submodule when `from pkg import submodule`)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def python_files(root: Path) -> list[Path]:
    files = []
    for top in ("apps", "controlplane"):
        files += [p for p in (root / top).rglob("*.py") if "migrations" not in p.parts]
    return sorted(files)


def collect_imports(root: Path) -> tuple[set[str], list[Import]]:
    """Every module under apps/ and controlplane/, and every import statement in them."""
    files = python_files(root)
    modules = {module_name(root, path) for path in files}
    found: list[Import] = []
    for path in files:
        source = module_name(root, path)
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        relative = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, package)
                # `from pkg import name`: the submodule when there is one, else pkg itself.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            found += [Import(source, relative, node.lineno, t) for t in dict.fromkeys(targets)]
    return modules, found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def _app(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "apps" and len(parts) > 1 else None


def layer_violations(imports: list[Import]) -> list[str]:
    """One readable line per import that breaks the direction rule."""
    problems = []
    for imp in imports:
        target_app = _app(imp.target)
        if target_app is None:
            continue
        where = f"{imp.path}:{imp.line}: imports {imp.target}"
        if imp.source.split(".")[0] == "controlplane":
            if Path(imp.path).name not in CONTROLPLANE_WIRING and target_app != "core":
                problems.append(
                    f"{where}: controlplane only wires; outside "
                    f"{', '.join(sorted(CONTROLPLANE_WIRING))} it imports apps.core only "
                    "(register checks and collectors in apps/<app>/ops.py instead)"
                )
            continue
        source_app = _app(imp.source)
        if source_app is None or source_app == target_app:
            continue
        if source_app in TOP_LEVEL_RUNNERS:
            continue
        if target_app in NEVER_IMPORTED:
            problems.append(f"{where}: nothing imports apps.{target_app}")
        elif source_app in ONLY_CORE and target_app not in ONLY_CORE[source_app]:
            allowed = ", ".join(sorted(ONLY_CORE[source_app])) or "no other app"
            problems.append(f"{where}: {source_app} may import {allowed}")
        elif target_app not in LAYERS or source_app not in LAYERS:
            problems.append(f"{where}: apps.{source_app} or apps.{target_app} has no layer")
        elif LAYERS[target_app] >= LAYERS[source_app]:
            below = sorted(app for app, n in LAYERS.items() if n < LAYERS[source_app])
            problems.append(
                f"{where}: {source_app} may import only the layers below it ({', '.join(below)})"
            )
    return problems


def module_cycles(modules: set[str], imports: list[Import]) -> list[list[str]]:
    """Circles of imports between modules of one app (Tarjan's strongly connected
    components over the module graph), lazy imports included."""
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for imp in imports:
        same_app = _app(imp.source) is not None and _app(imp.source) == _app(imp.target)
        if same_app and imp.target in modules and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def describe_cycle(cycle: list[str], imports: list[Import]) -> str:
    members = set(cycle)
    lines = [
        f"  {imp.path}:{imp.line} imports {imp.target}"
        for imp in imports
        if imp.source in members and imp.target in members and imp.source != imp.target
    ]
    return "import circle between " + ", ".join(cycle) + ":\n" + "\n".join(sorted(set(lines)))


def _files(cycle: list[str], root: Path) -> set[str]:
    paths = set()
    for module in cycle:
        base = root.joinpath(*module.split("."))
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        paths.add(path.relative_to(root).as_posix())
    return paths


# --- the tree as it is ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree():
    return collect_imports(ROOT)


def test_imports_run_one_way(tree):
    _modules, imports = tree
    problems = layer_violations(imports)
    assert not problems, "import rule broken (see tests/test_architecture.py):\n" + "\n".join(
        problems
    )


def test_no_import_circle_inside_an_app(tree):
    modules, imports = tree
    cycles = module_cycles(modules, imports)
    allowed = [c for c in cycles if _files(c, ROOT) in TEMPORARY_CYCLE_ALLOWANCES]
    unexpected = [c for c in cycles if c not in allowed]
    assert not unexpected, "\n".join(describe_cycle(c, imports) for c in unexpected)
    stale = [
        files
        for files in TEMPORARY_CYCLE_ALLOWANCES
        if not any(_files(c, ROOT) == files for c in cycles)
    ]
    assert not stale, f"no longer a circle, delete its TEMPORARY_CYCLE_ALLOWANCES entry: {stale}"


def test_the_scan_sees_the_whole_tree(tree):
    """Guards the checker itself: it found the modules and the lazy imports it claims to."""
    modules, imports = tree
    assert {"apps.core.ops", "apps.releases.models", "controlplane.urls"} <= modules
    lazy = [i for i in imports if i.path == "apps/metrics/apps.py" and i.target.endswith("panels")]
    assert lazy, "the import inside MetricsConfig.ready() was not seen"


# --- the checker on planted trees: each rule can fail, and says where ------------------------


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"apps/__init__.py": "", "controlplane/__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"apps/core/locks.py": "import os\nfrom apps.releases import models\n"},
            "apps/core/locks.py:2: imports apps.releases: core may import no other app",
        ),
        (
            {"apps/gitops/argo.py": "def f():\n    from apps.releases.models import Release\n"},
            "apps/gitops/argo.py:2: imports apps.releases.models: gitops may import core",
        ),
        (
            {"apps/releases/views.py": "import apps.metrics.selectors\n"},
            "apps/releases/views.py:1: imports apps.metrics.selectors: releases may import only",
        ),
        (
            {"apps/registry/views.py": "from apps.gitops.paths import x\n"},
            "apps/registry/views.py:1: imports apps.gitops.paths: registry may import only",
        ),
        (
            {"apps/audit/services.py": "from apps.accounts.roles import x\n"},
            "apps/audit/services.py:1: imports apps.accounts.roles: audit may import only",
        ),
        (
            {"apps/metrics/panels.py": "from apps.dashboards import charts\n"},
            "apps/metrics/panels.py:1: imports apps.dashboards: nothing imports apps.dashboards",
        ),
        (
            {"apps/releases/x.py": "from apps.demo.people import PEOPLE\n"},
            "nothing imports apps.demo",
        ),
        (
            {"controlplane/readiness.py": "from apps.gitops.git_writer import GitWriter\n"},
            "controlplane/readiness.py:1: imports apps.gitops.git_writer: controlplane only wires",
        ),
    ],
)
def test_each_rule_names_file_line_and_rule(tmp_path, files, expected):
    _modules, imports = collect_imports(_plant(tmp_path, files))
    problems = layer_violations(imports)
    assert len(problems) == 1 and expected in problems[0], problems


def test_allowed_imports_pass_on_a_planted_tree(tmp_path):
    files = {
        "apps/demo/__main__.py": "from apps.dashboards import views\nimport apps.metrics\n",
        "apps/metrics/guard.py": "from apps.releases.services import release_rollback\n",
        "apps/registry/views.py": "from apps.accounts.roles import x\nfrom apps.audit import s\n",
        "controlplane/urls.py": "from apps.releases import views\n",
        "controlplane/prometheus.py": "from apps.core.ops import metrics_collectors\n",
        "apps/releases/services/__init__.py": "from .create import release_create\n",
        "apps/releases/services/create.py": "from ._transitions import _move\n",
        "apps/releases/services/_transitions.py": "from apps.core.errors import Conflict\n",
    }
    modules, imports = collect_imports(_plant(tmp_path, files))
    assert layer_violations(imports) == []
    # A package re-exporting its modules is not a circle with them.
    assert module_cycles(modules, imports) == []
    assert (
        Import(
            "apps.releases.services.create",
            "apps/releases/services/create.py",
            1,
            "apps.releases.services._transitions",
        )
        in imports
    )


def test_a_lazy_circle_inside_an_app_is_found_and_named(tmp_path):
    files = {
        "apps/registry/__init__.py": "",
        "apps/registry/services/__init__.py": "from apps.registry.services.aliases import a\n",
        "apps/registry/services/aliases.py": (
            "def a():\n    from apps.registry.tasks import registry_set_alias\n"
        ),
        "apps/registry/tasks.py": "from apps.registry import services\n",
    }
    modules, imports = collect_imports(_plant(tmp_path, files))
    cycles = module_cycles(modules, imports)
    assert len(cycles) == 1
    message = describe_cycle(cycles[0], imports)
    assert "apps/registry/services/aliases.py:2 imports apps.registry.tasks" in message
    assert "apps/registry/tasks.py:1 imports apps.registry.services" in message
