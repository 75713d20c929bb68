"""Serving configuration: merge the layers, then validate and normalise them.

A service's configuration comes in layers (the service's defaults, the environment's
overrides, the service-in-environment overrides). ``merge_config`` folds them;
``parse_serving_config`` turns the result into a frozen ``ServingConfig`` or raises
``ConfigError`` naming every problem at once, by field path, in sentences an ML engineer
can act on. Unknown keys are errors: a typo such as ``replica`` must not silently vanish
and deploy the defaults instead.

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

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.gitops.errors import GitOpsError
from apps.gitops.k8s_grammar import parse_quantity
from apps.gitops.names import (
    DNS1123_SUBDOMAIN,
    ENV_VAR_NAME,
    fullmatch,
    is_plain,
)
from apps.gitops.runtimes import KSERVE_SERVING_RUNTIMES, Runtime


class ConfigError(GitOpsError, ValueError):
    """The serving configuration is not valid.

    ``errors`` maps a field path (``resources.cpu``, ``env.MY VAR``) to a sentence saying
    what is wrong and what to write instead.
    """

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(sorted(errors.items()))
        super().__init__(
            "Invalid serving configuration: "
            + "; ".join(f"{path}: {message}" for path, message in self.errors.items())
        )


# --- runtime families ------------------------------------------------------------------
DEPLOYMENT_RUNTIMES = frozenset({Runtime.CUSTOM, Runtime.FASTAPI, Runtime.BENTOML})
KSERVE_RUNTIMES = frozenset(
    {
        Runtime.KSERVE_SKLEARN,
        Runtime.KSERVE_XGBOOST,
        Runtime.KSERVE_ONNX,
        Runtime.KSERVE_PYTORCH,
        Runtime.KSERVE_TRITON,
        Runtime.KSERVE_MLFLOW,
    }
)
MODEL_SERVER_RUNTIMES = KSERVE_RUNTIMES | {Runtime.SELDON}
IMAGE_RUNTIMES = DEPLOYMENT_RUNTIMES | {Runtime.BATCH, Runtime.STREAMING}
HTTP_RUNTIMES = DEPLOYMENT_RUNTIMES | {Runtime.STREAMING}  # get ports and probes
ALL_RUNTIMES = frozenset(Runtime)

# --- value shapes ----------------------------------------------------------------------
# A container image reference: [registry[:port]/]path[:tag][@sha256:digest].
_IMAGE = re.compile(
    r"(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?"
)
IMAGE_DIGEST = re.compile(r"@sha256:[a-f0-9]{64}\Z")
_HTTP_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
# A path that no sane probe needs and that would let ".." games reach the server.
# What a default KServe v0.20 install can fetch: the storage initializer's ClusterStorage-
# Container formats (gs, s3, hdfs, webhdfs, hf, https incl. Azure blob), PVCs mounted by
# the webhook, and OCI model cars. Plain http is refused: models travel over TLS.
_STORAGE_SCHEMES = (
    "s3://",
    "gs://",
    "pvc://",
    "https://",
    "hf://",
    "oci://",
    "hdfs://",
    "webhdfs://",
)
# URIs only an MLflow client can resolve (registry or tracking server indirections).
_MLFLOW_SCHEMES = ("models:", "runs:", "mlflow-artifacts:")
# Seldon Core 2 fetches with rclone: "<remote>:<path>" or "<remote>://<path>", the remote
# being a name configured in a storage Secret (s3, gs, or one of your own).
_RCLONE_URI = re.compile(r"(?P<remote>[A-Za-z0-9][A-Za-z0-9_-]{0,62}):(?://)?(?P<path>\S+)")
_OCI_DIGEST = re.compile(r"oci://[^@\s]+@sha256:[a-f0-9]{64}")
SCALE_METRICS = ("concurrency", "rps", "cpu", "memory")
AUTOSCALER_CLASSES = ("kpa", "hpa")
PROBE_TYPES = ("http", "exec", "none")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,-]+")
_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"})
_TIME_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}")
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_PORT = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:[0-9]{1,5}")
# Env var names that say "I am a secret": those belong in a Kubernetes Secret.
_SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "CREDENTIAL", "CREDENTIALS", "PRIVATE"}
)
_SECRET_PHRASES = ("API_KEY", "ACCESS_KEY", "PRIVATE_KEY", "SECRET_KEY", "AUTH_KEY")
# Set by Slipway itself on every container; a config must not override them.
RESERVED_ENV = frozenset(
    {"MODEL_NAME", "MODEL_VERSION", "MODEL_URI", "SLIPWAY_RELEASE_ID", "SLIPWAY_ENVIRONMENT"}
)
_MAX_STRING = 1024
_MAX_LIST = 64


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


def merge_config(*layers: Mapping | None) -> dict:
    """Deep-merge configuration layers; later layers win.

    Dicts merge key by key; lists and scalars are replaced whole (a list of secret
    names is one decision, not something to splice). A ``None`` value in a later layer
    removes the key, so an environment can drop an inherited setting. Inputs are not
    modified.
    """
    merged: dict = {}
    for layer in layers:
        if layer is None:
            continue
        if not isinstance(layer, Mapping):
            raise ConfigError({"(root)": "Each configuration layer must be a mapping of keys."})
        _merge_into(merged, layer)
    return merged


def _merge_into(target: dict, layer: Mapping) -> None:
    for key, value in layer.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        elif isinstance(value, Mapping):
            target[key] = {}
            _merge_into(target[key], value)
        elif isinstance(value, list | tuple):
            target[key] = list(value)
        else:
            target[key] = value


# --- the parser ------------------------------------------------------------------------
class _Errors(dict):
    def add(self, path: str, message: str) -> None:
        self.setdefault(path, message)


def _string(
    errors: _Errors,
    path: str,
    value: Any,
    *,
    pattern: re.Pattern[str] | None = None,
    hint: str = "",
    max_length: int = _MAX_STRING,
) -> str | None:
    if not isinstance(value, str) or not value:
        errors.add(path, f"Must be a non-empty text value. {hint}".strip())
        return None
    if len(value) > max_length:
        errors.add(path, f"Is {len(value)} characters long; the limit is {max_length}.")
        return None
    if not is_plain(value):
        errors.add(
            path,
            "Must be a single line of text without control characters or line breaks.",
        )
        return None
    if pattern is not None and not pattern.fullmatch(value):
        errors.add(path, f"{value!r} is not valid. {hint}".strip())
        return None
    return value


def _integer(errors: _Errors, path: str, value: Any, *, minimum: int, maximum: int) -> int | None:
    # bool is an int in Python; "replicas: true" is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(path, f"Must be a whole number between {minimum} and {maximum}.")
        return None
    if not minimum <= value <= maximum:
        errors.add(path, f"{value} is out of range: use a number from {minimum} to {maximum}.")
        return None
    return value


def _string_list(
    errors: _Errors, path: str, value: Any, *, item: Callable[[str, Any], str | None]
) -> tuple[str, ...] | None:
    if not isinstance(value, list | tuple):
        errors.add(path, "Must be a list.")
        return None
    if len(value) > _MAX_LIST:
        errors.add(path, f"Has {len(value)} entries; the limit is {_MAX_LIST}.")
        return None
    out = [item(f"{path}[{index}]", entry) for index, entry in enumerate(value)]
    if any(entry is None for entry in out):
        return None
    return tuple(out)  # type: ignore[arg-type]


def _mapping(errors: _Errors, path: str, value: Any, allowed: set[str]) -> Mapping | None:
    if not isinstance(value, Mapping):
        errors.add(path, "Must be a mapping of keys to values.")
        return None
    for key in value:
        if key not in allowed:
            errors.add(
                f"{path}.{key}",
                f"Unknown setting. Known settings here: {', '.join(sorted(allowed))}.",
            )
    return value


# Which top-level keys each runtime accepts; anything else is an error naming the runtime.
_KEYS: dict[str, frozenset[Runtime]] = {
    "image": IMAGE_RUNTIMES,
    "port": HTTP_RUNTIMES,
    "replicas": DEPLOYMENT_RUNTIMES | MODEL_SERVER_RUNTIMES | {Runtime.STREAMING},
    "target_cpu_utilization": DEPLOYMENT_RUNTIMES | KSERVE_RUNTIMES,
    "resources": ALL_RUNTIMES,
    "probes": HTTP_RUNTIMES,
    "env": IMAGE_RUNTIMES | KSERVE_RUNTIMES,
    "secret_refs": IMAGE_RUNTIMES | KSERVE_RUNTIMES,
    "service_account": IMAGE_RUNTIMES | KSERVE_RUNTIMES,
    "canary_percent": KSERVE_RUNTIMES,
    "scale_metric": KSERVE_RUNTIMES,
    "scale_target": KSERVE_RUNTIMES,
    "autoscaler_class": KSERVE_RUNTIMES,
    "protocol_version": KSERVE_RUNTIMES,
    "storage_uri": MODEL_SERVER_RUNTIMES,
    "requirements": frozenset({Runtime.SELDON}),
    "server": frozenset({Runtime.SELDON}),
    "storage_secret": frozenset({Runtime.SELDON}),
    "schedule": frozenset({Runtime.BATCH}),
    "time_zone": frozenset({Runtime.BATCH}),
    "command": frozenset({Runtime.BATCH, Runtime.STREAMING}),
    "args": frozenset({Runtime.BATCH, Runtime.STREAMING}),
    "backoff_limit": frozenset({Runtime.BATCH}),
    "active_deadline_seconds": frozenset({Runtime.BATCH}),
    "kafka": frozenset({Runtime.STREAMING}),
}

_DEFAULT_PORT = {Runtime.BENTOML: 3000}
_DEFAULT_PROBES = {Runtime.BENTOML: Probes(readiness_path="/readyz", liveness_path="/livez")}


def parse_serving_config(runtime: Runtime | str, raw: Mapping) -> ServingConfig:
    """Validate ``raw`` for ``runtime`` and return the normalised ``ServingConfig``.

    Raises ``ConfigError`` listing every problem found, not just the first.
    """
    try:
        runtime = Runtime(runtime)
    except ValueError:
        raise ConfigError(
            {
                "runtime": f"{runtime!r} is not a runtime Slipway knows: "
                f"{', '.join(r.value for r in Runtime)}."
            }
        ) from None
    errors = _Errors()
    if not isinstance(raw, Mapping):
        raise ConfigError({"(root)": "The serving configuration must be a mapping of keys."})
    for key in raw:
        if not isinstance(key, str) or key not in _KEYS:
            errors.add(
                str(key),
                f"Unknown setting. Known settings: {', '.join(sorted(_KEYS))}.",
            )
        elif runtime not in _KEYS[key]:
            accepted = ", ".join(sorted(r.value for r in _KEYS[key]))
            errors.add(key, f"Not used by the {runtime.value} runtime (only by: {accepted}).")

    values: dict[str, Any] = {"runtime": runtime}
    if runtime in _DEFAULT_PORT:
        values["port"] = _DEFAULT_PORT[runtime]
    if runtime in HTTP_RUNTIMES:
        values["probes"] = _DEFAULT_PROBES.get(runtime, Probes())

    def present(key: str) -> bool:
        return key in raw and runtime in _KEYS.get(key, ())

    if runtime in IMAGE_RUNTIMES:
        if "image" not in raw:
            errors.add("image", "The container image to run is required for this runtime.")
        else:
            values["image"] = _parse_image(errors, raw["image"])
    if present("port"):
        values["port"] = _integer(errors, "port", raw["port"], minimum=1, maximum=65535)
    if present("replicas"):
        _parse_replicas(errors, runtime, raw["replicas"], values)
    if present("target_cpu_utilization"):
        values["target_cpu_utilization"] = _integer(
            errors,
            "target_cpu_utilization",
            raw["target_cpu_utilization"],
            minimum=1,
            maximum=100,
        )
    if present("resources"):
        values["resources"] = _parse_resources(errors, raw["resources"])
    if present("probes"):
        values["probes"] = _parse_probes(errors, runtime, raw["probes"], values["probes"])
        probes = values["probes"]
        if probes is not None and probes.type != "http" and present("port"):
            errors.add(
                "port",
                f"Only http probes use a port; with probes.type {probes.type} the "
                "consumer gets no port. Remove port, or use http probes.",
            )
    if present("env"):
        values["env"] = _parse_env(errors, raw["env"])
    if present("secret_refs"):
        values["secret_refs"] = _string_list(
            errors,
            "secret_refs",
            raw["secret_refs"],
            item=lambda p, v: _string(
                errors,
                p,
                v,
                pattern=DNS1123_SUBDOMAIN,
                hint="Use the name of a Kubernetes Secret (lowercase letters, digits, '-', '.').",
            ),
        )
        if values["secret_refs"] is not None:
            values["secret_refs"] = tuple(sorted(set(values["secret_refs"])))
    if present("service_account"):
        values["service_account"] = _string(
            errors,
            "service_account",
            raw["service_account"],
            pattern=DNS1123_SUBDOMAIN,
            hint="Use the name of a Kubernetes ServiceAccount.",
        )
    if present("canary_percent"):
        values["canary_percent"] = _integer(
            errors, "canary_percent", raw["canary_percent"], minimum=0, maximum=100
        )
    if runtime in KSERVE_RUNTIMES:
        _parse_kserve_scaling(errors, runtime, raw, values)
    if present("storage_uri"):
        values["storage_uri"] = _parse_storage_uri(
            errors, "storage_uri", raw["storage_uri"], runtime
        )
    if present("storage_secret"):
        values["storage_secret"] = _string(
            errors,
            "storage_secret",
            raw["storage_secret"],
            pattern=DNS1123_SUBDOMAIN,
            hint="Use the name of the Kubernetes Secret holding the rclone remote.",
        )
    if present("requirements"):
        values["requirements"] = _string_list(
            errors,
            "requirements",
            raw["requirements"],
            item=lambda p, v: _string(
                errors,
                p,
                v,
                pattern=re.compile(r"[a-z0-9][a-z0-9._-]{0,62}"),
                hint="Use a Seldon server capability such as 'sklearn' or 'mlflow'.",
            ),
        )
        if values["requirements"] == ():
            # Seldon places a model on any Server having all the listed capabilities:
            # none listed lets it land on a server that cannot load the format.
            errors.add(
                "requirements",
                "List at least one capability the Server must have to load this model "
                "(e.g. 'mlflow' for an MLflow model, 'sklearn', 'xgboost').",
            )
    if present("server"):
        values["server"] = _string(
            errors,
            "server",
            raw["server"],
            pattern=DNS1123_SUBDOMAIN,
            hint="Use the name of a Seldon Server.",
        )
    if runtime == Runtime.BATCH:
        if "schedule" not in raw:
            errors.add("schedule", "A cron schedule such as '0 3 * * *' is required for batch.")
        else:
            values["schedule"] = _parse_schedule(errors, raw["schedule"])
    if present("time_zone"):
        values["time_zone"] = _string(
            errors,
            "time_zone",
            raw["time_zone"],
            pattern=_TIME_ZONE,
            hint="Use an IANA time zone name such as 'Europe/Paris'.",
        )
    for key in ("command", "args"):
        if present(key):
            values[key] = _string_list(
                errors, key, raw[key], item=lambda p, v: _string(errors, p, v)
            )
    if present("backoff_limit"):
        values["backoff_limit"] = _integer(
            errors, "backoff_limit", raw["backoff_limit"], minimum=0, maximum=20
        )
    if present("active_deadline_seconds"):
        values["active_deadline_seconds"] = _integer(
            errors,
            "active_deadline_seconds",
            raw["active_deadline_seconds"],
            minimum=60,
            maximum=7 * 24 * 3600,
        )
    if runtime == Runtime.STREAMING:
        if "kafka" not in raw:
            errors.add(
                "kafka", "Kafka settings (bootstrap_servers, topic, consumer_group) are required."
            )
        else:
            values["kafka"] = _parse_kafka(errors, raw["kafka"])

    if errors:
        raise ConfigError(errors)
    return ServingConfig(**values)


def _parse_image(errors: _Errors, value: Any) -> str | None:
    image = _string(errors, "image", value, max_length=512)
    if image is None:
        return None
    match = _IMAGE.fullmatch(image)
    if match is None:
        errors.add(
            "image",
            f"{image!r} is not an image reference; write e.g. "
            "'registry.example.com/team/model:1.2.0' (optionally '@sha256:<digest>').",
        )
        return None
    if not match["tag"] and not match["digest"]:
        errors.add("image", "Give a version tag or a digest; an image without one is mutable.")
        return None
    if match["tag"] == "latest" and not match["digest"]:
        errors.add(
            "image",
            "The 'latest' tag changes under you; use a version tag or pin the digest.",
        )
        return None
    return image


def _parse_replicas(errors: _Errors, runtime: Runtime, value: Any, values: dict) -> None:
    spec = _mapping(errors, "replicas", value, {"min", "max"})
    if spec is None:
        return
    # Streaming consumers may idle at zero: KEDA wakes them when lag appears.
    floor = 0 if runtime in (Runtime.STREAMING, *KSERVE_RUNTIMES, Runtime.SELDON) else 1
    low = values.get("min_replicas", 1)
    high = values.get("max_replicas", 3)
    if "min" in spec:
        low = _integer(errors, "replicas.min", spec["min"], minimum=floor, maximum=100)
    if "max" in spec:
        high = _integer(errors, "replicas.max", spec["max"], minimum=1, maximum=100)
    if "max" not in spec and isinstance(low, int) and low > high:
        high = low  # "min: 5" alone should not trip over the default max
    if isinstance(low, int) and isinstance(high, int) and low > high:
        errors.add("replicas", f"min ({low}) is larger than max ({high}).")
    values["min_replicas"] = low
    values["max_replicas"] = high


def _parse_resources(errors: _Errors, value: Any) -> Resources | None:
    spec = _mapping(errors, "resources", value, {"cpu", "memory", "gpu", "limits"})
    if spec is None:
        return None
    out: dict[str, Any] = {}
    cpu_hint = "Write CPU as cores ('1', '0.5') or millicores ('500m')."
    mem_hint = "Write memory with a unit, e.g. '512Mi' or '2Gi'."
    if "cpu" in spec:
        out["cpu"] = _parse_quantity(errors, "resources.cpu", spec["cpu"], hint=cpu_hint)
    if "memory" in spec:
        out["memory"] = _parse_quantity(errors, "resources.memory", spec["memory"], hint=mem_hint)
    if "gpu" in spec:
        out["gpu"] = _integer(errors, "resources.gpu", spec["gpu"], minimum=0, maximum=16)
    if "limits" in spec:
        limits = _mapping(errors, "resources.limits", spec["limits"], {"cpu", "memory"})
        if limits is not None:
            if "cpu" in limits:
                out["cpu_limit"] = _parse_quantity(
                    errors, "resources.limits.cpu", limits["cpu"], hint=cpu_hint
                )
            if "memory" in limits:
                out["memory_limit"] = _parse_quantity(
                    errors, "resources.limits.memory", limits["memory"], hint=mem_hint
                )
    if any(v is None for v in out.values()):
        return None
    return Resources(**out)


def _parse_quantity(errors: _Errors, path: str, value: Any, *, hint: str) -> str | None:
    """A CPU or memory amount in the Kubernetes quantity grammar, above zero.

    The grammar is the API server's (``k8s_grammar.parse_quantity``: '500m', '0.5',
    '1e9', '1Gi', '100u' are all fine); zero or less is refused because a zero request
    schedules a pod that is then starved or OOM-killed, and a negative one is refused by
    the API server anyway.
    """
    # Quantities are strings in Kubernetes; accept a bare number for convenience (repr,
    # not format "g": 12345678 must not become '1.23457e+07').
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif isinstance(value, float):
        value = repr(value)
    text = _string(errors, path, value, max_length=64, hint=hint)
    if text is None:
        return None
    try:
        amount = parse_quantity(text)
    except ValueError as exc:
        errors.add(path, f"{exc}. {hint}")
        return None
    if amount <= 0:
        errors.add(path, f"{text!r} is not above zero; give the container a real amount. {hint}")
        return None
    return text


def _parse_probes(errors: _Errors, runtime: Runtime, value: Any, default: Probes) -> Probes | None:
    allowed = {
        "type",
        "readiness_path",
        "liveness_path",
        "command",
        "initial_delay_seconds",
        "startup_timeout_seconds",
    }
    spec = _mapping(errors, "probes", value, allowed)
    if spec is None:
        return None
    out: dict[str, Any] = {}
    kind = spec.get("type", default.type)
    # Images behind a Service answer HTTP by definition; only a consumer may lack it.
    kinds = PROBE_TYPES if runtime == Runtime.STREAMING else ("http",)
    if kind not in kinds:
        errors.add(
            "probes.type",
            f"Use one of: {', '.join(kinds)}."
            + ("" if runtime == Runtime.STREAMING else " This runtime serves HTTP."),
        )
        return None
    out["type"] = kind
    if kind != "http":
        for key in ("readiness_path", "liveness_path"):
            if key in spec:
                errors.add(f"probes.{key}", f"Only used by http probes, not {kind}.")
    if kind == "exec":
        if "command" not in spec:
            errors.add(
                "probes.command",
                "exec probes need the command to run, e.g. [python, -m, healthcheck].",
            )
        else:
            out["command"] = _string_list(
                errors, "probes.command", spec["command"], item=lambda p, v: _string(errors, p, v)
            )
    elif "command" in spec:
        errors.add("probes.command", "Only used by exec probes (set probes.type: exec).")
    for key in ("readiness_path", "liveness_path"):
        if key in spec:
            out[key] = _string(
                errors,
                f"probes.{key}",
                spec[key],
                pattern=_HTTP_PATH,
                max_length=200,
                hint="Write an HTTP path starting with '/', e.g. '/healthz'.",
            )
    if "initial_delay_seconds" in spec:
        out["initial_delay_seconds"] = _integer(
            errors,
            "probes.initial_delay_seconds",
            spec["initial_delay_seconds"],
            minimum=0,
            maximum=600,
        )
    if "startup_timeout_seconds" in spec:
        out["startup_timeout_seconds"] = _integer(
            errors,
            "probes.startup_timeout_seconds",
            spec["startup_timeout_seconds"],
            minimum=10,
            maximum=3600,
        )
    if any(v is None for v in out.values()):
        return None
    return Probes(**{**default.__dict__, **out})


def _parse_env(errors: _Errors, value: Any) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(value, Mapping):
        errors.add("env", "Must be a mapping of variable names to text values.")
        return None
    pairs = []
    for name, raw_value in value.items():
        path = f"env.{name}"
        if not fullmatch(ENV_VAR_NAME, name) or len(name) > 128:
            errors.add(
                path,
                "Variable names use letters, digits and '_' and do not start "
                "with a digit (e.g. 'LOG_LEVEL').",
            )
            continue
        if name in RESERVED_ENV:
            errors.add(path, f"{name} is set by Slipway itself (from the model version).")
            continue
        upper = name.upper()
        if _SECRET_WORDS & set(upper.split("_")) or any(p in upper for p in _SECRET_PHRASES):
            errors.add(
                path,
                "Looks like a secret. Put it in a Kubernetes Secret and list the "
                "Secret's name under secret_refs; env is for plain settings.",
            )
            continue
        if isinstance(raw_value, bool):
            raw_value = "true" if raw_value else "false"
        elif isinstance(raw_value, int | float):
            raw_value = format(raw_value, "g")
        if raw_value == "":
            pairs.append((name, ""))
            continue
        text = _string(errors, path, raw_value)
        if text is not None:
            pairs.append((name, text))
    return tuple(sorted(pairs))


def storage_uri_problem(uri: str, runtime: Runtime | None = None) -> str | None:
    """Why the model server's storage initialiser could not fetch ``uri``, or None.

    KServe's storage initializer knows a fixed set of schemes; Seldon Core 2 fetches with
    rclone, whose remote names are configuration (``myremote:bucket/path``).
    """
    seldon = runtime == Runtime.SELDON
    if uri.startswith(_MLFLOW_SCHEMES):
        return (
            f"{uri!r} is an MLflow URI that only an MLflow client can resolve, so it cannot "
            "be fetched by the model server in the cluster. Set storage_uri to where the "
            "artifacts are stored (e.g. s3://bucket/path), shown as the version's artifact "
            "location in MLflow."
        )
    if uri.startswith(("file:", "/")):
        return (
            f"{uri!r} is a path on the machine that logged the model and cannot be fetched "
            "by the model server in the cluster. Log models to an artifact store the cluster "
            "can reach (s3://, gs://, https://)"
            + ("" if seldon else " or copy them to a volume (pvc://<claim>/<path>)")
            + "."
        )
    if seldon:
        if uri.startswith(("oci:", "pvc:", "hf:")):
            # rclone, Seldon's fetcher, has no OCI, PVC or Hugging Face backend: a remote
            # named like that would be looked up in the storage Secret and not be found.
            return (
                f"{uri!r} cannot be fetched by Seldon Core 2 (it downloads models with rclone, "
                "which has no OCI, PVC or Hugging Face backend): copy the artifacts to an "
                "object store and write '<remote>:<path>' (e.g. 's3://bucket/path'), or serve "
                "this model with a KServe runtime."
            )
        if not _RCLONE_URI.fullmatch(uri) or "@" in uri:
            return (
                f"{uri!r} cannot be fetched by Seldon's rclone: write '<remote>:<path>' or "
                "'<remote>://<path>', the remote being s3, gs or one named in a storage "
                "Secret (e.g. 'minio:models/churn/4')."
            )
    elif not uri.startswith(_STORAGE_SCHEMES):
        return (
            f"{uri!r} cannot be fetched by the model server; use one of "
            f"{', '.join(_STORAGE_SCHEMES)}."
        )
    elif uri.startswith("oci://") and not _OCI_DIGEST.fullmatch(uri):
        return (
            "Pin an OCI model car by digest (oci://registry/repo@sha256:<64 hex>): "
            "a tag can be moved to another model after the release was approved."
        )
    if re.match(r"[A-Za-z0-9+.-]+://[^/@]*@", uri):
        return (
            "Do not put credentials in the URI; give the model server a service account "
            "or a storage Secret instead."
        )
    return None


def _parse_kserve_scaling(errors: _Errors, runtime: Runtime, raw: Mapping, values: dict) -> None:
    """Shape checks only: which combinations a deployment mode honours is decided at
    render time, where the environment's mode is known (render.kserve.check_mode)."""
    if "scale_metric" in raw:
        metric = raw["scale_metric"]
        if metric not in SCALE_METRICS:
            errors.add("scale_metric", f"Use one of: {', '.join(SCALE_METRICS)}.")
        else:
            values["scale_metric"] = metric
    # An explicit CPU target is a request to scale on CPU.
    if "target_cpu_utilization" in raw and values.setdefault("scale_metric", "cpu") != "cpu":
        errors.add(
            "target_cpu_utilization",
            f"Only applies when scaling on cpu, not {values['scale_metric']}; "
            "use scale_target instead.",
        )
    if "scale_target" in raw:
        values["scale_target"] = _integer(
            errors, "scale_target", raw["scale_target"], minimum=1, maximum=1_000_000
        )
    if "autoscaler_class" in raw:
        if raw["autoscaler_class"] not in AUTOSCALER_CLASSES:
            errors.add("autoscaler_class", f"Use one of: {', '.join(AUTOSCALER_CLASSES)}.")
        else:
            values["autoscaler_class"] = raw["autoscaler_class"]
    if "protocol_version" in raw:
        served = KSERVE_SERVING_RUNTIMES[runtime]
        if raw["protocol_version"] not in served.protocols:
            errors.add(
                "protocol_version",
                f"{served.serving_runtime} speaks {', '.join(served.protocols)}; "
                f"{raw['protocol_version']!r} would find no serving runtime.",
            )
        else:
            values["protocol_version"] = raw["protocol_version"]


