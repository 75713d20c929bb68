"""Batch scoring: a ``CronJob`` that runs the scoring image on a schedule."""

from __future__ import annotations

from apps.gitops.config import ServingConfig
from apps.gitops.errors import RenderError
from apps.gitops.render import common
from apps.gitops.render.common import RenderRequest

COMPONENT = "batch-scorer"
# Jobs get "<cronjob>-<11 digits>" names, which must still fit 63 characters.
MAX_CRONJOB_NAME = 52


def cronjob(request: RenderRequest, config: ServingConfig, model_uri: str) -> dict:
    if len(request.service) > MAX_CRONJOB_NAME:
        raise RenderError(
            f"A batch service name may have at most {MAX_CRONJOB_NAME} characters "
            f"(Kubernetes appends a suffix to each run); {request.service!r} has "
            f"{len(request.service)}."
        )
    labels = common.labels(request, COMPONENT)
    container = {
        "name": "scorer",
        "image": config.image,
        "imagePullPolicy": "IfNotPresent",
        "env": common.container_env(request, config, model_uri),
        "resources": common.resources(config),
        "securityContext": common.container_security_context(),
    }
    if config.secret_refs:
        container["envFrom"] = common.env_from(config)
    if config.command:
        container["command"] = list(config.command)
    if config.args:
        container["args"] = list(config.args)
    pod_spec = {
        **common.pod_spec_basics(config),
        "restartPolicy": "Never",  # the Job's backoffLimit retries, with fresh pods
        "containers": [container],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": common.metadata(request, request.service, COMPONENT, model_uri),
        "spec": {
            "schedule": config.schedule,
            "timeZone": config.time_zone,
            # Two scoring runs writing the same outputs at once is never wanted.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": config.backoff_limit,
                    "activeDeadlineSeconds": config.active_deadline_seconds,
                    "ttlSecondsAfterFinished": 86400,
                    "template": {
                        "metadata": {
                            "labels": labels,
                            "annotations": common.annotations(request, model_uri),
                        },
                        "spec": pod_spec,
                    },
                },
            },
        },
    }


def render(request: RenderRequest, config: ServingConfig, model_uri: str) -> dict[str, dict]:
    return {"cronjob.yaml": cronjob(request, config, model_uri)}
