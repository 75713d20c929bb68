"""Errors raised by the GitOps adapters.

Every error is a ``GitOpsError``, so a caller can catch the family. Messages are meant
for people (the release page shows them) and never contain credentials: anything that
carries a URL or git output passes through ``apps.core.redact`` first.
"""

from __future__ import annotations


class GitOpsError(Exception):
    """Base class of every error the GitOps adapters raise."""

    #: True when trying the same thing again later may succeed (a task should retry).
    retryable = False


class RenderError(GitOpsError):
    """The request cannot be rendered (e.g. a model URI the runtime cannot load)."""


class ManifestError(GitOpsError):
    """Rendered manifests failed validation; ``problems`` lists every finding."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            "The rendered manifests were refused:\n" + "\n".join(f"- {p}" for p in self.problems)
        )


class UnsafePathError(GitOpsError, ValueError):
    """A name or path would escape its folder in the GitOps repository."""


class UnsafeRemoteError(GitOpsError, ValueError):
    """The git remote URL uses a protocol or form Slipway refuses to talk to."""


class GitRemoteUnavailable(GitOpsError):
    """The remote could not be reached (network, host down, timeout): retry later."""

    retryable = True


class GitPushRejected(GitOpsError):
    """The remote kept rejecting the push after every allowed attempt: retry later."""

    retryable = True


class GitCommandError(GitOpsError):
    """A local git command failed in a way that is not about the remote."""


class RepositoryLockTimeout(GitOpsError):
    """Another writer held the repository lock for too long: retry later."""

    retryable = True


class ClusterError(GitOpsError):
    """The Kubernetes API answered, but not with what we need (e.g. 403)."""


class ClusterUnavailable(ClusterError):
    """The Kubernetes API could not be reached or timed out: retry later."""

    retryable = True
