"""The "Service levels" panel on the release page (registered in MetricsConfig.ready()).

What reviewers and on-call need there, on one screen:
- for a promotion: the soak evidence, i.e. the source release's SLO figures while it was
  live in the environment it is promoted from;
- for a release that has been live: its own figures against its SLOs;
- breaches and recoveries while it was live, and what the auto-rollback guard decided.
"""

from __future__ import annotations

from apps.releases.models import ReleaseState
from apps.releases.panels import Panel
from apps.releases.shadow_report import report_rows


def slo_panel(release) -> Panel | None:
    from apps.metrics import selectors

    sections = []
    source = release.promoted_from
    if source is not None and source.live_at is not None:
        sections.append(
            {
                "title": f"Soak evidence: #{source.pk} in {source.environment.name}",
                "release": source,
                "rows": selectors.release_evidence(source),
            }
        )
    if release.live_at is not None:
        sections.append(
            {
                "title": "While this release was live",
                "release": release,
                "rows": selectors.release_evidence(release),
            }
        )
    related = [s["release"].pk for s in sections]
    if release.rolled_back_release_id:
        related.append(release.rolled_back_release_id)
    events = selectors.release_slo_events(related) if related else []
    decisions = selectors.guard_decisions(related) if related else {}
    if not sections and not decisions:
        return None
    live = [r for r in (release, source) if r is not None and r.state == ReleaseState.LIVE]
    return Panel(
        title="Service levels",
        template="metrics/_release_panel.html",
        context={
            "sections": sections,
            "events": events,
            "guard": decisions.get(release.pk),
            "guard_on_rolled_back": decisions.get(release.rolled_back_release_id),
            # Only news for a release whose figures are still coming in.
            "stale": selectors.stale_sources() if live else [],
        },
        order=30,
    )


# --- shadow evaluation as approval evidence (progressive delivery) ----------------------


def shadow_report(release) -> dict | None:
    """The shadow evaluation reviewers weigh: this release's own shadow step once judged,
    or, for a release still before its deploy, the latest judged shadow run of the same
    model version for the same service and environment (a shadow release of it run
    earlier in that environment). Read from the stored step verdict, so the report stays
    with the release it was measured for."""
    from apps.releases.models import ReleaseState, RolloutStep

    steps = RolloutStep.objects.filter(mirror_percent__gt=0).exclude(verdict="")
    own = steps.filter(rollout__release=release).order_by("-judged_at").first()
    before_deploy = release.state in (
        ReleaseState.DRAFT,
        ReleaseState.PENDING_APPROVAL,
        ReleaseState.APPROVED,
    )
    if own is None and before_deploy:
        own = (
            steps.filter(
                rollout__release__service_id=release.service_id,
                rollout__release__environment_id=release.environment_id,
                rollout__release__model_version_id=release.model_version_id,
            )
            .select_related("rollout__release")
            .order_by("-judged_at")
            .first()
        )
    if own is None:
        return None
    analysis = own.analysis or {}
    rows = report_rows(analysis)
    return {
        "release_id": own.rollout.release_id,
        "mirror_percent": own.mirror_percent,
        "verdict": own.verdict,
        "message": own.verdict_message,
        "rows": rows,
        "requests": analysis.get("requests") or {},
        "compared": analysis.get("compared"),
        "start": analysis.get("start"),
        "end": analysis.get("end"),
    }


def shadow_panel(release) -> Panel | None:
    """A shadow run of this version found in a rollout. A release with its own shadow
    evaluation before approval shows that one instead, live, in its status block
    (``templates/releases/_shadow_evaluation.html``)."""
    if release.shadow_evaluations.exists():
        return None
    report = shadow_report(release)
    if report is None:
        return None
    return Panel(
        title="Shadow evaluation",
        template="metrics/_shadow_panel.html",
        context={"report": report},
        order=20,
    )
