"""Judging shadow evaluations of releases that wait for approval.

Once per metrics poll, right after the rollout steps (``apps.metrics.tasks.poll_task``),
every running evaluation is judged with the same analysis as a rollout's shadow step
(``analysis_run``, or the simulator's figures under ``METRICS_BACKEND=demo``): the
candidate's answers to mirrored requests against the live release's on the same
window, from the start commit to now.

- **fail** (a measured regression, at any time): the report is final at once;
- **pass**, once the observe window is reached (minutes and the candidate's requests);
- **inconclusive** (too little mirrored traffic for a required check): keep observing;
  after ``INCONCLUSIVE_EXTENSION`` times the window without a verdict the report is
  final as inconclusive, saying what was missing. Never a pass on no data;
- **metrics source down or misconfigured**: keep mirroring and wait, saying why on the
  release page; nothing is judged on a guess.

A final report is stored with the release, the reviewers are notified, and the end commit
(the live release's own files) is decided in one transaction and made in the same pass
(``rollout_commit_pending``), so the mirror stops within one poll of the verdict. A
release that stops waiting for approval (rejected, cancelled, approved) ends its
evaluation the same way, without a report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from apps.gitops.traffic.capabilities import DEPLOYMENT_RUNTIMES
from apps.metrics.analysis import analysis_run
from apps.metrics.analysis.checks import FAIL, PASS
from apps.metrics.analysis.thresholds import ThresholdError
from apps.metrics.services.demo_analysis import demo_analysis
from apps.metrics.sources import configured_source_names
from apps.metrics.sources.base import MetricsConfigError, SourceUnavailable
from apps.releases import services
from apps.releases.models import ReleaseState, ShadowEvaluation, ShadowState
from apps.releases.services.shadow import shadow_autostart

log = logging.getLogger(__name__)

INCONCLUSIVE_EXTENSION = 3
DEFAULT_EXTENSION_MINUTES = 30


@dataclass(frozen=True)
class ShadowDecision:
    release_id: int
    run: int
    action: str  # "report" | "observe" | "wait" | "end"
    verdict: str
    message: str


def shadow_evaluations_step(*, now: datetime | None = None, client=None) -> list[ShadowDecision]:
    """Judge every running evaluation once; start the ones a ``required`` policy still
    owes (a release submitted while another evaluation or a deploy held its target).
    The commits decided here are made by the caller's ``rollout_commit_pending``."""
    now = now or timezone.now()
    decisions = []
    running = (
        ShadowEvaluation.objects.filter(
            state=ShadowState.RUNNING, pending="", started_at__isnull=False
        )
        .select_related(
            "release__service",
            "release__environment",
            "release__model_version",
            "live__model_version",
        )
        .order_by("pk")
    )
    for evaluation in running:
        try:
            decisions.append(shadow_judge(evaluation=evaluation, now=now, client=client))
        except Exception:  # one evaluation's trouble must not stop the others
            log.exception("shadow evaluation %s failed to be judged", evaluation.pk)
    _start_owed()
    return decisions


def _start_owed() -> None:
    """Releases waiting for approval in an environment that requires a shadow report
    and have none running or judged: start theirs once the target is free."""
    from apps.releases.models import Release

    waiting = (
        Release.objects.filter(
            state=ReleaseState.PENDING_APPROVAL, environment__shadow_evaluation="required"
        )
        .exclude(shadow_evaluations__isnull=False)
        .select_related("service", "environment", "model_version")
        .order_by("submitted_at", "pk")
    )
    for release in waiting:
        try:
            shadow_autostart(release=release)
        except Exception:
            log.exception("the owed shadow evaluation of release %s did not start", release.pk)


def _revisions(evaluation: ShadowEvaluation) -> tuple[str, str] | str:
    """(candidate, live) as the runtime's metrics label them (see the rollout's
    ``analysis_revisions``): Seldon's two Models, or the Deployment runtimes' versions."""
    release, live = evaluation.release, evaluation.live
    if release.service.runtime == "seldon":
        return f"{release.service.name}-candidate", release.service.name
    if release.service.runtime in DEPLOYMENT_RUNTIMES:
        candidate, old = str(release.model_version.version), str(live.model_version.version)
        if candidate == old:
            return f"the candidate and the live release both serve model version {candidate}"
        return candidate, old
    return f"{release.service.runtime} cannot mirror traffic"


