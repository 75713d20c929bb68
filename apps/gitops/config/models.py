"""The input schema: one pydantic model per runtime family, mirroring the YAML.

Why one model per family rather than one model with a runtime-aware validator: which keys
a runtime accepts is then the model's own field list, ``extra="forbid"`` refuses the
rest, and the table behind "not used by the seldon runtime (only by: ...)" is derived
from the models instead of kept beside them. The families (deployment image, KServe,
Seldon, batch, streaming) are also how the renderers are split. What differs inside a
family is small and says so where it happens: BentoML's default port and probe paths
(applied when the output is built), and the protocols each KServe serving runtime
speaks (read from the validation context, which carries the runtime).

Rules across fields are field validators on the later field, reading the earlier ones
from ``info.data`` (so field order matters and is commented): pydantic validates every
field even when one fails, while a ``model_validator(mode="after")`` would be skipped as
soon as any field failed and a config with two independent problems would name one.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from apps.gitops.config.families import (
    DEPLOYMENT_RUNTIMES,
    KSERVE_RUNTIMES,
)
from apps.gitops.config.fields import (
    Brokers,
    Capability,
    Command,
    Cpu,
    DnsName,
    Env,
    HttpPath,
    Image,
    KafkaName,
    Memory,
    OneOf,
    Protocol,
    Schedule,
    SecretName,
    StorageUri,
    TextList,
    TimeZone,
    Whole,
    fail,
    settled_type,
    with_problem,
)
from apps.gitops.runtimes import Runtime

SCALE_METRICS = ("concurrency", "rps", "cpu", "memory")
AUTOSCALER_CLASSES = ("kpa", "hpa")
PROBE_TYPES = ("http", "exec", "none")

Port = Whole(1, 65535)
Percent = Whole(1, 100)
SecretRefs = TextList(SecretName)
ServiceAccount = DnsName("Use the name of a Kubernetes ServiceAccount.")


class Input(BaseModel):
    """A mapping of known keys; anything else is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise fail("Must be a mapping of keys to values.")
        return dict(data)


# --- nested settings --------------------------------------------------------------------
class Replicas(Input):
    min: Whole(1, 100) = 1  # online servers keep one replica to answer requests
    max: Whole(1, 100) = 3  # after min: compared with it

    @field_validator("max")
    @classmethod
    def _not_below_min(cls, high: int, info: ValidationInfo) -> int:
        low = info.data.get("min")  # absent when min itself was refused
        if low is not None and low > high:
            raise fail(f"min ({low}) is larger than max ({high}).", at="replicas")
        return high


class ScaleToZeroReplicas(Replicas):
    # Streaming consumers, KServe (Knative) and Seldon may idle at zero: something
    # (KEDA on lag, the activator, Seldon's autoscaler) wakes them.
    min: Whole(0, 100) = 1


class Limits(Input):
    cpu: Cpu = ""
    memory: Memory = ""


class Resources(Input):
    cpu: Cpu = "250m"
    memory: Memory = "512Mi"
    gpu: Whole(0, 16) = 0
    limits: Limits = Limits()


_EXEC_WITHOUT_COMMAND = object()


