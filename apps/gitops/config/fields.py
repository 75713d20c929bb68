"""Value types for the serving-configuration models, each failing with our own sentence.

Every type here is an ``Annotated`` pydantic type whose validator raises
``PydanticCustomError`` of type ``slipway`` carrying the sentence a person reads. We do
not lean on pydantic's own coercion: it would read ``"5"`` or ``true`` as a number and
word its errors for Python programmers, while a config author needs "use a number from
1 to 100". ``fail(..., at=path)`` names another field than the one being validated, for
checks across fields (``min`` larger than ``max`` is a problem of ``replicas``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainValidator, ValidationError, ValidationInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from apps.gitops.config.storage import storage_uri_problem
from apps.gitops.k8s_grammar import parse_quantity
from apps.gitops.names import DNS1123_SUBDOMAIN, ENV_VAR_NAME, fullmatch, is_plain
from apps.gitops.runtimes import KSERVE_SERVING_RUNTIMES

ERROR_TYPE = "slipway"
MAX_STRING = 1024
MAX_LIST = 64


def fail(message: str, *, at: str = "", soft: bool = False) -> PydanticCustomError:
    """Our sentence as a pydantic error.

    ``at``: the field path to report it under, when not the field being validated.
    ``soft``: the value is misplaced, not malformed; checks that depend on the enclosing
    setting (``settled_type``) may still go ahead.
    """
    context: dict[str, Any] = {"message": message}
    if at:
        context["at"] = at
    if soft:
        context["soft"] = True
    return PydanticCustomError(ERROR_TYPE, "{message}", context)


_SOFT_TYPES = frozenset({"extra_forbidden", "invalid_key"})  # an unknown key is soft


def _is_soft(error: Any) -> bool:
    return error["type"] in _SOFT_TYPES or bool(error.get("ctx", {}).get("soft"))


def settled_type(value: Any, failure: ValidationError | None) -> str | None:
    """The ``type`` written in a probes mapping whose only problems are soft ones."""
    if failure is None or not isinstance(value, Mapping):
        return None
    if not all(_is_soft(error) for error in failure.errors(include_url=False)):
        return None
    return value.get("type", "http")


def with_problem(
    failure: ValidationError | None, problem: PydanticCustomError, value: Any
) -> ValidationError:
    """``failure``'s errors plus ``problem``, as one error pydantic can merge upwards."""
    details: list[InitErrorDetails] = []
    for error in failure.errors(include_url=False) if failure else ():
        kind = error["type"]
        if kind == ERROR_TYPE:
            kind = PydanticCustomError(ERROR_TYPE, "{message}", error["ctx"])
        detail = InitErrorDetails(type=kind, loc=error["loc"], input=error["input"])
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    details.append(InitErrorDetails(type=problem, loc=(), input=value))
    return ValidationError.from_exception_data("ServingConfig", details)


# --- checks: value in, normalised value out, or ``fail`` --------------------------------
def check_text(
    value: Any,
    *,
    pattern: re.Pattern[str] | None = None,
    hint: str = "",
    max_length: int = MAX_STRING,
) -> str:
    if not isinstance(value, str) or not value:
        raise fail(f"Must be a non-empty text value. {hint}".strip())
    if len(value) > max_length:
        raise fail(f"Is {len(value)} characters long; the limit is {max_length}.")
    if not is_plain(value):
        raise fail("Must be a single line of text without control characters or line breaks.")
    if pattern is not None and not pattern.fullmatch(value):
        raise fail(f"{value!r} is not valid. {hint}".strip())
    return value


def check_whole(value: Any, *, minimum: int, maximum: int) -> int:
    # bool is an int in Python; "replicas: true" is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"Must be a whole number between {minimum} and {maximum}.")
    if not minimum <= value <= maximum:
        raise fail(f"{value} is out of range: use a number from {minimum} to {maximum}.")
    return value


def check_list(value: Any) -> tuple:
    """The list's shape; pydantic then checks each item under ``path[index]``."""
    if not isinstance(value, list | tuple):
        raise fail("Must be a list.")
    if len(value) > MAX_LIST:
        raise fail(f"Has {len(value)} entries; the limit is {MAX_LIST}.")
    return tuple(value)


def check_quantity(value: Any, *, hint: str) -> str:
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
    text = check_text(value, max_length=64, hint=hint)
    try:
        amount = parse_quantity(text)
    except ValueError as exc:
        raise fail(f"{exc}. {hint}") from None
    if amount <= 0:
        raise fail(f"{text!r} is not above zero; give the container a real amount. {hint}")
    return text


def _validator(check: Callable[..., Any], **options: Any) -> PlainValidator:
    return PlainValidator(lambda value: check(value, **options))


def Text(
    *, pattern: re.Pattern[str] | None = None, hint: str = "", max_length: int = MAX_STRING
) -> Any:
    return Annotated[str, _validator(check_text, pattern=pattern, hint=hint, max_length=max_length)]


def Whole(minimum: int, maximum: int) -> Any:
    return Annotated[int, _validator(check_whole, minimum=minimum, maximum=maximum)]


def Quantity(hint: str) -> Any:
    return Annotated[str, _validator(check_quantity, hint=hint)]


def OneOf(*options: str, message: str = "") -> Any:
    """One of ``options``, compared as written (no case folding)."""
    message = message or f"Use one of: {', '.join(options)}."

    def check(value: Any) -> str:
        if value not in options:
            raise fail(message)
        return value

    return Annotated[str, PlainValidator(check)]


def TextList(item: Any) -> Any:
    return Annotated[tuple[item, ...], BeforeValidator(check_list)]