def _analysis(evaluation: ShadowEvaluation, candidate: str, stable: str, now, client):
    release = evaluation.release
    if configured_source_names() == ["demo"]:
        return demo_analysis(
            release=release,
            stable_release=evaluation.live,
            candidate=candidate,
            stable=stable,
            analysis_config=evaluation.analysis_config,
            share_percent=evaluation.mirror_percent,
            mirrored=True,
            start=evaluation.started_at,
            end=now,
        )
    return analysis_run(
        environment=release.environment.name,
        service=release.service.name,
        runtime=release.service.runtime,
        candidate=candidate,
        stable=stable,
        start=evaluation.started_at,
        end=now,
        config=evaluation.analysis_config,
        client=client,
    )


def shadow_judge(*, evaluation: ShadowEvaluation, now: datetime, client=None) -> ShadowDecision:
    """Judge one running evaluation and decide what follows."""
    release = evaluation.release

    def decided(action: str, verdict: str, message: str) -> ShadowDecision:
        return ShadowDecision(release.pk, evaluation.run, action, verdict, message)

    if release.state != ReleaseState.PENDING_APPROVAL:
        why = (
            f"ended: release #{release.pk} is {release.get_state_display().lower()}, no "
            "longer waiting for approval"
        )
        services.shadow_decide_end(evaluation=evaluation, why=why)
        return decided("end", "", why)
    revisions = _revisions(evaluation)
    if isinstance(revisions, str):
        message = f"{revisions}: the two cannot be told apart in the metrics"
        services.shadow_record_report(
            evaluation=evaluation,
            verdict="inconclusive",
            message=message,
            analysis={},
            requests=None,
        )
        return decided("report", "inconclusive", message)
    candidate, stable = revisions
    try:
        analysis = _analysis(evaluation, candidate, stable, now, client)
    except SourceUnavailable as exc:
        message = (
            f"waiting: the metrics source is down ({exc}); the mirror keeps running and "
            "nothing is judged without data"
        )
        services.shadow_note(evaluation=evaluation, message=message)
        return decided("wait", "", message)
    except (MetricsConfigError, ThresholdError) as exc:
        message = f"waiting: the analysis cannot run ({exc}); fix the analysis config or stop"
        services.shadow_note(evaluation=evaluation, message=message)
        return decided("wait", "", message)
    verdict = analysis.verdict
    stored = analysis.as_dict()
    requests = analysis.inputs.candidate.requests
    elapsed = (now - evaluation.started_at).total_seconds()
    minutes = evaluation.observe_minutes or 0
    if verdict.verdict == FAIL:
        services.shadow_record_report(
            evaluation=evaluation,
            verdict=FAIL,
            message=verdict.message,
            analysis=stored,
            requests=requests,
        )
        return decided("report", FAIL, verdict.message)
    short = []
    if elapsed < minutes * 60:
        short.append(f"{int(elapsed // 60)} of {minutes} minutes")
    if evaluation.observe_requests and (requests or 0) < evaluation.observe_requests:
        short.append(f"{int(requests or 0)} of {evaluation.observe_requests} requests")
    if verdict.verdict == PASS and not short:
        services.shadow_record_report(
            evaluation=evaluation,
            verdict=PASS,
            message=verdict.message,
            analysis=stored,
            requests=requests,
        )
        return decided("report", PASS, verdict.message)
    if verdict.verdict != PASS and not short:
        limit = INCONCLUSIVE_EXTENSION * (minutes or DEFAULT_EXTENSION_MINUTES) * 60
        if elapsed >= limit:
            message = (
                f"not enough mirrored traffic to judge after {int(elapsed // 60)} minutes: "
                f"{verdict.message}"
            )
            services.shadow_record_report(
                evaluation=evaluation,
                verdict=verdict.verdict,
                message=message,
                analysis=stored,
                requests=requests,
            )
            return decided("report", verdict.verdict, message)
    so_far = "passing so far" if verdict.verdict == PASS else verdict.message
    message = f"running: {so_far}" + (f"; observing ({', '.join(short)})" if short else "")
    services.shadow_note(
        evaluation=evaluation,
        message=message,
        analysis=stored,
        verdict=verdict.verdict,
        requests=requests,
    )
    return decided("observe", verdict.verdict, message)
