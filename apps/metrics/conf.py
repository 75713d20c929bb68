"""Every setting the metrics app reads, with its default, in one place.

The rest of the app calls ``conf.get("NAME")`` and never touches ``django.conf.settings``
for these, so the app works before ``controlplane/settings.py`` wires them from the
environment, and tests can override any of them with pytest-django's ``settings``.

``controlplane/settings.py`` reads them from the environment (and schedules the
``metrics.*`` beat tasks); ``DEFAULTS`` applies to a settings module that does not.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

# The PromQL templates the Prometheus source and the drift source fill in, one per metric
# family. Placeholders (string.Template syntax, so PromQL's own braces need no escaping):
#   $environment  the Slipway environment name (pods carry it as the `environment` label)
#   $window       METRICS_REQUEST_WINDOW (latency, errors, requests) or
#                 METRICS_DRIFT_WINDOW (prediction scores)
#   $quantile     0.5, 0.95 or 0.99 (latency only)
# Each must return one instant vector with a `service` label (plus `le` for scores).
DEFAULT_PROMQL: dict[str, str] = {
    # milliseconds
    "latency": (
        "1000 * histogram_quantile($quantile, sum by (service, le) ("
        'rate(slipway_request_duration_seconds_bucket{environment="$environment"}[$window])))'
    ),
    # fraction of requests answered 5xx; 0 (not missing) when requests came but none failed
    "error_rate": (
        "(sum by (service) (rate(slipway_requests_total"
        '{environment="$environment", code=~"5.."}[$window]))'
        " or sum by (service) (rate(slipway_requests_total"
        '{environment="$environment"}[$window])) * 0)'
        " / sum by (service) (rate(slipway_requests_total"
        '{environment="$environment"}[$window]))'
    ),
    # requests per second
    "request_rate": (
        'sum by (service) (rate(slipway_requests_total{environment="$environment"}[$window]))'
    ),
    # predictions per score bucket over the window (cumulative by `le`, as Prometheus keeps it)
    "prediction_scores": (
        "sum by (service, le) (increase("
        'slipway_prediction_score_bucket{environment="$environment"}[$window]))'
    ),
}

# What METRICS_RECORDING_RULES=1 reads instead of DEFAULT_PROMQL: the series that
# deploy/prometheus/slipway-recording-rules.yml records, each the default template of its
# family evaluated by Prometheus between polls. A 10,000-service poll then asks for a few
# stored series instead of computing rates and quantiles over every raw series.
RECORDED_PROMQL: dict[str, str] = {
    # Each wrapped in a sum by the labels the source reads, over one series each: the
    # answer then carries only those labels, not the metric name and environment on
    # every series (the prediction scores are 11 series per service, 20 MB of JSON at
    # 10,000 services with them, about half that without).
    "latency": (
        "sum by (service) (service_environment:slipway_request_latency_milliseconds:"
        'quantile_rate5m{environment="$environment", quantile="$quantile"})'
    ),
    "error_rate": (
        "sum by (service) (service_environment:slipway_requests_errors:ratio_rate5m"
        '{environment="$environment"})'
    ),
    "request_rate": (
        'sum by (service) (service_environment:slipway_requests:rate5m{environment="$environment"})'
    ),
    "prediction_scores": (
        "sum by (service, le) (service_environment_le:slipway_prediction_score_bucket:"
        'increase30m{environment="$environment"})'
    ),
}
# The windows the rules file bakes in, by the setting that must agree with them.
RECORDED_WINDOWS = {"METRICS_REQUEST_WINDOW": "5m", "METRICS_DRIFT_WINDOW": "30m"}

DEFAULTS: dict[str, Any] = {
    # --- which sources run --------------------------------------------------------------
    # "prometheus": Prometheus + drift (from Prometheus) + cost; "demo": the simulator.
    "METRICS_BACKEND": "prometheus",
    "PROMETHEUS_URL": "http://127.0.0.1:9090",
    "PROMETHEUS_TIMEOUT_SECONDS": 10,
    # Optional bearer token for a Prometheus behind an authenticating proxy.
    "PROMETHEUS_TOKEN": "",
    "PROMETHEUS_VERIFY_TLS": True,
    "METRICS_POLL_SECONDS": 30,
    # --- PromQL -------------------------------------------------------------------------
    # Read the series deploy/prometheus/slipway-recording-rules.yml records
    # (RECORDED_PROMQL) instead of DEFAULT_PROMQL: for large fleets.
    "METRICS_RECORDING_RULES": False,
    # Replaces some of DEFAULT_PROMQL for everything: {"latency": "..."}.
    "METRICS_PROMQL": {},
    # Per environment and runtime: {"prod/*": {...}, "*/kserve-sklearn": {...},
    # "prod/kserve-sklearn": {...}}; the most specific key wins, family by family.
    "METRICS_PROMQL_OVERRIDES": {},
    "METRICS_REQUEST_WINDOW": "5m",
    "METRICS_DRIFT_WINDOW": "30m",
    # --- drift --------------------------------------------------------------------------
    "METRICS_DRIFT_MIN_COUNT": 100,  # fewer live predictions than this in the window: no PSI
    "METRICS_DRIFT_EPSILON": 1e-4,  # stands in for a 0 proportion in either histogram
    # --- cost ---------------------------------------------------------------------------
    # "kubernetes" (pod requests x METRICS_PRICES), "opencost" (METRICS_OPENCOST_URL) or
    # "" (no cost source).
    "METRICS_COST_BACKEND": "kubernetes",
    # Per hour. Defaults are OpenCost's on-demand defaults (USD).
    "METRICS_PRICES": {"cpu_core_hour": 0.031611, "memory_gib_hour": 0.004237, "gpu_hour": 0.95},
    "METRICS_OPENCOST_URL": "",
    # Cluster access for the cost source (the same settings the Argo CD reader uses).
    "KUBE_API_URL": "",
    "KUBE_TOKEN": "",
    "KUBE_CA_FILE": "",
    "KUBE_VERIFY_TLS": True,
    "KUBECONFIG": "",
    "CLUSTER_TIMEOUT_SECONDS": 10,
    "METRICS_OPENCOST_AGGREGATE": "label:app_kubernetes_io_instance",
    "METRICS_OPENCOST_WINDOW": "1h",
    # --- SLOs and the guard -------------------------------------------------------------
    "METRICS_SLO_BREACH_POLLS": 3,  # K: consecutive bad polls before a breach counts
    "METRICS_SLO_RECOVERY_POLLS": 3,  # consecutive good polls before a recovery counts
    # --- freshness and backoff ----------------------------------------------------------
    "METRICS_STALE_AFTER_SECONDS": None,  # None: three poll intervals
    "METRICS_BACKOFF_MAX_SECONDS": 600,
    # --- storage ------------------------------------------------------------------------
    "METRICS_RAW_RETENTION_DAYS": 14,
    "METRICS_ROLLUP_5M_RETENTION_DAYS": 90,
    "METRICS_ROLLUP_1H_RETENTION_DAYS": 730,
    "METRICS_RETENTION_BATCH": 10_000,
    "METRICS_ROLLUP_MAX_BUCKETS_PER_RUN": 288,  # one day of 5-minute buckets
    # Charts: raw samples up to this range, 5-minute roll-ups up to the next, then hourly.
    "METRICS_CHART_RAW_MAX_HOURS": 6,  # 24 h reads 5-minute roll-ups (288 per series)
    "METRICS_CHART_5M_MAX_HOURS": 24 * 8,
}


def get(name: str) -> Any:
    """The setting ``name`` if the settings module defines it, else its default here."""
    if name not in DEFAULTS:
        raise KeyError(f"{name} is not a metrics setting")
    value = getattr(settings, name, DEFAULTS[name])
    if name == "METRICS_STALE_AFTER_SECONDS" and value is None:
        return 3 * int(get("METRICS_POLL_SECONDS"))
    return value


def promql_templates() -> dict[str, str]:
    """The PromQL templates for everything, before per-target overrides."""
    return {**DEFAULT_PROMQL, **(get("METRICS_PROMQL") or {})}
