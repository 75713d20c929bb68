"""Streaming: a Kafka consumer Deployment scaled by a KEDA ``ScaledObject`` on lag.

KEDA creates and owns the HPA for the Deployment, so none is rendered here. The consumer
gets the same broker, topic and group KEDA watches, through its environment.
"""

from __future__ import annotations

from apps.gitops.config import ServingConfig
from apps.gitops.render import common, deployment
from apps.gitops.render.common import RenderRequest

COMPONENT = "stream-consumer"


def scaled_object(request: RenderRequest, config: ServingConfig, model_uri: str) -> dict:
    kafka = config.kafka
    assert kafka is not None  # parse_serving_config requires it for streaming
    trigger: dict = {
        "type": "kafka",
        # KEDA trigger metadata values are all strings.
        "metadata": {
            "bootstrapServers": ",".join(kafka.bootstrap_servers),
            "consumerGroup": kafka.consumer_group,
            "topic": kafka.topic,
            "lagThreshold": str(kafka.lag_threshold),
            "offsetResetPolicy": kafka.offset_reset_policy,
        },
    }
    if kafka.authentication_ref:
        trigger["authenticationRef"] = {"name": kafka.authentication_ref}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": common.metadata(request, request.service, COMPONENT, model_uri),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": request.service,
            },
            "minReplicaCount": config.min_replicas,
            "maxReplicaCount": config.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [trigger],
        },
    }


def render(request: RenderRequest, config: ServingConfig, model_uri: str) -> dict[str, dict]:
    kafka = config.kafka
    assert kafka is not None
    extra_env = {
        "KAFKA_BOOTSTRAP_SERVERS": ",".join(kafka.bootstrap_servers),
        "KAFKA_CONSUMER_GROUP": kafka.consumer_group,
        "KAFKA_TOPIC": kafka.topic,
    }
    return {
        "deployment.yaml": deployment.deployment(
            request,
            config,
            model_uri,
            component=COMPONENT,
            extra_env=extra_env,
            # A consumer may speak no HTTP at all: then it gets no port (and so no
            # Service can point at it) and exec or no probes.
            with_port=config.probes is not None and config.probes.type == "http",
        ),
        "pdb.yaml": deployment.pdb(request, config, model_uri, component=COMPONENT),
        "scaledobject.yaml": scaled_object(request, config, model_uri),
    }
