"""The normalised serving configuration the renderers read.

These frozen dataclasses are the output of ``parse_serving_config``, not its input
schema: they hold every runtime's settings with their defaults filled in and in the
shapes the renderers want (``env`` as sorted pairs, ``replicas`` as two numbers,
resource limits next to the requests). The input schema, which mirrors the YAML a person
writes, is in ``apps.gitops.config.models``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from apps.gitops.runtimes import Runtime

IMAGE_DIGEST = re.compile(r"@sha256:[a-f0-9]{64}\Z")


@dataclass(frozen=True)
class Resources:
    cpu: str = "250m"
    memory: str = "512Mi"
    gpu: int = 0
    cpu_limit: str = ""  # no CPU limit by default: limits throttle latency-sensitive servers
    memory_limit: str = ""  # empty: same as the memory request (a pod is OOM-killed, not a node)

    def requests(self) -> dict[str, str]:
        out = {"cpu": self.cpu, "memory": self.memory}
        if self.gpu:
            out["nvidia.com/gpu"] = str(self.gpu)
        return out

    def limits(self) -> dict[str, str]:
        out = {"memory": self.memory_limit or self.memory}
        if self.cpu_limit:
            out["cpu"] = self.cpu_limit
        if self.gpu:  # extended resources must have limit == request
            out["nvidia.com/gpu"] = str(self.gpu)
        return out


@dataclass(frozen=True)
class Probes:
    # http: GET the paths on the container's port; exec: run ``command`` in the container;
    # none: no probes (a consumer with nothing to ask). Only http gets a port.
    type: str = "http"
    readiness_path: str = "/ready"
    liveness_path: str = "/healthz"
    command: tuple[str, ...] = ()
    initial_delay_seconds: int = 0
    # How long a fresh pod may take to load its model before liveness starts counting.
    startup_timeout_seconds: int = 300


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: tuple[str, ...]
    topic: str
    consumer_group: str
    lag_threshold: int = 100
    offset_reset_policy: str = "latest"
    authentication_ref: str = ""  # a KEDA TriggerAuthentication holding SASL/TLS secrets


@dataclass(frozen=True)
class ServingConfig:
    runtime: Runtime
    image: str = ""
    port: int = 8080
    min_replicas: int = 1
    max_replicas: int = 3
    target_cpu_utilization: int = 70
    resources: Resources = field(default_factory=Resources)
    probes: Probes | None = None
    env: tuple[tuple[str, str], ...] = ()  # sorted (name, value) pairs
    secret_refs: tuple[str, ...] = ()
    service_account: str = ""
    canary_percent: int | None = None
    # KServe autoscaling; empty: what the environment's deployment mode does by default.
    scale_metric: str = ""
    scale_target: int | None = None
    autoscaler_class: str = ""
    protocol_version: str = ""  # empty: the serving runtime's first protocol
    storage_uri: str = ""  # empty: the model version's URI
    requirements: tuple[str, ...] = ("mlflow",)
    server: str = ""
    storage_secret: str = ""  # Seldon spec.secretName: the rclone remote's Secret
    schedule: str = ""
    time_zone: str = "Etc/UTC"
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    backoff_limit: int = 2
    active_deadline_seconds: int = 3600
    kafka: KafkaConfig | None = None

    @property
    def image_is_pinned(self) -> bool:
        return bool(IMAGE_DIGEST.search(self.image))
