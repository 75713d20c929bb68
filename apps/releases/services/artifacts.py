"""Before a release is submitted: can its runtime's model server load the artifacts?

Each model server expects its own layout at the storage URI (TorchServe a
``model-store/*.mar`` plus ``config/config.properties``, XGBoost one ``.bst/.json/.ubj``
file, MLServer an ``MLmodel`` ...; ``apps.gitops.artifacts`` knows them). A release whose
artifacts do not fit would be approved, committed and synced, and only fail to load in the
cluster, after reviewers spent their time on it. Listing the files asks MLflow (slow
I/O), so this runs before any row lock is taken and outside the caller's transaction.
"""

from __future__ import annotations

from django.conf import settings

from apps.core.errors import DomainError, Unavailable
from apps.gitops.artifacts import layout_problems
from apps.gitops.config import MODEL_SERVER_RUNTIMES
from apps.gitops.runtimes import Runtime
from apps.registry.client import RegistryClient, RegistryError, RegistryUnavailable


def release_check_artifacts(*, service, model_version, config, client=None) -> None:
    """Refuse (``DomainError``, or ``Unavailable`` while MLflow does not answer) a release
    whose model artifacts the service's model server cannot load.

    Image runtimes (custom, FastAPI, BentoML, batch, streaming) carry their own server
    and are not checked; neither is a configuration with its own ``storage_uri``, whose
    files are not where MLflow says (the URI itself is checked when rendering).
    """
    runtime = Runtime(service.runtime)
    if runtime not in MODEL_SERVER_RUNTIMES or (config or {}).get("storage_uri"):
        return
    client = client or RegistryClient(budget_seconds=settings.MLFLOW_TIMEOUT_SECONDS * 2)
    label = f"{model_version.name} v{model_version.version}"
    try:
        # Ask MLflow where the version's artifacts are (``models:/``), with its own
        # credentials, rather than trusting the mirrored source, which MLflow may have
        # moved since the last sync.
        files = client.list_artifact_files(
            model_version.name,
            model_version.version,
            f"models:/{model_version.name}/{model_version.version}",
        )
    except RegistryUnavailable as exc:
        raise Unavailable(
            f"MLflow did not answer while checking the artifacts of {label} ({exc}); "
            "try again in a minute."
        ) from exc
    except RegistryError as exc:
        raise DomainError(
            f"The artifacts of {label} cannot be listed in MLflow: {exc}",
            field_errors={"model_version": [str(exc)]},
        ) from exc
    problems = layout_problems(
        runtime, files, requirements=(config or {}).get("requirements", ("mlflow",))
    )
    if problems:
        raise DomainError(
            f"The {runtime.label} server cannot load the artifacts of {label}: "
            + " ".join(problems),
            field_errors={"model_version": problems},
        )
