"""Plotly figures for a service dashboard: one chart per metric family, SLO thresholds as
dashed lines, and a vertical marker at every release so a regression lines up with its
cause. Series come downsampled from the metrics selectors (never more than MAX_POINTS
points each), so the page stays small whatever the time range."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from apps.metrics.selectors import Series, chart_page_series
from apps.releases.models import Release

MAX_POINTS = 1000
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "1h"  # on call looks at what is happening now; wider ranges are a click away


@dataclass(frozen=True)
class ChartSpec:
    key: str
    title: str
    unit: str
    series: tuple[tuple[str, str], ...]  # (metric, legend label)
    slo: str | None = None  # the SLO threshold drawn on this chart


CHARTS = (
    ChartSpec(
        "latency",
        "Latency",
        "ms",
        (("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("latency_p99_ms", "p99")),
        slo="p95_latency_ms",
    ),
    ChartSpec(
        "errors",
        "Error rate",
        "fraction of requests",
        (("error_rate", "errors"),),
        slo="error_rate",
    ),
    ChartSpec("traffic", "Request rate", "requests/s", (("request_rate", "requests"),)),
    ChartSpec("cost", "Cost", "per day", (("cost_per_day", "cost/day"),), slo="cost_per_day"),
    ChartSpec("drift", "Drift", "PSI", (("drift_psi", "PSI"),), slo="drift_psi"),
)
_COLOURS = ("#1f5fbf", "#cf222e", "#9a6700")


def release_markers(*, service, environment, start: datetime, end: datetime) -> list[Release]:
    return list(
        Release.objects.select_related("model_version", "requested_by")
        .filter(service=service, environment=environment, live_at__gte=start, live_at__lte=end)
        .order_by("live_at")
    )


def _iso_times(series) -> list[str]:
    if isinstance(series, Series):
        return [t.isoformat() for t in series.datetimes()]
    return [t.isoformat() for t, _ in series]


def _values(series) -> list[float]:
    return list(series.values) if isinstance(series, Series) else [v for _, v in series]


def build_figure(
    spec: ChartSpec,
    *,
    series: dict[str, Series | list],
    markers: list[Release],
    threshold: float | None,
    start: datetime,
    end: datetime,
) -> str:
    """A Plotly figure as JSON. Built as plain dicts in Plotly's figure format rather than
    with ``plotly.graph_objects``: the objects validate every property on assignment,
    which cost ~85 ms per chart; tests check the dicts against the graph objects once."""
    traces = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": label,
            "x": _iso_times(series.get(metric, [])),
            "y": _values(series.get(metric, [])),
            "line": {"color": colour, "width": 1.6},
        }
        for (metric, label), colour in zip(spec.series, _COLOURS, strict=False)
    ]
    shapes, annotations = [], []
    if threshold is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": threshold,
                "y1": threshold,
                "line": {"color": "#cf222e", "dash": "dash", "width": 1},
            }
        )
        annotations.append(
            {
                "xref": "paper",
                "x": 1,
                "y": threshold,
                "yref": "y",
                "text": f"SLO {threshold:g}",
                "showarrow": False,
                "xanchor": "right",
                "yanchor": "bottom",
                "font": {"color": "#cf222e", "size": 10},
            }
        )
    for index, release in enumerate(markers):
        when = release.live_at.isoformat()
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "x0": when,
                "x1": when,
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "line": {"color": "#5b6676", "dash": "dot", "width": 1},
            }
        )
        annotations.append(
            {
                "xref": "x",
                "x": when,
                "yref": "paper",
                # Alternate heights so labels of releases close in time do not overprint.
                "y": 1.0 if index % 2 == 0 else 0.9,
                "showarrow": False,
                "yanchor": "bottom",
                "font": {"size": 10, "color": "#1d2430"},
                "bgcolor": "rgba(255,255,255,0.8)",
                "text": f"v{release.model_version.version} {release.get_kind_display().lower()}",
                "hovertext": (
                    f"#{release.pk} {release.model_version} "
                    f"({release.get_kind_display()}) by {release.requester_label}"
                ),
            }
        )
    layout = {
        "title": {"text": f"{spec.title} ({spec.unit})", "font": {"size": 14}},
        "margin": {"l": 50, "r": 20, "t": 50, "b": 40},
        "height": 280,
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "xaxis": {
            "range": [start.isoformat(), end.isoformat()],
            "type": "date",
            "gridcolor": "#eef1f4",
        },
        "yaxis": {"rangemode": "tozero", "gridcolor": "#eef1f4", "zerolinecolor": "#dde2e8"},
        "shapes": shapes,
        "annotations": annotations,
        "legend": {"orientation": "h", "y": -0.2},
    }
    return json.dumps({"data": traces, "layout": layout}, separators=(",", ":"))


def dashboard_figures(*, service, environment, target, range_key: str, now: datetime) -> list[dict]:
    """Every chart of the dashboard as (spec, Plotly JSON) pairs, ready for the page."""
    span = RANGES.get(range_key, RANGES[DEFAULT_RANGE])
    start = now - span
    markers = release_markers(service=service, environment=environment, start=start, end=now)
    slo = target.slo() if target is not None else {}
    # Every series of every chart in one query, as numeric arrays.
    page = chart_page_series(
        service=service,
        environment=environment,
        metrics=[metric for spec in CHARTS for metric, _ in spec.series],
        start=start,
        end=now,
        max_points=MAX_POINTS,
    )
    figures = []
    for spec in CHARTS:
        series = {metric: page[metric] for metric, _ in spec.series}
        figures.append(
            {
                "spec": spec,
                "json": build_figure(
                    spec,
                    series=series,
                    markers=markers,
                    threshold=slo.get(spec.slo) if spec.slo else None,
                    start=start,
                    end=now,
                ),
                "points": max((len(points) for points in series.values()), default=0),
                "element_id": f"chart-{spec.key}",
            }
        )
    return figures
