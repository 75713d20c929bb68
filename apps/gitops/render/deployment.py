"""Custom, FastAPI and BentoML images: Deployment + Service + HPA + PDB.

The three differ only in defaults (BentoML listens on 3000 and answers /readyz and
/livez), which ``parse_serving_config`` fills in.
"""

from __future__ import annotations

from apps.gitops.config import ServingConfig
from apps.gitops.render import common
from apps.gitops.render.common import RenderRequest

COMPONENT = "predictor"


def deployment(
    request: RenderRequest,
    config: ServingConfig,
    model_uri: str,
    *,
    component: str = COMPONENT,
    extra_env: dict[str, str] | None = None,
    with_port: bool = True,
) -> dict:
    container = {
        "name": "model",
        "image": config.image,
        "imagePullPolicy": "IfNotPresent",
        "env": common.container_env(request, config, model_uri, extra_env),
        "resources": common.resources(config),
        "securityContext": common.container_security_context(),
    }
    if with_port:
        container["ports"] = [{"name": "http", "containerPort": config.port, "protocol": "TCP"}]
    container.update(common.probes(config))
    if config.secret_refs:
        container["envFrom"] = common.env_from(config)
    if config.command:
        container["command"] = list(config.command)
    if config.args:
        container["args"] = list(config.args)
    labels = common.labels(request, component)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(request, request.service, component, model_uri),
        "spec": {
            # No "replicas": the autoscaler owns the count. Setting it here would make
            # Argo CD's self-heal fight the HPA on every sync.
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": common.selector(request)},
            "strategy": {
                "type": "RollingUpdate",
                # Never drop below the current capacity while the new version starts.
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": common.annotations(request, model_uri),
                },
                "spec": {
                    **common.pod_spec_basics(config),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                },
            },
        },
    }


def service(request: RenderRequest, config: ServingConfig, model_uri: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(request, request.service, COMPONENT, model_uri),
        "spec": {
            "type": "ClusterIP",
            "selector": common.selector(request),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def hpa(request: RenderRequest, config: ServingConfig, model_uri: str) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": common.metadata(request, request.service, COMPONENT, model_uri),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": request.service,
            },
            "minReplicas": config.min_replicas,
            "maxReplicas": config.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": config.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }


def pdb(
    request: RenderRequest, config: ServingConfig, model_uri: str, *, component: str = COMPONENT
) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": common.metadata(request, request.service, component, model_uri),
        "spec": {
            # maxUnavailable rather than minAvailable: with one replica, minAvailable: 1
            # would block every node drain forever.
            "maxUnavailable": 1,
            "selector": {"matchLabels": common.selector(request)},
        },
    }


def render(request: RenderRequest, config: ServingConfig, model_uri: str) -> dict[str, dict]:
    return {
        "deployment.yaml": deployment(request, config, model_uri),
        "service.yaml": service(request, config, model_uri),
        "hpa.yaml": hpa(request, config, model_uri),
        "pdb.yaml": pdb(request, config, model_uri),
    }
