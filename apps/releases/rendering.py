"""From a release's inputs to the manifests it will commit, via the gitops renderers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from django.conf import settings

from apps.gitops.config import merge_config
from apps.gitops.render import RenderedManifests, RenderRequest, manifests_digest, render
from apps.gitops.runtimes import KServeMode, Runtime

# Keys of a configuration layer that are about how a release rolls out, not how it is
# served: they never reach the serving-config parser, and the most specific layer that
# names them wins whole (a merged plan would mix one layer's steps with another's
# strategy into something nobody wrote).
ROLLOUT_KEYS = ("rollout", "analysis", "shadow_evaluation")


def serving_layer(layer: Mapping | None) -> dict:
    """A configuration layer without its rollout keys."""
    return {k: v for k, v in (layer or {}).items() if k not in ROLLOUT_KEYS}


def _layers(*, service, environment, target, overrides) -> list[Mapping]:
    return [
        service.default_config or {},
        environment.config_overrides or {},
        (target.config_overrides if target is not None else None) or {},
        overrides or {},
    ]


def resolve_config(*, service, environment, target, overrides: Mapping) -> dict:
    """The serving configuration a release gets: service defaults, then the environment's
    overrides, then this service's overrides in that environment, then the release's own."""
    return merge_config(
        *(
            serving_layer(layer)
            for layer in _layers(
                service=service, environment=environment, target=target, overrides=overrides
            )
        )
    )


def resolve_rollout_settings(
    *, service, environment, target, overrides: Mapping
) -> tuple[Mapping | None, Mapping]:
    """(what was written under ``rollout:``, the ``analysis:`` config) from the most
    specific layer naming each; (None, {}) when no layer does (all-at-once)."""
    plan, analysis = None, {}
    for layer in _layers(
        service=service, environment=environment, target=target, overrides=overrides
    ):
        if "rollout" in layer:
            plan = layer["rollout"]
        if "analysis" in layer:
            analysis = layer["analysis"] or {}
    return plan, analysis


def resolve_shadow_settings(*, service, environment, target, release_overrides: Mapping):
    """What was written under ``shadow_evaluation:`` (``{mirror_percent, observe}``, the
    shape of a shadow plan without its strategy) in the most specific layer naming it,
    or None; and the ``analysis:`` config, as for a rollout."""
    written, analysis = None, {}
    for layer in _layers(
        service=service, environment=environment, target=target, overrides=release_overrides
    ):
        if "shadow_evaluation" in layer:
            written = layer["shadow_evaluation"]
        if "analysis" in layer:
            analysis = layer["analysis"] or {}
    return written, analysis


def rollout_digest(
    *,
    files: Mapping[str, str],
    plan: Mapping,
    step_files: Sequence[Mapping[str, str]],
    stable_uid: str,
) -> str:
    """What reviewers approve for a progressive release: the candidate's manifests, the
    plan, every step's files and the stable release they share traffic with. An approval
    given to one plan (or against one stable version) does not fit another."""
    digest = hashlib.sha256(b"slipway-rollout-v1\0")
    digest.update(manifests_digest(files).encode())
    digest.update(json.dumps(dict(plan), sort_keys=True, separators=(",", ":")).encode())
    for step in step_files:
        digest.update(b"\0" + manifests_digest(step).encode())
    digest.update(b"\0" + stable_uid.encode())
    return digest.hexdigest()


def release_expected_digest(release) -> str:
    """The digest the stored release must still have: what was approved."""
    if not release.is_progressive:
        return manifests_digest(release.rendered_files)
    return rollout_digest(
        files=release.rendered_files,
        plan=release.rollout_plan,
        step_files=release.rollout_files,
        stable_uid=str(release.rollout_stable.uid),
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