# --- the shapes used by the models ------------------------------------------------------
CPU_HINT = "Write CPU as cores ('1', '0.5') or millicores ('500m')."
MEMORY_HINT = "Write memory with a unit, e.g. '512Mi' or '2Gi'."
Cpu = Quantity(CPU_HINT)
Memory = Quantity(MEMORY_HINT)
PlainText = Text()
Command = TextList(PlainText)
SecretName = Text(
    pattern=DNS1123_SUBDOMAIN,
    hint="Use the name of a Kubernetes Secret (lowercase letters, digits, '-', '.').",
)
HttpPath = Text(
    pattern=re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*"),
    max_length=200,
    hint="Write an HTTP path starting with '/', e.g. '/healthz'.",
)
Capability = Text(
    pattern=re.compile(r"[a-z0-9][a-z0-9._-]{0,62}"),
    hint="Use a Seldon server capability such as 'sklearn' or 'mlflow'.",
)
TimeZone = Text(
    pattern=re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}"),
    hint="Use an IANA time zone name such as 'Europe/Paris'.",
)
KafkaName = Text(
    pattern=re.compile(r"[A-Za-z0-9._-]{1,249}"),
    hint="Kafka names use letters, digits, '.', '_' and '-'.",
)
Broker = Text(
    pattern=re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:[0-9]{1,5}"),
    hint="Write brokers as 'host:port'.",
)


def DnsName(hint: str) -> Any:
    return Text(pattern=DNS1123_SUBDOMAIN, hint=hint)


def _brokers(value: Any) -> tuple:
    # "k1:9092,k2:9092" is how Kafka tools take a broker list; accept it as written.
    if isinstance(value, str):
        value = [server.strip() for server in value.split(",")]
    return check_list(value)


Brokers = Annotated[tuple[Broker, ...], BeforeValidator(_brokers)]

# A container image reference: [registry[:port]/]path[:tag][@sha256:digest].
_IMAGE = re.compile(
    r"(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?"
)


def check_image(value: Any) -> str:
    image = check_text(value, max_length=512)
    match = _IMAGE.fullmatch(image)
    if match is None:
        raise fail(
            f"{image!r} is not an image reference; write e.g. "
            "'registry.example.com/team/model:1.2.0' (optionally '@sha256:<digest>')."
        )
    if not match["tag"] and not match["digest"]:
        raise fail("Give a version tag or a digest; an image without one is mutable.")
    if match["tag"] == "latest" and not match["digest"]:
        raise fail("The 'latest' tag changes under you; use a version tag or pin the digest.")
    return image


Image = Annotated[str, PlainValidator(check_image)]

_CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,-]+")
_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"})


def check_schedule(value: Any) -> str:
    schedule = check_text(value, max_length=100)
    if schedule in _CRON_MACROS:
        return schedule
    fields = schedule.split(" ")
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        raise fail(
            f"{schedule!r} is not a cron schedule: write five fields "
            "separated by single spaces, e.g. '0 3 * * *', or '@daily'."
        )
    return schedule


Schedule = Annotated[str, PlainValidator(check_schedule)]


def check_storage_uri(value: Any, info: ValidationInfo) -> str:
    uri = check_text(value, max_length=1024)
    problem = storage_uri_problem(uri, info.context["runtime"])
    if problem:
        raise fail(problem)
    return uri


StorageUri = Annotated[str, PlainValidator(check_storage_uri)]


def check_protocol(value: Any, info: ValidationInfo) -> str:
    # Which protocols exist depends on the runtime, not only on the family.
    served = KSERVE_SERVING_RUNTIMES[info.context["runtime"]]
    if value not in served.protocols:
        raise fail(
            f"{served.serving_runtime} speaks {', '.join(served.protocols)}; "
            f"{value!r} would find no serving runtime."
        )
    return value


Protocol = Annotated[str, PlainValidator(check_protocol)]

# --- env: plain settings only -----------------------------------------------------------
# Env var names that say "I am a secret": those belong in a Kubernetes Secret.
_SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "CREDENTIAL", "CREDENTIALS", "PRIVATE"}
)
_SECRET_PHRASES = ("API_KEY", "ACCESS_KEY", "PRIVATE_KEY", "SECRET_KEY", "AUTH_KEY")
# Set by Slipway itself on every container; a config must not override them.
RESERVED_ENV = frozenset(
    {"MODEL_NAME", "MODEL_VERSION", "MODEL_URI", "SLIPWAY_RELEASE_ID", "SLIPWAY_ENVIRONMENT"}
)


def check_env_name(name: Any) -> str:
    if not fullmatch(ENV_VAR_NAME, name) or len(name) > 128:
        raise fail(
            "Variable names use letters, digits and '_' and do not start "
            "with a digit (e.g. 'LOG_LEVEL')."
        )
    if name in RESERVED_ENV:
        raise fail(f"{name} is set by Slipway itself (from the model version).")
    upper = name.upper()
    if _SECRET_WORDS & set(upper.split("_")) or any(p in upper for p in _SECRET_PHRASES):
        raise fail(
            "Looks like a secret. Put it in a Kubernetes Secret and list the "
            "Secret's name under secret_refs; env is for plain settings."
        )
    return name


def check_env_value(value: Any) -> str:
    # YAML reads `DEBUG: true` and `WORKERS: 4` as bool and int; the container gets text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        value = format(value, "g")
    if value == "":
        return ""
    return check_text(value)


def _env_mapping(value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise fail("Must be a mapping of variable names to text values.")
    return dict(value)


Env = Annotated[
    dict[
        Annotated[str, PlainValidator(check_env_name)],
        Annotated[str, PlainValidator(check_env_value)],
    ],
    BeforeValidator(_env_mapping),
]
