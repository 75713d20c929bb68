"""What gitops adds to the ops endpoints: the ``git`` readiness check (registered in
``GitopsConfig.ready()``).

The endpoint is unauthenticated, so the answer is remembered for
``READINESS_GIT_CACHE_SECONDS``: probing ``/readyz`` cannot be turned into a flood of
``git ls-remote`` calls against the git host.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings

from apps.core.ops import CheckResult, short_reason
from apps.gitops.errors import GitOpsError
from apps.gitops.git_writer import GitWriter, check_remote_url

DEFAULT_GIT_CACHE_SECONDS = 30.0

_git_cache: dict[tuple[str, str], tuple[float, CheckResult]] = {}
_git_cache_lock = threading.Lock()


def check_git(timeout: float) -> CheckResult:
    """``git ls-remote`` of the GitOps branch, with the writer's credentials and the
    writer's URL safety check; remembered for READINESS_GIT_CACHE_SECONDS."""
    url = getattr(settings, "GITOPS_REPO_URL", "")
    if not url:
        return CheckResult(False, "GITOPS_REPO_URL is not set")
    try:
        check_remote_url(url)
    except GitOpsError as exc:
        return CheckResult(False, short_reason(exc))
    key = (url, settings.GITOPS_BRANCH)
    ttl = float(getattr(settings, "READINESS_GIT_CACHE_SECONDS", DEFAULT_GIT_CACHE_SECONDS))
    now = time.monotonic()
    with _git_cache_lock:
        cached = _git_cache.get(key)
        if cached and now - cached[0] < ttl:
            return cached[1]
    result = _ls_remote(timeout)
    with _git_cache_lock:
        _git_cache[key] = (time.monotonic(), result)
    return result


def _ls_remote(timeout: float) -> CheckResult:
    try:
        # from_settings builds the same environment the writer pushes with: the SSH key
        # and pinned host keys, or the HTTPS token as an extra header (never in the URL or
        # on the command line), prompts off, transport helpers refused.
        writer = GitWriter.from_settings()
    except GitOpsError as exc:
        return CheckResult(False, short_reason(exc))
    with writer:
        try:
            probe = writer.ls_remote(timeout=timeout)
        except GitOpsError as exc:  # GitRemoteUnavailable on timeout; already redacted
            return CheckResult(False, short_reason(exc))
    branch = writer.remote.branch
    if probe.returncode == 0:
        return CheckResult(True, f"branch {branch} found")
    if probe.returncode == 2:
        # Reachable, credentials accepted, the branch just does not exist yet: the first
        # deploy creates it, so this is ready.
        return CheckResult(True, f"reachable; branch {branch} does not exist yet")
    lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
    # git's own verdict ("fatal: ...") says more than the advice printed after it.
    verdict = next((line for line in lines if line.startswith(("fatal:", "error:"))), None)
    reason = verdict or (lines[-1] if lines else "no output")
    return CheckResult(False, short_reason(f"git ls-remote exit {probe.returncode}: {reason}"))
