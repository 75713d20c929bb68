"""From a release's inputs to the manifests it will commit, via the gitops renderers."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings

from apps.gitops.config import merge_config
from apps.gitops.render import RenderedManifests, RenderRequest, render
from apps.gitops.runtimes import KServeMode, Runtime


def resolve_config(*, service, environment, target, overrides: Mapping) -> dict:
    """The serving configuration a release gets: service defaults, then the environment's
    overrides, then this service's overrides in that environment, then the release's own."""
    return merge_config(
        service.default_config or {},
        environment.config_overrides or {},
        (target.config_overrides if target is not None else None) or {},
        overrides or {},
    )


def render_release(
    *, service, environment, model_version, release_uid, config, forbidden_values=()
) -> RenderedManifests:
    """Render (and validate) the manifests for one release. Raises the gitops ConfigError /
    RenderError / ManifestError with messages that name the offending field."""
    return render(
        RenderRequest(
            service=service.name,
            environment=environment.name,
            runtime=Runtime(service.runtime),
            release_id=str(release_uid),
            model_name=model_version.name,
            model_version=model_version.version,
            model_uri=model_version.source
            or f"models:/{model_version.name}/{model_version.version}",
            config=config,
            require_image_digest=environment.is_production,
            forbidden_values=frozenset(forbidden_values),
            kserve_mode=KServeMode(environment.kserve_mode),
            kserve_version=environment.kserve_version,
        )
    )


def control_plane_secrets() -> set[str]:
    """Values that must never appear in the GitOps repository."""
    candidates = [
        settings.SECRET_KEY,
        settings.AUDIT_CHAIN_KEY,
        settings.GITOPS_HTTPS_TOKEN,
        settings.ARGOCD_TOKEN,
        settings.KUBE_TOKEN,
        settings.DATABASES["default"].get("PASSWORD") or "",
    ]
    return {value for value in candidates if value and len(value) >= 8}
