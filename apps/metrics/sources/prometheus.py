"""Latency (p50/p95/p99), error rate and request rate from Prometheus.

One query per metric family per environment (per distinct template, when an override
applies to some runtimes only), aggregated ``by (service)``: 1,000 services in two
environments cost six queries, as do two services. The three latency quantiles travel in
one query, each tagged with a ``slipway_quantile`` label by ``label_replace``.

All or nothing: if any query of the cycle fails, the source raises and the poll stores
none of its readings (a half-written cycle would look like a partial outage).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from apps.metrics import conf
from apps.metrics.catalog import LATENCY_QUANTILES, Metric
from apps.metrics.sources.base import (
    MetricsConfigError,
    Reading,
    Target,
    parse_duration,
    targets_by_environment,
)
from apps.metrics.sources.promapi import (
    PrometheusClient,
    PrometheusQueryError,
    Sample,
    finite,
)
from apps.metrics.sources.templates import PromqlTemplate, TemplateResolver

QUANTILE_LABEL = "slipway_quantile"
FAMILY_METRIC = {"error_rate": Metric.ERROR_RATE, "request_rate": Metric.REQUEST_RATE}


def client_from_conf() -> PrometheusClient:
    return PrometheusClient(
        conf.get("PROMETHEUS_URL"),
        timeout=conf.get("PROMETHEUS_TIMEOUT_SECONDS"),
        token=conf.get("PROMETHEUS_TOKEN"),
        verify_tls=conf.get("PROMETHEUS_VERIFY_TLS"),
    )


def window_from_conf(name: str) -> tuple[str, int]:
    text = conf.get(name)
    try:
        return text, parse_duration(text)
    except ValueError as exc:
        raise MetricsConfigError(f"{name}={text!r}: {exc}") from None


def grouped_queries(
    targets: Sequence[Target], families: Sequence[str], resolver: TemplateResolver
) -> list[tuple[str, PromqlTemplate, set[str]]]:
    """(environment, template, services) for every query the cycle needs."""
    groups: dict[tuple[str, str, str], tuple[PromqlTemplate, set[str]]] = {}
    for environment, members in sorted(targets_by_environment(targets).items()):
        for target in members:
            templates = resolver.for_target(environment, target.runtime)
            for family in families:
                template = templates[family]
                key = (environment, family, template.text)
                if key not in groups:
                    groups[key] = (template, set())
                groups[key][1].add(target.service)
    return [(env, template, services) for (env, _, _), (template, services) in groups.items()]


def run_query(
    client: PrometheusClient, template: PromqlTemplate, query: str, *, environment: str, at
) -> list[Sample]:
    try:
        return client.query(query, at=at)
    except PrometheusQueryError as exc:
        raise MetricsConfigError(
            f"Prometheus refused the PromQL template {template.origin} for environment "
            f"{environment!r}: {exc.message} (errorType {exc.error_type}). "
            f"The query was: {query}"
        ) from None


def by_service(
    samples: list[Sample], template: PromqlTemplate, *, environment: str, extra: str = ""
) -> dict[tuple[str, str], float]:
    """{(service, extra label value): value}; a template that does not aggregate by
    service (no label, or two series for one service) is a configuration error."""
    out: dict[tuple[str, str], float] = {}
    for labels, value in samples:
        service = labels.get("service")
        if not service:
            raise MetricsConfigError(
                f"The PromQL template {template.origin} returned a series without a "
                f"'service' label in environment {environment!r} ({labels}); aggregate "
                "with `by (service)`."
            )
        key = (service, labels.get(extra, "") if extra else "")
        if key in out:
            raise MetricsConfigError(
                f"The PromQL template {template.origin} returned more than one series for "
                f"service {service!r} in environment {environment!r}; aggregate with "
                "`sum by (service)` so each service has one."
            )
        out[key] = value
    return out


class PrometheusSource:
    name = "prometheus"
    families = ("latency", "error_rate", "request_rate")

    def __init__(self, client: PrometheusClient, *, window: str = "5m", window_seconds: int = 300):
        self.client = client
        self.window = window
        self.window_seconds = window_seconds
        self.requests_sent = 0

    @classmethod
    def from_conf(cls) -> PrometheusSource:
        window, seconds = window_from_conf("METRICS_REQUEST_WINDOW")
        return cls(client_from_conf(), window=window, window_seconds=seconds)

    def poll(self, targets: Sequence[Target], *, at: datetime) -> list[Reading]:
        resolver = TemplateResolver()
        before = self.client.requests_sent
        readings: list[Reading] = []
        try:
            for environment, template, services in grouped_queries(
                targets, self.families, resolver
            ):
                readings += self._family(environment, template, services, at)
        finally:
            self.requests_sent = self.client.requests_sent - before
        return readings

    def _family(self, environment, template, services, at) -> list[Reading]:
        if template.family == "latency":
            parts = [
                f'label_replace({template.render(environment=environment, window=self.window, quantile=q)}, "{QUANTILE_LABEL}", "{q}", "", "")'  # noqa: E501
                for q in LATENCY_QUANTILES
            ]
            query = " or ".join(parts)
            samples = run_query(self.client, template, query, environment=environment, at=at)
            values = by_service(samples, template, environment=environment, extra=QUANTILE_LABEL)
            metric_for = LATENCY_QUANTILES
        else:
            query = template.render(environment=environment, window=self.window, quantile="")
            samples = run_query(self.client, template, query, environment=environment, at=at)
            values = by_service(samples, template, environment=environment)
            metric_for = {"": FAMILY_METRIC[template.family]}
        readings = []
        for (service, label), value in values.items():
            # NaN: no traffic in the window (histogram_quantile of nothing, 0/0). No
            # traffic means no latency and no error rate, not a latency of zero.
            if service not in services or label not in metric_for or not finite(value):
                continue
            readings.append(
                Reading(
                    service=service,
                    environment=environment,
                    metric=metric_for[label],
                    value=value,
                    time=at,
                    window_seconds=self.window_seconds,
                )
            )
        return readings

    def close(self) -> None:
        self.client.close()
