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
