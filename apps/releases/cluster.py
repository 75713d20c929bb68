"""Which cluster and repository adapters this deployment talks to, from settings."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def cluster_reader():
    """The Argo CD status reader: the real Kubernetes API, or the demo simulator."""
    if settings.CLUSTER_BACKEND == "kubernetes":
        from apps.gitops.argo import ArgoStatusReader

        return ArgoStatusReader.from_settings()
    if settings.CLUSTER_BACKEND == "demo":
        from apps.gitops.demo_cluster import DemoClusterReader

        return DemoClusterReader.from_settings()
    raise ImproperlyConfigured(
        f"CLUSTER_BACKEND={settings.CLUSTER_BACKEND!r}: use 'kubernetes' or 'demo'."
    )


def repository_writer():
    """A writer on the GitOps repository's working clone, or None when none is configured."""
    if not settings.GITOPS_REPO_URL:
        return None
    from apps.gitops.git_writer import GitWriter

    return GitWriter.from_settings()
