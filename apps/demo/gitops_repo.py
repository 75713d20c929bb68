"""The demo's local bare GitOps repository, made from gitops-repo-template/."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

TEMPLATE = Path(settings.BASE_DIR) / "gitops-repo-template"


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


def ensure_bare_repository(path: Path, branch: str = "main") -> bool:
    """Create ``path`` as a bare repository whose first commit is the template.
    Returns False when it already exists (the demo keeps its history between runs)."""
    if (path / "HEAD").exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    _git("init", "-q", "--bare", "-b", branch, str(path), cwd=path.parent)
    with tempfile.TemporaryDirectory(prefix="slipway-demo-seed-") as scratch:
        work = Path(scratch) / "work"
        shutil.copytree(TEMPLATE, work)
        _git("init", "-q", "-b", branch, cwd=work)
        _git("add", "-A", cwd=work)
        _git(
            "-c",
            "user.name=Slipway demo",
            "-c",
            "user.email=demo@slipway.local",
            "commit",
            "-qm",
            "Start the GitOps repository from Slipway's template",
            cwd=work,
        )
        _git("push", "-q", path.resolve().as_uri(), f"HEAD:{branch}", cwd=work)
    return True
