"""A service's analysis config, ``{"thresholds": {...}, "promql": {...}}``: one parse for
both moments it matters.

- ``parse_analysis_config`` is what ``analysis_run`` judges a step with: it raises
  ``ThresholdError`` / ``MetricsConfigError``, which the step controller turns into a pause.
- ``check_analysis_config`` is the same parse at release creation (registered with
  releases, which may not import metrics): a ``DomainError`` (400) whose field paths name
  the key (``analysis.thresholds.psi_max``), so the requester fixes it before review.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from apps.core.errors import DomainError
from apps.metrics.analysis.queries import (
    PLACEHOLDERS,
    UNIT_KEY,
    AnalysisQuery,
    QuerySet,
    check_query_layer,
    resolve_queries,
)
from apps.metrics.analysis.thresholds import ThresholdError, Thresholds
from apps.metrics.sources.base import MetricsConfigError

CONFIG_KEYS = ("thresholds", "promql")
SERVICE_LAYER = "the service's analysis promql"
# A template is one PromQL expression; newlines and tabs are layout, other control
# characters (NUL among them) are a paste gone wrong that Prometheus would refuse later.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class AnalysisConfigError(MetricsConfigError):
    """The service's own analysis config is wrong; ``path`` is where (``analysis.promql``)."""

    def __init__(self, message: str, *, path: str):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class AnalysisConfig:
    thresholds: Thresholds
    queries: QuerySet


def parse_analysis_config(
    config: Mapping | None, *, environment: str, runtime: str
) -> AnalysisConfig:
    """Thresholds and resolved PromQL for one service's analysis.

    Raises ``ThresholdError`` for a threshold (naming the key), ``AnalysisConfigError`` for
    the rest of the service's config, ``MetricsConfigError`` for a bad setting."""
    config = {} if config is None else config
    if not isinstance(config, Mapping):
        raise AnalysisConfigError(
            "The service's analysis config must be a mapping with thresholds and promql, "
            'e.g. {"thresholds": {"psi_max": 0.2}}.',
            path="analysis",
        )
    unknown = sorted((key for key in set(config) - set(CONFIG_KEYS)), key=str)
    if unknown:
        raise AnalysisConfigError(
            f"The service's analysis config has unknown keys {unknown}; the keys are "
            f"{', '.join(CONFIG_KEYS)}.",
            path=f"analysis.{path_segment(unknown[0])}",
        )
    thresholds = Thresholds.from_dict(config.get("thresholds"))
    overrides = config.get("promql")
    if overrides is not None:
        _check_service_templates(overrides)
    queries = resolve_queries(environment=environment, runtime=runtime, overrides=overrides)
    return AnalysisConfig(thresholds, queries)


def _check_service_templates(overrides) -> None:
    try:
        check_query_layer(overrides, SERVICE_LAYER)
    except MetricsConfigError as exc:
        raise AnalysisConfigError(str(exc), path="analysis.promql") from None
    for family, text in overrides.items():
        if family == UNIT_KEY:
            continue
        path = f"analysis.promql.{family}"
        if _CONTROL.search(text):
            raise AnalysisConfigError(
                f"{SERVICE_LAYER}[{family!r}] contains a control character (such as NUL); "
                "write the PromQL as plain text.",
                path=path,
            )
        # Every placeholder filled in: an unknown $name or a stray $ is refused now, not
        # at the first judgement.
        try:
            AnalysisQuery(family, text, f"{SERVICE_LAYER}[{family!r}]").render(
                **{name: "x" for name in PLACEHOLDERS}
            )
        except MetricsConfigError as exc:
            raise AnalysisConfigError(str(exc), path=path) from None


def path_segment(key) -> str:
    """A key as it can appear in a field path: as typed when printable, else its repr
    (a NUL or a newline in a key is shown escaped, never passed on raw)."""
    text = str(key)
    return text if text.isprintable() and "." not in text else repr(text)


def check_analysis_config(config: Mapping | None, *, environment: str, runtime: str) -> None:
    """Refuse a bad analysis config when a release is created: a ``DomainError`` naming
    each bad key with its allowed values, field paths under ``analysis``."""
    try:
        parse_analysis_config(config, environment=environment, runtime=runtime)
    except ThresholdError as exc:
        errors = {
            f"analysis.thresholds.{path_segment(key)}": messages
            for key, messages in exc.field_errors.items()
        } or {"analysis.thresholds": [exc.message]}
        raise DomainError(
            "The analysis config was refused: "
            + " ".join(f"{path}: {messages[0]}" for path, messages in errors.items()),
            field_errors=errors,
        ) from exc
    except AnalysisConfigError as exc:
        raise DomainError(
            f"The analysis config was refused: {exc.path}: {exc}",
            field_errors={exc.path: [str(exc)]},
        ) from exc
    except MetricsConfigError as exc:
        # Slipway's own settings, not the requester's config: still refused now, since
        # every step of this release would pause on it.
        raise DomainError(
            f"The analysis cannot run with Slipway's settings: {exc} Ask an admin to fix them.",
            field_errors={"analysis": [str(exc)]},
        ) from exc
