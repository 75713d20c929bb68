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

        return DemoClusterReader.from_settings(fault=demo_fault)
    raise ImproperlyConfigured(
        f"CLUSTER_BACKEND={settings.CLUSTER_BACKEND!r}: use 'kubernetes' or 'demo'."
    )


def repository_writer():
    """A writer on the GitOps repository's working clone, or None when none is configured."""
    if not settings.GITOPS_REPO_URL:
        return None
    from apps.gitops.git_writer import GitWriter

    return GitWriter.from_settings()


def demo_fault(release_id: str) -> str:
    """The ``demo.fail`` MLflow tag of the release's model version: what the demo
    simulator should play (``sync`` or ``load``), "" when nothing."""
    from django.core.exceptions import ValidationError

    from apps.gitops.demo_cluster import TAG_FAIL
    from apps.releases.models import Release

    try:
        tags = (
            Release.objects.filter(uid=release_id)
            .values_list("model_version__tags", flat=True)
            .first()
        )
    except (ValidationError, ValueError):  # not a UUID: a hand-made folder
        return ""
    value = (tags or {}).get(TAG_FAIL) if isinstance(tags, dict) else None
    return str(value).strip().lower() if value else ""
