"""Serving configuration checks for setup screens (the admin): the same merge and parse
release creation runs, so a service default or an environment override that every later
release would fail on is refused when it is saved, with the same messages. The
``analysis:`` config (the most specific layer naming it, as release creation picks it)
is checked too, with the check metrics registers (``apps.releases.analysis_config``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from apps.core.errors import DomainError
from apps.gitops.config import ConfigError, merge_config, parse_serving_config
from apps.gitops.traffic import PlanError, parse_rollout_plan
from apps.releases.analysis_config import analysis_config_check
from apps.releases.models import Environment, Service, ServiceEnvironment
from apps.releases.rendering import serving_layer


def config_problem(
    *, runtime: str, layers: Iterable[Mapping | None], environment: str = ""
) -> str | None:
    """The API's sentence for a configuration that does not parse, or None."""
    layers = list(layers)
    shadow = shadow_settings_problem(layers)
    if shadow:
        return shadow
    try:
        parse_serving_config(runtime, merge_config(*(serving_layer(layer) for layer in layers)))
    except ConfigError as exc:
        return "The serving configuration is not valid: " + "; ".join(
            f"{path}: {message}" for path, message in exc.errors.items()
        )
    analysis = None
    for layer in layers:
        if isinstance(layer, Mapping) and "analysis" in layer:
            analysis = layer["analysis"]
    if analysis:
        try:
            analysis_config_check(analysis, environment=environment, runtime=runtime)
        except DomainError as exc:
            return exc.message
    return None


def shadow_settings_problem(layers: Iterable[Mapping | None]) -> str | None:
    """``shadow_evaluation:`` in the most specific layer naming it must read as a shadow
    plan's settings (mirror_percent, observe), as an evaluation would read it."""
    written = None
    for layer in layers:
        if layer and "shadow_evaluation" in layer:
            written = layer["shadow_evaluation"]
    if written is None:
        return None
    if not isinstance(written, Mapping):
        return "shadow_evaluation: must be a mapping such as {mirror_percent: 10}."
    try:
        parse_rollout_plan({**written, "strategy": "shadow"}, prefix="shadow_evaluation")
    except PlanError as exc:
        return "The shadow evaluation settings are not valid: " + "; ".join(
            f"{path}: {message}" for path, message in exc.errors.items()
        )
    return None


def _target_overrides(*, service_id, environment_id) -> dict:
    if service_id is None or environment_id is None:
        return {}
    target = ServiceEnvironment.objects.filter(
        service_id=service_id, environment_id=environment_id
    ).first()
    return (target.config_overrides if target else None) or {}


def service_config_problems(
    *, runtime: str, default_config: Mapping | None, service_id: int | None = None
) -> list[str]:
    """Problems a service's runtime and default configuration would give releases in each
    environment (merged with that environment's overrides), one sentence per environment."""
    environments = list(Environment.objects.order_by("order", "name"))
    if not environments:
        problem = config_problem(runtime=runtime, layers=[default_config])
        return [problem] if problem else []
    problems = []
    for environment in environments:
        problem = config_problem(
            runtime=runtime,
            layers=[
                default_config,
                environment.config_overrides,
                _target_overrides(service_id=service_id, environment_id=environment.pk),
            ],
            environment=environment.name,
        )
        if problem:
            problems.append(f"In {environment.name}: {problem}")
    return problems


def environment_config_problems(
    *,
    config_overrides: Mapping | None,
    environment_id: int | None = None,
    environment_name: str = "",
) -> list[str]:
    """Problems an environment's overrides would give each service's releases there."""
    problems = []
    for service in Service.objects.order_by("name"):
        problem = config_problem(
            runtime=service.runtime,
            layers=[
                service.default_config,
                config_overrides,
                _target_overrides(service_id=service.pk, environment_id=environment_id),
            ],
            environment=environment_name,
        )
        if problem:
            problems.append(f"For {service.name}: {problem}")
    return problems


def target_config_problem(
    *, service: Service, environment: Environment, config_overrides: Mapping | None
) -> str | None:
    """The problem one service's overrides in one environment would give its releases."""
    return config_problem(
        runtime=service.runtime,
        layers=[service.default_config, environment.config_overrides, config_overrides],
        environment=environment.name,
    )
