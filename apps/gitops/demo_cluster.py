"""The demo cluster simulator's Argo CD: reads the local bare GitOps repository and
answers like Argo CD would for ``<service>-<environment>``.

It stands in for a cluster in ``make demo`` (CLUSTER_BACKEND=demo) and nowhere else; the
pages say so. A folder whose last commit is older than ``sync_delay`` seconds is
reported Synced and Healthy at that commit; a younger one is OutOfSync and Progressing
at the commit before, so the release page shows "syncing" for a few seconds.

A model version's MLflow tag ``demo.fail`` plays a failure, once the sync delay is over
(``fault`` maps the release id in the folder's ``slipway-release.json`` to the tag):

- ``demo.fail=sync``: the sync operation for the commit Fails with an admission webhook's
  message, as Argo CD reports it; the release fails at once and the live one is restored;
- ``demo.fail=load``: Synced, but the model server cannot load the model: Degraded with
  the reason (and the serving object / first batch Job says so too); the release fails
  after the Degraded grace period.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from apps.gitops.argo import ApplicationStatus
from apps.gitops.conventions import METADATA_FILE
from apps.gitops.errors import ClusterError, ClusterUnavailable
from apps.gitops.workloads import JobRun, WorkloadStatus

_GIT_TIMEOUT = 10
TAG_FAIL = "demo.fail"
FAIL_SYNC, FAIL_LOAD = "sync", "load"
SYNC_FAILURE = (
    "one or more objects failed to apply, reason: admission webhook "
    '"validation.platform.example.com" denied the request: image is not signed '
    "(simulated: demo.fail=sync)"
)
LOAD_FAILURE = (
    "model failed to load: ModelLoadFailed: cannot unpickle model.joblib: "
    "No module named 'sklearn.ensemble._gb_losses' (simulated: demo.fail=load)"
)


@dataclass
class DemoClusterReader:
    repository: Path  # the bare repository (a local path)
    branch: str = "main"
    sync_delay: float = 4.0
    # release id -> the ``demo.fail`` tag of its model version ("" for none)
    fault: Callable[[str], str] | None = None
    workloads: DemoWorkloads = field(init=False)

    def __post_init__(self) -> None:
        self.workloads = DemoWorkloads(self)

    @classmethod
    def from_settings(cls, *, fault: Callable[[str], str] | None = None) -> DemoClusterReader:
        from django.conf import settings

        url = settings.GITOPS_REPO_URL
        parts = urlsplit(url)
        if parts.scheme not in ("file", ""):
            raise ClusterError("The demo cluster simulator reads a local GitOps repository only.")
        return cls(
            repository=Path(unquote(parts.path)),
            branch=settings.GITOPS_BRANCH,
            sync_delay=float(settings.DEMO_SYNC_DELAY_SECONDS),
            fault=fault,
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

    def _fault_at(self, sha: str, path: str) -> str:
        """The ``demo.fail`` tag of the release committed in ``sha``, "" when none."""
        if self.fault is None:
            return ""
        try:
            meta = json.loads(self._git("show", f"{sha}:{path}/{METADATA_FILE}"))
        except (ClusterUnavailable, ValueError):
            return ""
        release_id = meta.get("release_id") if isinstance(meta, dict) else None
        return self.fault(str(release_id)) if release_id else ""

    def _newest(self, path: str) -> list[list[str]]:
        log = self._git("log", "-2", "--format=%H %ct", self.branch, "--", path).split("\n")
        return [line.split() for line in log if line.strip()]

    def folder_fault(self, env: str, service: str) -> str:
        """The fault played by the release now committed in ``environments/<env>/<service>``."""
        path = f"environments/{env}/{service}"
        commits = self._newest(path)
        return self._fault_at(commits[0][0], path) if commits else ""

    def get(self, name: str) -> ApplicationStatus:
        folder = next(
            (f for f in self._folders() if f"{f.split('/')[1]}-{f.split('/')[0]}" == name), None
        )
        if folder is None:
            return ApplicationStatus.missing(name)
        path = f"environments/{folder}"
        commits = self._newest(path)
        newest_sha, newest_time = commits[0][0], int(commits[0][1])
        previous = commits[1][0] if len(commits) > 1 else ""
        if time.time() - newest_time < self.sync_delay:
            return ApplicationStatus(
                name=name,
                sync_status="OutOfSync",
                revision=previous,
                health_status="Progressing",
                operation_phase="Running",
                message="",
                exists=True,
            )
        fault = self._fault_at(newest_sha, path)
        if fault == FAIL_SYNC:
            resource = f"Deployment/{folder.split('/')[1]}: {SYNC_FAILURE}"
            return ApplicationStatus(
                name=name,
                sync_status="OutOfSync",
                revision=newest_sha,
                health_status="Healthy",  # the previous revision keeps running
                operation_phase="Failed",
                message=SYNC_FAILURE,
                exists=True,
                operation_revision=newest_sha,
                operation_message="one or more objects failed to apply (simulated)",
                resource_message=resource,
            )
        if fault == FAIL_LOAD:
            return ApplicationStatus(
                name=name,
                sync_status="Synced",
                revision=newest_sha,
                health_status="Degraded",
                operation_phase="Succeeded",
                message=LOAD_FAILURE,
                exists=True,
                operation_revision=newest_sha,
                health_message=LOAD_FAILURE,
            )
        return ApplicationStatus(
            name=name,
            sync_status="Synced",
            revision=newest_sha,
            health_status="Healthy",
            operation_phase="Succeeded",
            message="",
            exists=True,
            operation_revision=newest_sha,
        )

    def close(self) -> None:
        pass


@dataclass
class DemoWorkloads:
    """The simulator's serving objects and batch Jobs: ready, or failing to load when the
    release plays ``demo.fail=load`` (objects are named after the service, in the
    environment's namespace, as the renderers write them)."""

    reader: DemoClusterReader

    def serving_status(self, *, kind: str, namespace: str, name: str) -> WorkloadStatus:
        if self.reader.folder_fault(namespace, name) == FAIL_LOAD:
            return WorkloadStatus("failed", LOAD_FAILURE)
        return WorkloadStatus("ready", f"{kind} {name} is ready (simulated)")

    def release_jobs(self, *, namespace: str, release_id: str) -> list[JobRun]:
        fault = self.reader.fault(release_id) if self.reader.fault else ""
        name = f"run-{release_id[:8]}"
        if fault == FAIL_LOAD:
            return [JobRun(name, "failed", f"Job {name} failed: {LOAD_FAILURE}")]
        return [JobRun(name, "succeeded", f"Job {name} succeeded (simulated)")]
