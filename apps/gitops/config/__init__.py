"""Serving configuration: merge the layers, then validate and normalise them.

A service's configuration comes in layers (the service's defaults, the environment's
overrides, the service-in-environment overrides). ``merge_config`` folds them;
``parse_serving_config`` turns the result into a frozen ``ServingConfig`` or raises
``ConfigError`` naming every problem at once, by field path, in sentences an ML engineer
can act on. Unknown keys are errors: a typo such as ``replica`` must not silently vanish
and deploy the defaults instead.

Modules: ``merge`` folds the layers; ``models`` is the input schema, one pydantic model
per runtime family (``extra="forbid"``); ``fields`` the value types and their sentences;
``parse`` runs the model, turns pydantic's errors into field paths and sentences, and
builds the ``values`` dataclasses the renderers read; ``storage`` says which model URIs
a model server can fetch.

Raw shape (every key optional unless the runtime needs it)::

    image: registry.example.com/churn:1.4.2@sha256:...   # image runtimes only
    port: 8080
    replicas: {min: 2, max: 6}
    target_cpu_utilization: 70
    resources: {cpu: "500m", memory: "1Gi", gpu: 0, limits: {cpu: "2", memory: "2Gi"}}
    probes: {readiness_path: /ready, liveness_path: /healthz,
             initial_delay_seconds: 5, startup_timeout_seconds: 300}
    probes: {type: exec, command: [python, -m, healthcheck]}   # streaming: http|exec|none
    env: {LOG_LEVEL: info}                 # plain, non-secret values only
    secret_refs: [churn-db]                # Kubernetes Secrets, used via envFrom
    service_account: churn-reader
    canary_percent: 10                     # KServe, Knative mode only
    scale_metric: concurrency              # KServe: concurrency|rps (Knative), cpu|memory (HPA)
    scale_target: 10                       # KServe: the metric's target per replica
    autoscaler_class: hpa                  # KServe: kpa (Knative default) or hpa
    protocol_version: v2                   # KServe: among those the serving runtime speaks
    storage_uri: s3://models/churn/4       # KServe / Seldon; default: the version's URI
    requirements: [mlflow]                 # Seldon
    server: mlserver                       # Seldon
    storage_secret: minio-secret           # Seldon: Secret with the rclone remote (secretName)
    schedule: "0 3 * * *"                  # batch
    time_zone: Europe/Paris                # batch
    command: [python, -m, score]           # batch / streaming
    args: [--date, yesterday]              # batch / streaming
    backoff_limit: 2                       # batch
    active_deadline_seconds: 3600          # batch
    kafka: {bootstrap_servers: "kafka:9092", topic: events, consumer_group: churn,
            lag_threshold: 100, offset_reset_policy: latest,
            authentication_ref: kafka-auth}  # streaming
"""

from apps.gitops.config.errors import ConfigError
from apps.gitops.config.families import (
    ALL_RUNTIMES,
    DEPLOYMENT_RUNTIMES,
    HTTP_RUNTIMES,
    IMAGE_RUNTIMES,
    KSERVE_RUNTIMES,
    MODEL_SERVER_RUNTIMES,
)
from apps.gitops.config.fields import RESERVED_ENV
from apps.gitops.config.merge import merge_config
from apps.gitops.config.models import AUTOSCALER_CLASSES, PROBE_TYPES, SCALE_METRICS
from apps.gitops.config.parse import parse_serving_config
from apps.gitops.config.storage import storage_uri_problem
from apps.gitops.config.values import (
    IMAGE_DIGEST,
    KafkaConfig,
    Probes,
    Resources,
    ServingConfig,
)

__all__ = [
    "ALL_RUNTIMES",
    "AUTOSCALER_CLASSES",
    "DEPLOYMENT_RUNTIMES",
    "HTTP_RUNTIMES",
    "IMAGE_DIGEST",
    "IMAGE_RUNTIMES",
    "KSERVE_RUNTIMES",
    "MODEL_SERVER_RUNTIMES",
    "PROBE_TYPES",
    "RESERVED_ENV",
    "SCALE_METRICS",
    "ConfigError",
    "KafkaConfig",
    "Probes",
    "Resources",
    "ServingConfig",
    "merge_config",
    "parse_serving_config",
    "storage_uri_problem",
]
