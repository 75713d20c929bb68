"""The demo cluster simulator's Argo CD: reads the local bare GitOps repository and
answers like Argo CD would for ``<service>-<environment>``.

It stands in for a cluster in ``make demo`` (CLUSTER_BACKEND=demo) and nowhere else; the
pages say so. A folder whose last commit is older than ``sync_delay`` seconds is
reported Synced and Healthy at that commit; a younger one is OutOfSync and Progressing
at the commit before, so the release page shows "syncing" for a few seconds.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from apps.gitops.argo import ApplicationStatus
from apps.gitops.errors import ClusterError, ClusterUnavailable

_GIT_TIMEOUT = 10


@dataclass
class DemoClusterReader:
    repository: Path  # the bare repository (a local path)
    branch: str = "main"
    sync_delay: float = 4.0

    @classmethod
    def from_settings(cls) -> DemoClusterReader:
        from django.conf import settings

        url = settings.GITOPS_REPO_URL
        parts = urlsplit(url)
        if parts.scheme not in ("file", ""):
            raise ClusterError("The demo cluster simulator reads a local GitOps repository only.")
        return cls(
            repository=Path(unquote(parts.path)),
            branch=settings.GITOPS_BRANCH,
            sync_delay=float(settings.DEMO_SYNC_DELAY_SECONDS),
        )

    def _git(self, *args: str) -> str:
        try:
            result = subprocess.run(  # noqa: S603 - fixed argv, no shell
                ["git", "--git-dir", str(self.repository), *args],  # noqa: S607 - git on PATH
                capture_output=True,
                text=True,
                timeout=_GIT_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterUnavailable(f"demo cluster: cannot read the repository: {exc}") from None
        if result.returncode != 0:
            raise ClusterUnavailable(f"demo cluster: git {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def _folders(self) -> list[str]:
        listing = self._git("ls-tree", "-d", "--name-only", f"{self.branch}:environments")
        folders = []
        for env in listing.split():
            for service in self._git(
                "ls-tree", "-d", "--name-only", f"{self.branch}:environments/{env}"
            ).split():
                folders.append(f"{env}/{service}")
        return folders

    def get(self, name: str) -> ApplicationStatus:
        folder = next(
            (f for f in self._folders() if f"{f.split('/')[1]}-{f.split('/')[0]}" == name), None
        )
        if folder is None:
            return ApplicationStatus.missing(name)
        path = f"environments/{folder}"
        log = self._git("log", "-2", "--format=%H %ct", self.branch, "--", path).split("\n")
        commits = [line.split() for line in log if line.strip()]
        newest_sha, newest_time = commits[0][0], int(commits[0][1])
        if time.time() - newest_time < self.sync_delay:
            previous = commits[1][0] if len(commits) > 1 else ""
            return ApplicationStatus(
                name=name,
                sync_status="OutOfSync",
                revision=previous,
                health_status="Progressing",
                operation_phase="Running",
                message="",
                exists=True,
            )
        return ApplicationStatus(
            name=name,
            sync_status="Synced",
            revision=newest_sha,
            health_status="Healthy",
            operation_phase="Succeeded",
            message="",
            exists=True,
        )

    def close(self) -> None:
        pass
