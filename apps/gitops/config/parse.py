"""Validate a merged configuration with its family's model; build the ``ServingConfig``.

Pydantic reports problems as (location, error type); a config author reads field paths
(``resources.cpu``, ``env.MY VAR``, ``secret_refs[0]``) and sentences. Our own validators
already carry the sentence (``fields.fail``); the few error types pydantic raises itself
are translated here: a missing required key, a key the model does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from apps.gitops.config.errors import ConfigError
from apps.gitops.config.families import HTTP_RUNTIMES
from apps.gitops.config.fields import ERROR_TYPE
from apps.gitops.config.models import KEYS, MODELS, Input
from apps.gitops.config.values import KafkaConfig, Probes, Resources, ServingConfig
from apps.gitops.runtimes import Runtime

_DEFAULT_PORT = {Runtime.BENTOML: 3000}
_DEFAULT_PROBES = {Runtime.BENTOML: Probes(readiness_path="/readyz", liveness_path="/livez")}

# Sentences for required keys left out, by field path.
_REQUIRED = {
    "image": "The container image to run is required for this runtime.",
    "schedule": "A cron schedule such as '0 3 * * *' is required for batch.",
    "kafka": "Kafka settings (bootstrap_servers, topic, consumer_group) are required.",
    "kafka.bootstrap_servers": "Required for a streaming consumer.",
    "kafka.topic": "Required for a streaming consumer.",
    "kafka.consumer_group": "Required for a streaming consumer.",
}
_UNKNOWN_KEY = ("extra_forbidden", "invalid_key")  # invalid_key: a key that is not text


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
    if not isinstance(raw, Mapping):
        raise ConfigError({"(root)": "The serving configuration must be a mapping of keys."})
    model = MODELS[runtime]
    try:
        parsed = model.model_validate(dict(raw), context={"runtime": runtime})
    except ValidationError as exc:
        raise ConfigError(_problems(exc, runtime, model)) from None
    return _serving_config(runtime, parsed)


# --- pydantic errors -> {field path: sentence} ------------------------------------------
def _problems(exc: ValidationError, runtime: Runtime, model: type[Input]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        path, message = _problem(error, runtime, model)
        problems.setdefault(path, message)  # the first problem at a path is the root one
    return problems


def _problem(error: Any, runtime: Runtime, model: type[Input]) -> tuple[str, str]:
    loc, kind = error["loc"], error["type"]
    if kind == ERROR_TYPE:
        context = error["ctx"]
        return context.get("at") or _path(loc), context["message"]
    if kind in _UNKNOWN_KEY:
        return _unknown_key(loc, runtime, model)
    if kind == "missing" and _path(loc) in _REQUIRED:
        return _path(loc), _REQUIRED[_path(loc)]
    return _path(loc), error["msg"]  # not expected: every other check words its own error


def _unknown_key(loc: tuple, runtime: Runtime, model: type[Input]) -> tuple[str, str]:
    *parent, key = loc
    if not parent:
        if isinstance(key, str) and key in KEYS:
            accepted = ", ".join(sorted(r.value for r in KEYS[key]))
            return key, f"Not used by the {runtime.value} runtime (only by: {accepted})."
        return str(key), f"Unknown setting. Known settings: {', '.join(KEYS)}."
    known = ", ".join(sorted(_model_at(model, parent).model_fields))
    return f"{_path(parent)}.{key}", f"Unknown setting. Known settings here: {known}."


def _model_at(model: type[BaseModel], loc: list) -> type[BaseModel]:
    for name in loc:
        model = model.model_fields[name].annotation  # type: ignore[assignment]
    return model


def _path(loc: tuple | list) -> str:
    """('resources', 'cpu') -> resources.cpu; ('secret_refs', 0) -> secret_refs[0];
    ('env', 'MY VAR', '[key]') -> env.MY VAR (env's keys are names, never indices)."""
    out = ""
    for index, part in enumerate(loc):
        if part == "[key]":
            continue
        if isinstance(part, int) and not (index == 1 and loc[0] == "env"):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# --- the validated model -> the renderers' ServingConfig --------------------------------
def _serving_config(runtime: Runtime, parsed: Input) -> ServingConfig:
    """Only the keys the author wrote are taken from the model: the defaults live in the
    ``values`` dataclasses, some of them per runtime (BentoML's port and probe paths)."""
    values: dict[str, Any] = {"runtime": runtime}
    if runtime in _DEFAULT_PORT:
        values["port"] = _DEFAULT_PORT[runtime]
    if runtime in HTTP_RUNTIMES:
        values["probes"] = _DEFAULT_PROBES.get(runtime, Probes())
    given = parsed.model_fields_set
    for name in given:
        value = getattr(parsed, name)
        if name == "replicas":
            values.update(_replicas(value))
        elif name == "resources":
            values["resources"] = _resources(value)
        elif name == "probes":
            values["probes"] = Probes(**{**values["probes"].__dict__, **_given(value)})
        elif name == "env":
            values["env"] = tuple(sorted(value.items()))
        elif name == "secret_refs":
            values["secret_refs"] = tuple(sorted(set(value)))
        elif name == "kafka":
            values["kafka"] = KafkaConfig(**_given(value))
        else:
            values[name] = value
    if "target_cpu_utilization" in given and "scale_metric" in type(parsed).model_fields:
        values.setdefault("scale_metric", "cpu")  # an explicit CPU target asks for CPU
    return ServingConfig(**values)


def _given(model: BaseModel) -> dict[str, Any]:
    return {name: getattr(model, name) for name in model.model_fields_set}


def _replicas(replicas: BaseModel) -> dict[str, int]:
    given = _given(replicas)
    low = given.get("min", 1)
    # "min: 5" alone should not trip over the default max.
    high = given.get("max", max(3, low))
    return {"min_replicas": low, "max_replicas": high}


def _resources(resources: BaseModel) -> Resources:
    given = _given(resources)
    given.pop("limits", None)
    limits = _given(resources.limits)  # the default Limits() when not given: nothing set
    if "cpu" in limits:
        given["cpu_limit"] = limits["cpu"]
    if "memory" in limits:
        given["memory_limit"] = limits["memory"]
    return Resources(**given)
