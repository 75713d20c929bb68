"""The PromQL the analysis runs, per runtime family, and how to override it.

Each *family* of query returns one thing for one revision over the window ``[start,
end]`` (evaluated at ``end``, with ``$window`` = end - start):

==================  ============================================================  =========
family              returns                                                       shape
==================  ============================================================  =========
latency_buckets     requests per latency bucket (cumulative, as ``_bucket`` is)   by ``le``
requests            requests answered                                             one value
errors              requests answered with a server error (none: 0)               one value
cost                what the revision's pods cost over the window (currency)      one value
score_buckets       predictions per score bucket (cumulative)                     by ``le``
agreement           mirrored requests compared, split by ``agree="true|false"``   by agree
==================  ============================================================  =========

Placeholders (``string.Template``; PromQL braces need no escaping, ``$$`` is a dollar):
``$environment``, ``$service``, ``$instance`` (``<service>-<environment>``, the
``app.kubernetes.io/instance`` pod label), ``$revision`` (the revision being read),
``$candidate`` and ``$stable`` (agreement only), ``$window`` (``900s``),
``$window_hours``, ``$cpu_core_hour`` and ``$memory_gib_hour`` (``METRICS_PRICES``).
Write ``${revision}`` where a name character follows.

Which label tells the revisions apart depends on who exports the metric:

- plain Deployments (custom, fastapi, bentoml, streaming): Slipway's own metric names
  (those of ``apps.metrics.conf.DEFAULT_PROMQL``) with a ``version`` label, the pod label
  ``app.kubernetes.io/version`` that every renderer sets, copied onto the series by the
  scrape config (PodMonitor ``podTargetLabels`` or a relabel rule);
- KServe in Knative (serverless) mode: the queue-proxy metrics Knative exports for every
  revision, ``revision_app_request_latencies_bucket`` (milliseconds) and
  ``revision_app_request_count`` with ``revision_name`` (``<isvc>-predictor-00004``) and
  ``response_code_class``; KServe's own ``request_predict_seconds`` carries only
  ``model_name``, which is the same for both revisions, so it cannot split them;
- Seldon Core 2: the agent's ``seldon_model_infer_api_seconds_bucket`` (seconds) with
  ``model_internal`` = ``<model>_<Seldon's internal version>``; candidate and stable are
  two ``Model`` resources, so ``$revision`` is the Model name. Models share inference
  servers, so there is no per-model cost: the ``cost`` query is off by default.

Prediction scores and mirrored-request agreement are not exported by any serving runtime:
the default queries read ``slipway_prediction_score_bucket`` (the histogram the drift
source reads today) and ``slipway_shadow_comparisons_total``, each with the runtime's
revision label.

Overrides, the most specific winning family by family (a family set to ``""`` is off):

1. the defaults below for the runtime's family,
2. Django setting ``METRICS_ANALYSIS_PROMQL`` ({family: template}) for everything,
3. ``METRICS_ANALYSIS_PROMQL_OVERRIDES["<environment>/<runtime>"]`` (either part may be
   ``*``; ``env/*``, then ``*/runtime``, then ``env/runtime``),
4. the service's own config (``overrides=`` of ``resolve_queries``).

``latency_unit`` (``"s"`` or ``"ms"``) travels with the templates: the bucket bounds of
the latency histogram are in that unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings

from apps.metrics.sources.base import MetricsConfigError
from apps.metrics.sources.templates import PromqlTemplate, check_target_overrides, target_keys

FAMILIES = ("latency_buckets", "requests", "errors", "cost", "score_buckets", "agreement")
UNIT_KEY = "latency_unit"
UNITS = {"s": 1000.0, "ms": 1.0}  # to milliseconds
PLACEHOLDERS = (
    "environment",
    "service",
    "instance",
    "revision",
    "candidate",
    "stable",
    "window",
    "window_hours",
    "cpu_core_hour",
    "memory_gib_hour",
)

# --- defaults ------------------------------------------------------------------------------

_SLIPWAY = 'environment="$environment", service="$service", version="$revision"'
_COST_KSM = (
    # Requests, not usage (as the cost source prices them): average CPU cores and memory
    # requested by the revision's pods over the window, priced per hour, times the hours.
    '(sum(avg_over_time(kube_pod_container_resource_requests{{resource="cpu"}}[$window])'
    " * on (namespace, pod) group_left() max by (namespace, pod) (kube_pod_labels{{{pods}}}))"
    " * $cpu_core_hour"
    ' + sum(avg_over_time(kube_pod_container_resource_requests{{resource="memory"}}[$window])'
    " * on (namespace, pod) group_left() max by (namespace, pod) (kube_pod_labels{{{pods}}}))"
    " / 1073741824 * $memory_gib_hour) * $window_hours"
)
_SCORES = "sum by (le) (increase(slipway_prediction_score_bucket{{{sel}}}[$window]))"
_AGREEMENT = (
    "sum by (agree) (increase(slipway_shadow_comparisons_total{"
    'environment="$environment", service="$service", candidate="$candidate", '
    'stable="$stable"}[$window]))'
)

DEPLOYMENT_DEFAULTS: dict[str, str] = {
    UNIT_KEY: "s",
    "latency_buckets": (
        f"sum by (le) (increase(slipway_request_duration_seconds_bucket{{{_SLIPWAY}}}[$window]))"
    ),
    "requests": f"sum(increase(slipway_requests_total{{{_SLIPWAY}}}[$window]))",
    "errors": f'sum(increase(slipway_requests_total{{{_SLIPWAY}, code=~"5.."}}[$window]))',
    "cost": _COST_KSM.format(
        pods='label_app_kubernetes_io_instance="$instance", '
        'label_app_kubernetes_io_version="$revision"'
    ),
    "score_buckets": _SCORES.format(sel=_SLIPWAY),
    "agreement": _AGREEMENT,
}

_KNATIVE = 'revision_name="$revision"'
KSERVE_DEFAULTS: dict[str, str] = {
    UNIT_KEY: "ms",
    "latency_buckets": (
        f"sum by (le) (increase(revision_app_request_latencies_bucket{{{_KNATIVE}}}[$window]))"
    ),
    "requests": f"sum(increase(revision_app_request_count{{{_KNATIVE}}}[$window]))",
    "errors": (
        f'sum(increase(revision_app_request_count{{{_KNATIVE}, response_code_class="5xx"}}'
        "[$window]))"
    ),
    "cost": _COST_KSM.format(pods='label_serving_knative_dev_revision="$revision"'),
    "score_buckets": _SCORES.format(sel=_KNATIVE),
    "agreement": _AGREEMENT,
}

_SELDON = 'model_internal=~"${revision}_[0-9]+"'
SELDON_DEFAULTS: dict[str, str] = {
    UNIT_KEY: "s",
    "latency_buckets": (
        f"sum by (le) (increase(seldon_model_infer_api_seconds_bucket{{{_SELDON}}}[$window]))"
    ),
    "requests": f"sum(increase(seldon_model_infer_api_seconds_count{{{_SELDON}}}[$window]))",
    "errors": (
        f'sum(increase(seldon_model_infer_api_seconds_count{{{_SELDON}, code=~"5.."}}[$window]))'
    ),
    "cost": "",  # models share servers: no per-model cost to read
    "score_buckets": _SCORES.format(
        sel='environment="$environment", service="$service", model="$revision"'
    ),
    "agreement": _AGREEMENT,
}


def defaults_for(runtime: str) -> dict[str, str]:
    """The default templates for a runtime (``apps.gitops.runtimes.Runtime`` values)."""
    if runtime.startswith("kserve-"):
        return dict(KSERVE_DEFAULTS)
    if runtime == "seldon":
        return dict(SELDON_DEFAULTS)
    return dict(DEPLOYMENT_DEFAULTS)


# --- templates -----------------------------------------------------------------------------


class AnalysisQuery(PromqlTemplate):
    """One analysis template: the poll's template with the analysis' placeholders."""

    what = "analysis PromQL template"
    placeholders = PLACEHOLDERS


@dataclass(frozen=True)
class QuerySet:
    """The resolved templates for one (environment, runtime, service)."""

    queries: Mapping[str, AnalysisQuery | None]  # None: the family is off
    latency_unit: str = "s"

    def get(self, family: str) -> AnalysisQuery | None:
        return self.queries.get(family)

    @property
    def latency_scale(self) -> float:
        return UNITS[self.latency_unit]


def check_query_layer(layer, where: str) -> None:
    """One layer of templates ({family: PromQL}, plus latency_unit) is well formed;
    ``where`` names it in the message."""
    if not isinstance(layer, Mapping):
        raise MetricsConfigError(f"{where} must map an analysis query family to PromQL.")
    for family, text in layer.items():
        if family == UNIT_KEY:
            if text not in UNITS:
                raise MetricsConfigError(
                    f"{where}[{UNIT_KEY!r}] must be one of {', '.join(UNITS)}, not {text!r}."
                )
            continue
        if family not in FAMILIES:
            raise MetricsConfigError(
                f"{where} names the analysis query family {family!r}; the families are "
                f"{', '.join(FAMILIES)} (and {UNIT_KEY})."
            )
        if not isinstance(text, str):
            raise MetricsConfigError(
                f"{where}[{family!r}] must be a PromQL string ('' turns the family off)."
            )


def resolve_queries(
    *, environment: str, runtime: str, overrides: Mapping | None = None
) -> QuerySet:
    """The templates for a service's analysis, defaults and overrides layered (see the
    module docstring); every layer is checked and a mistake names where it is."""
    base = getattr(settings, "METRICS_ANALYSIS_PROMQL", None) or {}
    per_target = getattr(settings, "METRICS_ANALYSIS_PROMQL_OVERRIDES", None) or {}
    check_query_layer(base, "METRICS_ANALYSIS_PROMQL")
    check_target_overrides(
        per_target, setting="METRICS_ANALYSIS_PROMQL_OVERRIDES", check_layer=check_query_layer
    )
    layers: list[tuple[str, Mapping]] = [
        (f"(default for runtime {runtime!r})", defaults_for(runtime)),
        ("METRICS_ANALYSIS_PROMQL", base),
    ]
    for key in target_keys(environment, runtime):
        if key in per_target:
            layers.append((f"METRICS_ANALYSIS_PROMQL_OVERRIDES[{key!r}]", per_target[key]))
    if overrides:
        check_query_layer(overrides, "the service's analysis promql")
        layers.append(("the service's analysis promql", overrides))
    resolved: dict[str, AnalysisQuery | None] = {}
    unit = "s"
    for origin, layer in layers:
        for family, text in layer.items():
            if family == UNIT_KEY:
                unit = text
            else:
                where = origin if origin.startswith("(") else f"{origin}[{family!r}]"
                resolved[family] = AnalysisQuery(family, text, where) if text.strip() else None
    return QuerySet(resolved, unit)
