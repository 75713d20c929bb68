"""Plotly figures for a service dashboard: one chart per metric family, SLO thresholds as
dashed lines, and a vertical marker at every release so a regression lines up with its
cause. Series come downsampled from the metrics selectors (never more than MAX_POINTS
points each), so the page stays small whatever the time range."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from apps.metrics.selectors import Series, breach_windows, chart_page_series
from apps.releases.models import Release

MAX_POINTS = 1000
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "1h"  # on call looks at what is happening now; wider ranges are a click away
BREACH_LEAD = timedelta(minutes=15)  # a breach range starts this long before the breach


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


def release_markers(
    *, service, environment, start: datetime, end: datetime, releases: list | None = None
) -> list[Release]:
    """Releases that went live between ``start`` and ``end``, oldest first. ``releases``:
    every release of the target when the caller has read them all already (a short
    history), so no query."""
    if releases is not None:
        return sorted(
            (r for r in releases if r.live_at is not None and start <= r.live_at <= end),
            key=lambda r: r.live_at,
        )
    return list(
        Release.objects.select_related("model_version", "requested_by")
        # A marker needs the version, kind, requester and time, not the manifests.
        .defer("rendered_files", "config", "config_overrides")
        .filter(service=service, environment=environment, live_at__gte=start, live_at__lte=end)
        .order_by("live_at")
    )


def _iso_times(series) -> list[str]:
    if isinstance(series, Series):
        return [t.isoformat() for t in series.datetimes()]
    return [t.isoformat() for t, _ in series]


def _values(series) -> list[float]:
    return list(series.values) if isinstance(series, Series) else [v for _, v in series]


def _slo_shapes(threshold: float, *, top: float) -> tuple[list, list]:
    """The SLO as a dashed line with the band above it tinted: values in the band breach."""
    shapes = [
        {
            "type": "rect",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "yref": "y",
            "y0": threshold,
            "y1": top,
            "fillcolor": "rgba(207,34,46,0.06)",
            "line": {"width": 0},
            "layer": "below",
        },
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "yref": "y",
            "y0": threshold,
            "y1": threshold,
            "line": {"color": "#cf222e", "dash": "dash", "width": 1},
        },
    ]
    annotations = [
        {
            "xref": "paper",
            "x": 0,
            "y": threshold,
            "yref": "y",
            "text": f"SLO {threshold:g}",
            "showarrow": False,
            "xanchor": "left",
            "yanchor": "bottom",
            "font": {"color": "#cf222e", "size": 10},
        }
    ]
    return shapes, annotations


def _breach_shapes(windows, *, end: datetime) -> tuple[list, list]:
    """Each breach window shaded across the whole chart height, labelled once."""
    shapes, annotations = [], []
    for began, ended in windows:
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "x0": began.isoformat(),
                "x1": (ended or end).isoformat(),
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "fillcolor": "rgba(207,34,46,0.12)",
                "line": {"width": 0},
                "layer": "below",
            }
        )
        annotations.append(
            {
                "xref": "x",
                "x": began.isoformat(),
                "yref": "paper",
                "y": 0,
                "xanchor": "left",
                "yanchor": "bottom",
                "showarrow": False,
                "text": "breach" if ended else "breaching",
                "font": {"color": "#cf222e", "size": 10},
            }
        )
    return shapes, annotations


def marker_label(release: Release) -> str:
    """Short on the chart ("v3", "v1 ↩" for a rollback): long labels overprint at phone
    width. The full text is the hover text and the list under the charts."""
    return f"v{release.model_version.version}" + (" ↩" if release.kind == "rollback" else "")


def marker_hover(release: Release) -> str:
    return (
        f"#{release.pk} {release.model_version} ({release.get_kind_display()}) "
        f"by {release.requester_label}, live {release.live_at:%H:%M}"
    )


def build_figure(
    spec: ChartSpec,
    *,
    series: dict[str, Series | list],
    markers: list[Release],
    threshold: float | None,
    start: datetime,
    end: datetime,
    breach_windows: list = (),
) -> dict:
    """A Plotly figure as a dict (the JSON endpoint sends it, the page embeds it). Built
    as plain dicts in Plotly's figure format rather than with ``plotly.graph_objects``:
    the objects validate every property on assignment, which cost ~85 ms per chart; tests
    check the dicts against the graph objects once."""
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
    shapes, annotations = _breach_shapes(breach_windows, end=end)
    if threshold is not None:
        highest = max((v for points in series.values() for v in _values(points)), default=threshold)
        more_shapes, more_annotations = _slo_shapes(
            threshold, top=max(highest, threshold) * 1.15 or 1
        )
        shapes += more_shapes
        annotations += more_annotations
    span = (end - start).total_seconds() or 1
    for index, release in enumerate(markers):
        when = release.live_at.isoformat()
        # Near an edge the label hangs inwards, so it is never clipped by the plot.
        share = (release.live_at - start).total_seconds() / span
        anchor = "right" if share > 0.9 else "left" if share < 0.1 else "center"
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
                # Three heights in turn above the plot: labels of releases close in time
                # stack instead of overprinting, and none is clipped by the plot edge.
                "y": 1.0 + 0.09 * (index % 3),
                "showarrow": False,
                "yanchor": "bottom",
                "xanchor": anchor,
                "font": {"size": 10, "color": "#1d2430"},
                "bgcolor": "rgba(255,255,255,0.9)",
                "text": marker_label(release),
                "hovertext": marker_hover(release),
            }
        )
    layout = {
        "title": {"text": f"{spec.title} ({spec.unit})", "font": {"size": 14}, "x": 0.01},
        "margin": {"l": 50, "r": 20, "t": 78, "b": 40},
        "height": 300,
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
    return {"data": traces, "layout": layout}


def default_start(*, now: datetime, breach_started: datetime | None) -> datetime | None:
    """A breach on: from 15 minutes before it started (so the crossing sits in the
    middle of the chart, not in its last pixels), at most 24 h back."""
    if breach_started is None:
        return None
    return max(breach_started - BREACH_LEAD, now - RANGES["24h"])


def dashboard_figures(
    *,
    service,
    environment,
    target,
    range_key: str,
    now: datetime,
    breach_started: datetime | None = None,
    releases: list | None = None,
) -> tuple[list[dict], list[Release]]:
    """Every chart of the dashboard (spec, Plotly figure, its JSON) and the release
    markers in view. ``range_key`` "breach" starts 15 minutes before the breach.
    ``releases``: every release of the target, when the caller has them all."""
    start = default_start(now=now, breach_started=breach_started) if range_key == "breach" else None
    if start is None:
        start = now - RANGES.get(range_key, RANGES[DEFAULT_RANGE])
    markers = release_markers(
        service=service, environment=environment, start=start, end=now, releases=releases
    )
    windows = breach_windows(service=service, environment=environment, start=start, end=now)
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
        watched = {metric for metric, _ in spec.series}
        figure = build_figure(
            spec,
            series=series,
            markers=markers,
            threshold=slo.get(spec.slo) if spec.slo else None,
            start=start,
            end=now,
            breach_windows=[(b, e) for metric, b, e in windows if metric in watched],
        )
        figures.append(
            {
                "spec": spec,
                "figure": figure,
                "json": json.dumps(figure, separators=(",", ":")),
                "points": max((len(points) for points in series.values()), default=0),
                "element_id": f"chart-{spec.key}",
            }
        )
    return figures, markers
