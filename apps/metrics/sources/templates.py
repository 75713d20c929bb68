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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from string import Template
from typing import ClassVar

from apps.metrics import conf
from apps.metrics.sources.base import MetricsConfigError

FAMILIES = ("latency", "error_rate", "request_rate", "prediction_scores")
PLACEHOLDERS = ("environment", "window", "quantile")
_TARGET_KEY = re.compile(r"(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)/(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)")

# --- shared by the poll's templates and the analysis' (apps.metrics.analysis.queries) ----


def fill_template(
    text: str, values: Mapping[str, str], *, what: str, origin: str, placeholders
) -> str:
    """``text`` with its ``$placeholders`` filled in (``string.Template``: PromQL braces
    need no escaping, ``$$`` is a dollar). ``what`` and ``origin`` name the template in
    the message ("The analysis PromQL template METRICS_ANALYSIS_PROMQL['requests']")."""
    try:
        return Template(text).substitute(values)
    except KeyError as exc:
        raise MetricsConfigError(
            f"The {what} {origin} uses ${exc.args[0]}, which Slipway does not fill in; "
            f"use {', '.join('$' + p for p in placeholders)}."
        ) from None
    except ValueError as exc:
        raise MetricsConfigError(
            f"The {what} {origin} has a '$' that is not a placeholder ({exc}); write $$ "
            "for a literal dollar sign."
        ) from None


def check_target_overrides(
    overrides, *, setting: str, check_layer: Callable[[object, str], None]
) -> None:
    """A ``{"<environment>/<runtime>": {family: template}}`` setting (either part may be
    ``*``): a mapping, every key of that shape, every layer checked by ``check_layer``."""
    if not isinstance(overrides, Mapping):
        raise MetricsConfigError(
            f"{setting} must map '<environment>/<runtime>' (either may be *) to "
            "{family: template}."
        )
    for key, layer in overrides.items():
        if not isinstance(key, str) or not _TARGET_KEY.fullmatch(key):
            raise MetricsConfigError(
                f"{setting} key {key!r} is not '<environment>/<runtime>' (either part may be "
                "*), e.g. 'prod/*' or '*/kserve-sklearn'."
            )
        check_layer(layer, f"{setting}[{key!r}]")


def target_keys(environment: str, runtime: str) -> tuple[str, str, str]:
    """The override keys that apply to a target, least specific first (a later one wins
    family by family)."""
    return (f"{environment}/*", f"*/{runtime}", f"{environment}/{runtime}")


# --- the poll's templates ------------------------------------------------------------------


@dataclass(frozen=True)
class PromqlTemplate:
    family: str
    text: str
    origin: str  # where it came from, as a person would look it up: a setting and key

    # What the message calls it and what it may use; the analysis' subclass has its own.
    what: ClassVar[str] = "PromQL template"
    placeholders: ClassVar[tuple[str, ...]] = PLACEHOLDERS

    def render(self, **values: str) -> str:
        return fill_template(
            self.text,
            values,
            what=self.what,
            origin=self.origin,
            placeholders=self.placeholders,
        )


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
        check_target_overrides(
            self.overrides, setting="METRICS_PROMQL_OVERRIDES", check_layer=_check_families
        )
        self.base = {
            family: PromqlTemplate(family, text, origin)
            for family, text, origin in _default_templates()
        }
        for family, text in base.items():
            self.base[family] = PromqlTemplate(family, text, f"METRICS_PROMQL[{family!r}]")
        self._cache: dict[tuple[str, str], dict[str, PromqlTemplate]] = {}

    def for_target(self, environment: str, runtime: str) -> dict[str, PromqlTemplate]:
        key = (environment, runtime)
        if key not in self._cache:
            resolved = dict(self.base)
            for layer in target_keys(environment, runtime):
                for family, text in (self.overrides.get(layer) or {}).items():
                    resolved[family] = PromqlTemplate(
                        family, text, f"METRICS_PROMQL_OVERRIDES[{layer!r}][{family!r}]"
                    )
            self._cache[key] = resolved
        return self._cache[key]


def _default_templates() -> list[tuple[str, str, str]]:
    """(family, text, origin) of the templates METRICS_PROMQL starts from: the defaults,
    or with METRICS_RECORDING_RULES the recorded series, whose windows are fixed in the
    rules file and so must be the configured ones."""
    if not conf.get("METRICS_RECORDING_RULES"):
        return [(f, text, f"(default {f!r})") for f, text in conf.DEFAULT_PROMQL.items()]
    for setting, window in conf.RECORDED_WINDOWS.items():
        if conf.get(setting) != window:
            raise MetricsConfigError(
                f"METRICS_RECORDING_RULES reads series recorded over {window}, but "
                f"{setting}={conf.get(setting)!r}. Set {setting}={window}, or change the "
                "windows in deploy/prometheus/slipway-recording-rules.yml and "
                "apps/metrics/conf.py RECORDED_WINDOWS together."
            )
    return [
        (f, text, f"(recorded {f!r}, METRICS_RECORDING_RULES)")
        for f, text in conf.RECORDED_PROMQL.items()
    ]
