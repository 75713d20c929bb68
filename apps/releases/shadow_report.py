"""The shadow evaluation report as people and the API read it: one dict built from the
stored evaluation (its verdict, the analysis numbers, the window, the counts, the
commits), the same on the release page, in the API, in each approval's evidence
snapshot and in the evidence pack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from apps.releases.models import ShadowEvaluation

# (check name in the analysis, label, unit): the rows reviewers read, shadow next to
# production.
REPORT_ROWS = (
    ("agreement", "Agreement with production", "rate"),
    ("output_psi", "Output PSI (shadow against production)", "psi"),
    ("latency_p95", "Latency p95", "ms"),
    ("error_rate", "Error rate", "rate"),
)


def shown(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "rate":
        return f"{100 * value:.2f}%"
    if unit == "ms":
        return f"{value:.0f} ms"
    return f"{value:.3f}"


def window_text(start: str | None, end: str | None) -> str:
    """The report's window as people read it: "2026-12-02 13:37 to 13:38 UTC (1 min)"."""
    try:
        first = datetime.fromisoformat(start).astimezone(UTC)
        last = datetime.fromisoformat(end).astimezone(UTC)
    except (TypeError, ValueError):
        return ""
    minutes = max(1, round((last - first).total_seconds() / 60))
    until = f"{last:%H:%M}" if first.date() == last.date() else f"{last:%Y-%m-%d %H:%M}"
    return f"{first:%Y-%m-%d %H:%M} to {until} UTC ({minutes} min)"


def report_rows(analysis: dict) -> list[dict]:
    checks = {c.get("name"): c for c in (analysis or {}).get("checks", [])}
    rows = []
    for name, label, unit in REPORT_ROWS:
        check = checks.get(name)
        if check is not None:
            rows.append(
                {
                    "label": label,
                    "unit": unit,
                    "shadow": shown(check.get("candidate"), unit),
                    # PSI compares the shadow's scores with production's: production is
                    # the reference, not a figure of its own.
                    "production": "reference"
                    if unit == "psi"
                    else shown(check.get("stable"), unit),
                    "verdict": check.get("verdict"),
                    "message": check.get("message"),
                }
            )
    return rows


def evaluation_report(evaluation: ShadowEvaluation, *, now=None) -> dict:
    """Everything one evaluation says, JSON-ready."""
    now = now or timezone.now()
    analysis = evaluation.analysis or {}
    minutes_left = None
    if evaluation.state == "running" and evaluation.started_at and evaluation.observe_minutes:
        ends = evaluation.started_at + timedelta(minutes=evaluation.observe_minutes)
        minutes_left = max(0, int((ends - now).total_seconds() + 59) // 60)
    return {
        "run": evaluation.run,
        "release_id": evaluation.release_id,
        "live_release_id": evaluation.live_id,
        "state": evaluation.state,
        "judged": evaluation.judged_at is not None,
        "verdict": evaluation.verdict if evaluation.judged_at else "",
        "interim_verdict": "" if evaluation.judged_at else evaluation.verdict,
        "message": evaluation.verdict_message if evaluation.judged_at else evaluation.message,
        "status": evaluation.message,
        "mirror_percent": evaluation.mirror_percent,
        "observe": {
            k: v
            for k, v in (
                ("minutes", evaluation.observe_minutes),
                ("requests", evaluation.observe_requests),
            )
            if v is not None
        },
        "minutes_left": minutes_left,
        # The same keys as a rollout's shadow step report (apps.metrics.panels): the
        # candidate is the shadow, the stable is production.
        "requests": {
            "candidate": (analysis.get("requests") or {}).get("candidate"),
            "stable": (analysis.get("requests") or {}).get("stable"),
        },
        "compared": analysis.get("compared"),
        "rows": report_rows(analysis),
        "start": analysis.get("start"),
        "end": analysis.get("end"),
        "window": window_text(analysis.get("start"), analysis.get("end")),
        "started_by": evaluation.started_by_label,
        "reason": evaluation.reason,
        "stopped_by": evaluation.stopped_by.get_username() if evaluation.stopped_by_id else None,
        "stop_reason": evaluation.stop_reason,
        "started_at": evaluation.started_at.isoformat() if evaluation.started_at else None,
        "judged_at": evaluation.judged_at.isoformat() if evaluation.judged_at else None,
        "ended_at": evaluation.ended_at.isoformat() if evaluation.ended_at else None,
        "start_commit": evaluation.start_commit_sha or None,
        "end_commit": evaluation.end_commit_sha or None,
    }


def release_shadow_reports(release) -> list[dict]:
    """Every evaluation of ``release``, newest first."""
    return [
        evaluation_report(e)
        for e in ShadowEvaluation.objects.filter(release=release)
        .select_related("stopped_by", "started_by")
        .order_by("-run")
    ]


def judged_report(release) -> dict | None:
    """The current report reviewers weigh: the latest judged run of ``release``."""
    evaluation = (
        ShadowEvaluation.objects.filter(release=release, judged_at__isnull=False)
        .select_related("stopped_by", "started_by")
        .order_by("-run")
        .first()
    )
    return evaluation_report(evaluation) if evaluation is not None else None
