"""Render a release into Kubernetes manifests: one module per runtime family.

``render`` is a pure function from a ``RenderRequest`` (plain values) to
``RenderedManifests`` (file name -> YAML text, plus their digest). It parses the
configuration, builds plain dicts, dumps them deterministically, lists them in a
``kustomization.yaml`` and validates the result before returning it, so nothing that
fails validation can reach a reviewer or the repository.
"""

from __future__ import annotations

from apps.gitops.config import (
    DEPLOYMENT_RUNTIMES,
    KSERVE_RUNTIMES,
    ConfigError,
    ServingConfig,
    parse_serving_config,
    storage_uri_problem,
)
from apps.gitops.conventions import KUSTOMIZATION_FILE, LABEL_VALUE, METADATA_FILE
from apps.gitops.errors import RenderError
from apps.gitops.names import DNS1035_LABEL, is_plain
from apps.gitops.paths import check_label
from apps.gitops.render import batch, common, deployment, kserve, seldon, streaming
from apps.gitops.render.common import (
    RenderedManifests,
    RenderRequest,
    manifests_digest,
    release_metadata_file,
)
from apps.gitops.runtimes import Runtime
from apps.gitops.validate import validate_manifests

__all__ = [
    "KUSTOMIZATION_FILE",
    "METADATA_FILE",
    "RenderRequest",
    "RenderedManifests",
    "manifests_digest",
    "release_metadata_file",
    "render",
]


def render(request: RenderRequest) -> RenderedManifests:
    """Render, validate and digest the manifests for one release.

    Raises ``ConfigError`` for configuration a person must fix, ``RenderError`` when the
    request cannot be expressed for its runtime, ``ManifestError`` when the result
    fails validation (schemas, ``kind: Secret``, secrets in values, unpinned images).
    """
    runtime = Runtime(request.runtime)
    _check_request(request)
    config = parse_serving_config(runtime, request.config)
    model_uri = _model_uri(request, runtime, config)
    objects = _render_objects(request, runtime, config, model_uri)
    files = {name: common.dump(obj) for name, obj in objects.items()}
    files[KUSTOMIZATION_FILE] = common.dump(common.kustomization(list(objects)))
    validate_manifests(
        files,
        require_image_digest=request.require_image_digest,
        forbidden_values=request.forbidden_values,
    )
    return RenderedManifests(files=files, digest=manifests_digest(files))


def _check_request(request: RenderRequest) -> None:
    check_label(request.environment, "environment")
    check_label(request.service, "service")
    check_label(request.target_namespace, "namespace")
    # Services, InferenceServices and Models need a leading letter (RFC 1035).
    if not DNS1035_LABEL.fullmatch(request.service):
        raise RenderError(
            f"The service name {request.service!r} must start with a letter to name "
            "Kubernetes objects."
        )
    if len(request.instance) > 63:
        raise RenderError(
            f"'<service>-<environment>' ({request.instance!r}) is longer than 63 characters, "
            "too long for the Argo CD Application name and labels."
        )
    if (
        isinstance(request.model_version, bool)
        or not isinstance(request.model_version, int)
        or request.model_version < 0
    ):
        raise RenderError("The model version must be a whole number.")
    for what, value in (
        ("release id", request.release_id),
        ("model name", request.model_name),
        ("model URI", request.model_uri),
    ):
        if not isinstance(value, str) or not value or not is_plain(value) or len(value) > 1024:
            raise RenderError(f"The {what} must be a single line of text.")
    if not LABEL_VALUE.fullmatch(request.release_id):
        raise RenderError(f"The release id {request.release_id!r} cannot be a label value.")


def _model_uri(request: RenderRequest, runtime: Runtime, config: ServingConfig) -> str:
    if config.storage_uri:
        return config.storage_uri
    if runtime in KSERVE_RUNTIMES or runtime == Runtime.SELDON:
        # The model server fetches the model itself, so the URI must be one it can fetch.
        problem = storage_uri_problem(request.model_uri, runtime)
        if problem:
            raise ConfigError(
                {
                    "storage_uri": (
                        f"The model version's URI cannot be loaded by {runtime.label}. "
                        f"{problem}"
                        + (
                            ""
                            if "storage_uri" in problem
                            else " Set storage_uri to where the model artifacts are."
                        )
                    )
                }
            )
    return request.model_uri


def _render_objects(
    request: RenderRequest, runtime: Runtime, config: ServingConfig, model_uri: str
) -> dict[str, dict]:
    if runtime in DEPLOYMENT_RUNTIMES:
        return deployment.render(request, config, model_uri)
    if runtime in KSERVE_RUNTIMES:
        return kserve.render(request, config, model_uri)
    if runtime == Runtime.SELDON:
        return seldon.render(request, config, model_uri)
    if runtime == Runtime.BATCH:
        return batch.render(request, config, model_uri)
    if runtime == Runtime.STREAMING:
        return streaming.render(request, config, model_uri)
    raise RenderError(f"No renderer for the runtime {runtime.value!r}.")  # pragma: no cover
