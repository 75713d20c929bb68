"""PromQL templates: which one applies to a target, and filling one in.

Templates come in layers, the most specific winning family by family:

1. ``DEFAULT_PROMQL`` (apps.metrics.conf; documented in docs/metrics.md),
2. ``METRICS_PROMQL``: replaces defaults everywhere,
3. ``METRICS_PROMQL_OVERRIDES["<environment>/*"]``,
4. ``METRICS_PROMQL_OVERRIDES["*/<runtime>"]``,
5. ``METRICS_PROMQL_OVERRIDES["<environment>/<runtime>"]``.

Targets of one environment whose templates come out identical share one query, so the
number of queries depends on environments and distinct templates, never on services.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from string import Template

from apps.metrics import conf
from apps.metrics.sources.base import MetricsConfigError

FAMILIES = ("latency", "error_rate", "request_rate", "prediction_scores")
PLACEHOLDERS = ("environment", "window", "quantile")
_KEY = re.compile(r"(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)/(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)")


@dataclass(frozen=True)
class PromqlTemplate:
    family: str
    text: str
    origin: str  # where it came from, as a person would look it up: a setting and key

    def render(self, **values: str) -> str:
        try:
            return Template(self.text).substitute(values)
        except KeyError as exc:
            raise MetricsConfigError(
                f"The PromQL template {self.origin} uses ${exc.args[0]}, which Slipway does "
                f"not fill in; use {', '.join('$' + p for p in PLACEHOLDERS)}."
            ) from None
        except ValueError as exc:
            raise MetricsConfigError(
                f"The PromQL template {self.origin} has a '$' that is not a placeholder "
                f"({exc}); write $$ for a literal dollar sign."
            ) from None


def _check_overrides(overrides) -> None:
    if not isinstance(overrides, dict):
        raise MetricsConfigError(
            "METRICS_PROMQL_OVERRIDES must map '<environment>/<runtime>' (either may be *) "
            "to {family: template}."
        )
    for key, families in overrides.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise MetricsConfigError(
                f"METRICS_PROMQL_OVERRIDES key {key!r} is not '<environment>/<runtime>' "
                "(either part may be *), e.g. 'prod/*' or '*/kserve-sklearn'."
            )
        _check_families(families, f"METRICS_PROMQL_OVERRIDES[{key!r}]")


def _check_families(families, where: str) -> None:
    if not isinstance(families, dict):
        raise MetricsConfigError(f"{where} must map a metric family to a PromQL template.")
    for family, text in families.items():
        if family not in FAMILIES:
            raise MetricsConfigError(
                f"{where} names the metric family {family!r}; the families are "
                f"{', '.join(FAMILIES)}."
            )
        if not isinstance(text, str) or not text.strip():
            raise MetricsConfigError(f"{where}[{family!r}] must be a non-empty PromQL string.")


class TemplateResolver:
    """Resolves templates per (environment, runtime), reading the settings once."""

    def __init__(self) -> None:
        base = conf.get("METRICS_PROMQL") or {}
        _check_families(base, "METRICS_PROMQL")
        self.overrides = conf.get("METRICS_PROMQL_OVERRIDES") or {}
        _check_overrides(self.overrides)
        self.base = {
            family: PromqlTemplate(family, text, f"(default {family!r})")
            for family, text in conf.DEFAULT_PROMQL.items()
        }
        for family, text in base.items():
            self.base[family] = PromqlTemplate(family, text, f"METRICS_PROMQL[{family!r}]")
        self._cache: dict[tuple[str, str], dict[str, PromqlTemplate]] = {}

    def for_target(self, environment: str, runtime: str) -> dict[str, PromqlTemplate]:
        key = (environment, runtime)
        if key not in self._cache:
            resolved = dict(self.base)
            for layer in (f"{environment}/*", f"*/{runtime}", f"{environment}/{runtime}"):
                for family, text in (self.overrides.get(layer) or {}).items():
                    resolved[family] = PromqlTemplate(
                        family, text, f"METRICS_PROMQL_OVERRIDES[{layer!r}][{family!r}]"
                    )
            self._cache[key] = resolved
        return self._cache[key]