def _parse_storage_uri(errors: _Errors, path: str, value: Any, runtime: Runtime) -> str | None:
    uri = _string(errors, path, value, max_length=1024)
    if uri is None:
        return None
    problem = storage_uri_problem(uri, runtime)
    if problem:
        errors.add(path, problem)
        return None
    return uri


def _parse_schedule(errors: _Errors, value: Any) -> str | None:
    schedule = _string(errors, "schedule", value, max_length=100)
    if schedule is None:
        return None
    if schedule in _CRON_MACROS:
        return schedule
    fields = schedule.split(" ")
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        errors.add(
            "schedule",
            f"{schedule!r} is not a cron schedule: write five fields "
            "separated by single spaces, e.g. '0 3 * * *', or '@daily'.",
        )
        return None
    return schedule


def _parse_kafka(errors: _Errors, value: Any) -> KafkaConfig | None:
    allowed = {
        "bootstrap_servers",
        "topic",
        "consumer_group",
        "lag_threshold",
        "offset_reset_policy",
        "authentication_ref",
    }
    spec = _mapping(errors, "kafka", value, allowed)
    if spec is None:
        return None
    out: dict[str, Any] = {}
    for key in ("bootstrap_servers", "topic", "consumer_group"):
        if key not in spec:
            errors.add(f"kafka.{key}", "Required for a streaming consumer.")
    if "bootstrap_servers" in spec:
        servers = spec["bootstrap_servers"]
        if isinstance(servers, str):
            servers = [s.strip() for s in servers.split(",")]
        out["bootstrap_servers"] = _string_list(
            errors,
            "kafka.bootstrap_servers",
            servers,
            item=lambda p, v: _string(
                errors, p, v, pattern=_HOST_PORT, hint="Write brokers as 'host:port'."
            ),
        )
    for key in ("topic", "consumer_group"):
        if key in spec:
            out[key] = _string(
                errors,
                f"kafka.{key}",
                spec[key],
                pattern=_KAFKA_NAME,
                hint="Kafka names use letters, digits, '.', '_' and '-'.",
            )
    if "lag_threshold" in spec:
        out["lag_threshold"] = _integer(
            errors, "kafka.lag_threshold", spec["lag_threshold"], minimum=1, maximum=10_000_000
        )
    if "offset_reset_policy" in spec:
        if spec["offset_reset_policy"] not in ("latest", "earliest"):
            errors.add("kafka.offset_reset_policy", "Use 'latest' or 'earliest'.")
        else:
            out["offset_reset_policy"] = spec["offset_reset_policy"]
    if "authentication_ref" in spec:
        out["authentication_ref"] = _string(
            errors,
            "kafka.authentication_ref",
            spec["authentication_ref"],
            pattern=DNS1123_SUBDOMAIN,
            hint="Use the name of a KEDA TriggerAuthentication.",
        )
    if (
        any(v is None for v in out.values())
        or not {"bootstrap_servers", "topic", "consumer_group"} <= out.keys()
    ):
        return None
    return KafkaConfig(**out)
