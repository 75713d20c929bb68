"""The step controller of progressive delivery: judge each running step and move on.

Once per metrics poll (``apps.metrics.tasks.poll_task``), for every rollout that is
running with no commit pending, the analysis (``apps.metrics.analysis.analysis_run``)
compares the candidate with the stable release over the step's window so far, from the
step's commit to now:

- **fail** (a measured regression, at any time in the window): abort. The decision is
  recorded, then the abort commit (the stable release's files, 100% back to it) is made
  in the same pass, so it lands within one poll of the failing verdict; the candidate is
  held until a person lifts the hold with a reason;
- **pass**, once the step's ``observe`` is reached (minutes elapsed and the candidate's
  request count): the next step is decided and committed in the same pass;
- **inconclusive** (too little data for a required check): keep observing. Never
  promote on no data: after ``INCONCLUSIVE_EXTENSION`` times the step's minutes without
  a verdict the rollout pauses, saying what is missing, for a person to resume (which
  grants the extension again) or abort;
- **the metrics source is down or misconfigured**: pause with the reason; nothing is
  promoted on a guess.

The decisions are releases services (``apps.releases.services.progressive``); the commits
go through the deployer's ``rollout_commit_pending`` under the repository writer lock,
each found again by its Step-Key trailer if a worker died after the push (see
``apps.releases.services.progressive`` for why nothing is pushed twice or skipped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from apps.gitops.errors import GitOpsError
from apps.gitops.workloads import canary_revisions
from apps.metrics.analysis import Analysis, analysis_run
from apps.metrics.analysis.checks import FAIL, PASS
from apps.metrics.analysis.thresholds import ThresholdError
from apps.metrics.services.demo_analysis import demo_analysis
from apps.metrics.sources import configured_source_names
from apps.metrics.sources.base import MetricsConfigError, SourceUnavailable
from apps.releases import services
from apps.releases.cluster import cluster_reader
from apps.releases.deploy import rollout_commit_pending
from apps.releases.models import Release, ReleaseState, Rollout, RolloutState
from apps.releases.rollout import serving_object

log = logging.getLogger(__name__)

CONTROLLER = "step-controller"
# How long an inconclusive step may be observed, in multiples of its minutes (or, for
# a requests-only window, of DEFAULT_EXTENSION_MINUTES), before it pauses for a person.
INCONCLUSIVE_EXTENSION = 3
DEFAULT_EXTENSION_MINUTES = 30


@dataclass(frozen=True)
class StepDecision:
    release_id: int
    step: int
    action: str  # "advance" | "abort" | "observe" | "pause"
    verdict: str
    message: str


def rollouts_step(
    *, now: datetime | None = None, client=None, writer=None, refresher=None, workloads=None
) -> list[StepDecision]:
    """One pass: judge every running step, then make every commit decided (this pass's
    and any a crashed worker left pending). Returns the decisions. ``workloads`` reads
    serving objects (KServe's revision names); by default the configured cluster's."""
    now = now or timezone.now()
    decisions = []
    running = (
        Rollout.objects.filter(state=RolloutState.RUNNING, pending="")
        .filter(release__state=ReleaseState.DEPLOYING, step_started_at__isnull=False)
        .select_related(
            "release__service",
            "release__environment",
            "release__model_version",
            "release__rollout_stable__model_version",
        )
        .order_by("pk")
    )
    reader = None  # opened for the first KServe rollout, closed after the pass
    try:
        for rollout in running:
            if workloads is None and reader is None and _is_kserve(rollout.release):
                reader = cluster_reader()
                workloads = getattr(reader, "workloads", None)
            try:
                decisions.append(
                    rollout_judge(rollout=rollout, now=now, client=client, workloads=workloads)
                )
            except Exception:  # one rollout's trouble must not stop the others
                log.exception("step controller failed on release #%s", rollout.release_id)
    finally:
        if reader is not None:
            reader.close()
    # Shadow evaluations of releases waiting for approval, on the same beat: a final
    # report's end commit is made below, in this pass.
    from apps.metrics.services.shadow import shadow_evaluations_step

    try:
        shadow_evaluations_step(now=now, client=client)
    except Exception:  # must not keep the rollouts' commits from being made
        log.exception("the shadow evaluations could not be judged this pass")
    rollout_commit_pending(writer=writer, refresher=refresher)
    return decisions


def _is_kserve(release: Release) -> bool:
    return release.service.runtime.startswith("kserve")


def analysis_revisions(release: Release, workloads=None) -> tuple[str, str] | str:
    """(candidate, stable) as the runtime's metrics label them, or why they cannot be
    told apart (a sentence for the person reading the paused rollout)."""
    stable = release.rollout_stable
    runtime = release.service.runtime
    if runtime == "seldon":
        # Two Models behind the Experiment: the stable keeps its name.
        return f"{release.service.name}-candidate", release.service.name
    if _is_kserve(release):
        return _kserve_revisions(release, workloads)
    candidate, old = str(release.model_version.version), str(stable.model_version.version)
    if candidate == old:
        return (
            f"The candidate and the stable release both serve model version {candidate}, "
            "and their metrics are told apart by version: judge this configuration change "
            "by hand (promote now or abort)."
        )
    return candidate, old


def _kserve_revisions(release: Release, workloads) -> tuple[str, str] | str:
    """KServe (Knative mode) labels per-revision metrics with Knative revision names,
    which only the InferenceService's status knows: the candidate's latest ready
    revision and the last one rolled out at 100% (``canary_revisions``)."""
    obj = serving_object(release)
    if workloads is None or obj is None or obj.get("kind") != "InferenceService":
        return (
            "The Knative revision names of the candidate and the stable predictor cannot be "
            "read (no Kubernetes API configured), so this KServe rollout cannot be judged "
            "automatically; promote now or abort by hand."
        )
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or release.environment.name
    try:
        live = workloads.inference_service(namespace=namespace, name=metadata.get("name", ""))
    except GitOpsError as exc:
        return f"the InferenceService cannot be read ({exc}); nothing is judged without it."
    if live is None:
        return f"InferenceService {namespace}/{metadata.get('name')} does not exist yet."
    revisions = canary_revisions(live)
    if isinstance(revisions, str):
        return f"Waiting for KServe: {revisions}. Resume once the canary split is in place."
    return revisions


def _demo_analysis(release, step, candidate, stable, rollout, now) -> Analysis:
    """``METRICS_BACKEND=demo``: the step judged on the simulated cluster's figures."""
    return demo_analysis(
        release=release,
        stable_release=release.rollout_stable,
        candidate=candidate,
        stable=stable,
        analysis_config=release.rollout_analysis,
        share_percent=step.mirror_percent or step.weight,
        mirrored=bool(step.mirror_percent),
        start=rollout.step_started_at,
        end=now,
    )


def rollout_judge(*, rollout: Rollout, now: datetime, client=None, workloads=None) -> StepDecision:
    """Judge the current step of one running rollout and decide what follows."""
    release = rollout.release
    steps = services.rollout_steps_of(release)
    step = steps[rollout.step - 1]
    observe = step.observe
    revisions = analysis_revisions(release, workloads)

    def decided(action: str, verdict: str, message: str) -> StepDecision:
        return StepDecision(release.pk, step.number, action, verdict, message)

    def pause(why: str, verdict: str = "") -> StepDecision:
        services.rollout_pause(rollout=rollout, reason=why, system_actor=CONTROLLER)
        return decided("pause", verdict, why)

    if isinstance(revisions, str):
        return pause(revisions)
    candidate, stable = revisions
    try:
        if configured_source_names() == ["demo"]:
            analysis = _demo_analysis(release, step, candidate, stable, rollout, now)
        else:
            analysis = analysis_run(
                environment=release.environment.name,
                service=release.service.name,
                runtime=release.service.runtime,
                candidate=candidate,
                stable=stable,
                start=rollout.step_started_at,
                end=now,
                config=release.rollout_analysis,
                client=client,
            )
    except SourceUnavailable as exc:
        return pause(
            f"the metrics source is down ({exc}); nothing is promoted without data. "
            "Resume once Prometheus answers again."
        )
    except (MetricsConfigError, ThresholdError) as exc:
        return pause(f"the analysis cannot run: {exc}")
    verdict = analysis.verdict
    services.rollout_record_verdict(
        rollout=rollout,
        number=step.number,
        verdict=verdict.verdict,
        message=verdict.message,
        analysis=analysis.as_dict(),
    )
    if verdict.verdict == FAIL:
        reason = f"step {step.number} ({step.weight}%) failed its analysis: {verdict.message}"
        services.rollout_abort(rollout=rollout, reason=reason, system_actor=CONTROLLER)
        return decided("abort", FAIL, reason)
    elapsed = now - rollout.step_started_at
    minutes = (observe.minutes if observe else None) or 0
    requests = analysis.inputs.candidate.requests or 0
    if verdict.verdict == PASS:
        short = []
        if elapsed.total_seconds() < minutes * 60:
            short.append(f"{int(elapsed.total_seconds() // 60)} of {minutes} minutes")
        if observe and observe.requests and requests < observe.requests:
            short.append(f"{int(requests)} of {observe.requests} requests")
        if short:
            message = f"step {step.number}: passing so far; observing ({', '.join(short)})"
            services.rollout_note(rollout=rollout, message=message)
            return decided("observe", PASS, message)
        services.rollout_advance(rollout=rollout, number=step.number, verdict=PASS)
        return decided("advance", PASS, verdict.message)
    since = max(rollout.step_started_at, rollout.resumed_at or rollout.step_started_at)
    limit = INCONCLUSIVE_EXTENSION * (minutes or DEFAULT_EXTENSION_MINUTES) * 60
    if (now - since).total_seconds() >= limit:
        return pause(
            f"step {step.number} is still inconclusive after "
            f"{int((now - since).total_seconds() // 60)} minutes ({verdict.message}); "
            "not promoting on too little data. Resume to observe longer, or abort.",
            verdict.verdict,
        )
    message = f"step {step.number}: {verdict.message}; observing longer"
    services.rollout_note(rollout=rollout, message=message)
    return decided("observe", verdict.verdict, message)