class Probes(Input):
    """http: GET the paths on the container's port; exec: run ``command``; none: none."""

    # Images behind a Service answer HTTP by definition; only a consumer may lack it.
    KINDS: ClassVar[tuple[str, ...]] = ("http",)
    TYPE_PROBLEM: ClassVar[str] = "Use one of: http. This runtime serves HTTP."

    type: str = "http"  # first: the other fields are checked against it
    readiness_path: HttpPath = "/ready"
    liveness_path: HttpPath = "/healthz"
    command: Command = ()
    initial_delay_seconds: Whole(0, 600) = 0
    # How long a fresh pod may take to load its model before liveness starts counting.
    startup_timeout_seconds: Whole(10, 3600) = 300

    @model_validator(mode="before")
    @classmethod
    def _exec_needs_a_command(cls, data: Any) -> Any:
        # A missing key runs no field validator: stand in for it so that the error is
        # raised beside the others rather than after them (or not at all).
        if isinstance(data, Mapping) and data.get("type") == "exec" and "command" not in data:
            return {**data, "command": _EXEC_WITHOUT_COMMAND}
        return data

    @field_validator("type", mode="plain")
    @classmethod
    def _known_type(cls, kind: Any) -> str:
        if kind not in cls.KINDS:
            raise fail(cls.TYPE_PROBLEM)
        return kind

    @field_validator(
        "readiness_path",
        "liveness_path",
        "command",
        "initial_delay_seconds",
        "startup_timeout_seconds",
        mode="wrap",
    )
    @classmethod
    def _fits_the_type(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        kind = info.data.get("type")
        if kind is None:
            # The type was refused: what the other keys mean is unknown, so say only that.
            return value
        # A "soft" problem leaves the probes' meaning clear (see StreamingConfig's port).
        if info.field_name in ("readiness_path", "liveness_path") and kind != "http":
            try:
                handler(value)
            except ValidationError:
                raise fail(f"Only used by http probes, not {kind}.") from None
            raise fail(f"Only used by http probes, not {kind}.", soft=True)
        if info.field_name == "command":
            if value is _EXEC_WITHOUT_COMMAND:
                raise fail(
                    "exec probes need the command to run, e.g. [python, -m, healthcheck].",
                    soft=True,
                )
            if kind != "exec":
                raise fail("Only used by exec probes (set probes.type: exec).", soft=True)
        return handler(value)


class ConsumerProbes(Probes):
    # A Kafka consumer may have nothing to answer HTTP with.
    KINDS: ClassVar[tuple[str, ...]] = PROBE_TYPES
    TYPE_PROBLEM: ClassVar[str] = f"Use one of: {', '.join(PROBE_TYPES)}."


class Kafka(Input):
    bootstrap_servers: Brokers
    topic: KafkaName
    consumer_group: KafkaName
    lag_threshold: Whole(1, 10_000_000) = 100
    offset_reset_policy: OneOf("latest", "earliest", message="Use 'latest' or 'earliest'.") = (
        "latest"
    )
    authentication_ref: DnsName("Use the name of a KEDA TriggerAuthentication.") = ""


# --- one model per runtime family -------------------------------------------------------
class DeploymentConfig(Input):
    """custom, fastapi, bentoml: an HTTP model server image behind a Service."""

    image: Image
    port: Port = 8080
    replicas: Replicas = Replicas()
    target_cpu_utilization: Percent = 70
    resources: Resources = Resources()
    probes: Probes = Probes()
    env: Env = {}
    secret_refs: SecretRefs = ()
    service_account: ServiceAccount = ""


class KServeConfig(Input):
    """kserve-*: an InferenceService; the environment's deployment mode is checked at
    render time (``render.kserve.check_mode``), these are shape checks only."""

    replicas: ScaleToZeroReplicas = ScaleToZeroReplicas()
    scale_metric: OneOf(*SCALE_METRICS) = ""  # before target_cpu_utilization
    target_cpu_utilization: Percent = 70
    scale_target: Whole(1, 1_000_000) = None  # None: the mode's default
    autoscaler_class: OneOf(*AUTOSCALER_CLASSES) = ""
    protocol_version: Protocol = ""
    canary_percent: Whole(0, 100) = None  # None: no canary
    storage_uri: StorageUri = ""
    resources: Resources = Resources()
    env: Env = {}
    secret_refs: SecretRefs = ()
    service_account: ServiceAccount = ""

    @field_validator("target_cpu_utilization")
    @classmethod
    def _only_when_scaling_on_cpu(cls, value: int, info: ValidationInfo) -> int:
        # An explicit CPU target is a request to scale on CPU.
        metric = info.data.get("scale_metric", "")
        if metric not in ("", "cpu"):
            raise fail(f"Only applies when scaling on cpu, not {metric}; use scale_target instead.")
        return value


class SeldonConfig(Input):
    """seldon: a Seldon Core 2 Model placed on a Server by its capabilities."""

    replicas: ScaleToZeroReplicas = ScaleToZeroReplicas()
    resources: Resources = Resources()
    storage_uri: StorageUri = ""
    requirements: TextList(Capability) = ("mlflow",)
    server: DnsName("Use the name of a Seldon Server.") = ""
    storage_secret: DnsName("Use the name of the Kubernetes Secret holding the rclone remote.") = ""

    @field_validator("requirements")
    @classmethod
    def _at_least_one(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Seldon places a model on any Server having all the listed capabilities: none
        # listed lets it land on a server that cannot load the format.
        if not value:
            raise fail(
                "List at least one capability the Server must have to load this model "
                "(e.g. 'mlflow' for an MLflow model, 'sklearn', 'xgboost')."
            )
        return value


class BatchConfig(Input):
    """batch: scheduled scoring as a CronJob."""

    image: Image
    schedule: Schedule
    time_zone: TimeZone = "Etc/UTC"
    command: Command = ()
    args: Command = ()
    backoff_limit: Whole(0, 20) = 2
    active_deadline_seconds: Whole(60, 7 * 24 * 3600) = 3600
    resources: Resources = Resources()
    env: Env = {}
    secret_refs: SecretRefs = ()
    service_account: ServiceAccount = ""


class StreamingConfig(Input):
    """streaming: a Kafka consumer Deployment that KEDA scales on lag."""

    image: Image
    kafka: Kafka
    port: Port = None  # before probes; None: not written (ServingConfig's default applies)
    probes: ConsumerProbes = ConsumerProbes()
    replicas: ScaleToZeroReplicas = ScaleToZeroReplicas()
    command: Command = ()
    args: Command = ()
    resources: Resources = Resources()
    env: Env = {}
    secret_refs: SecretRefs = ()
    service_account: ServiceAccount = ""

    @field_validator("probes", mode="wrap")
    @classmethod
    def _port_only_with_http_probes(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        try:
            probes, failure = handler(value), None
        except ValidationError as exc:
            probes, failure = None, exc
        # The probe type is settled when the probes parsed, or when their only problems
        # are soft ones (an unknown key, a path written for another type): the port is then
        # a problem of its own, named with the others.
        kind = probes.type if probes is not None else settled_type(value, failure)
        if info.data.get("port") is None or kind in (None, "http"):
            if failure is not None:
                raise failure
            return probes
        problem = fail(
            f"Only http probes use a port; with probes.type {kind} the "
            "consumer gets no port. Remove port, or use http probes.",
            at="port",
        )
        raise with_problem(failure, problem, value)


MODELS: dict[Runtime, type[Input]] = {
    **dict.fromkeys(DEPLOYMENT_RUNTIMES, DeploymentConfig),
    **dict.fromkeys(KSERVE_RUNTIMES, KServeConfig),
    Runtime.SELDON: SeldonConfig,
    Runtime.BATCH: BatchConfig,
    Runtime.STREAMING: StreamingConfig,
}
# Which runtimes accept each top-level key, for "not used by ... (only by: ...)".
KEYS: dict[str, frozenset[Runtime]] = {
    key: frozenset(runtime for runtime, model in MODELS.items() if key in model.model_fields)
    for key in sorted({key for model in MODELS.values() for key in model.model_fields})
}
