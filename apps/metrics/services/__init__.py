"""Metrics actions, one module per topic:

- ``poll``: a poll cycle (read the sources, store samples, source health and backoff);
- ``slo``: breach and recovery judging, SLO state and events;
- ``guard``: the guarded automatic rollback;
- ``rollout``: the step controller of progressive delivery;
- ``shadow``: judging shadow evaluations of releases waiting for approval;
- ``rollups``: roll-ups and retention.

Every public name is re-exported here, so ``from apps.metrics.services import ...`` keeps
working wherever it is written.
"""

from apps.metrics.services._batch import WRITE_BATCH
from apps.metrics.services.guard import GUARD_ACTOR, guard_consider
from apps.metrics.services.poll import PollResult, SourceRun, derived_readings, metrics_poll
from apps.metrics.services.rollout import StepDecision, rollout_judge, rollouts_step
from apps.metrics.services.rollups import metrics_retention, metrics_rollup
from apps.metrics.services.shadow import ShadowDecision, shadow_evaluations_step, shadow_judge
from apps.metrics.services.slo import METRICS_ACTOR, slo_judge

__all__ = [
    "GUARD_ACTOR",
    "METRICS_ACTOR",
    "WRITE_BATCH",
    "PollResult",
    "ShadowDecision",
    "SourceRun",
    "StepDecision",
    "derived_readings",
    "guard_consider",
    "metrics_poll",
    "metrics_retention",
    "metrics_rollup",
    "rollout_judge",
    "rollouts_step",
    "shadow_evaluations_step",
    "shadow_judge",
    "slo_judge",
]
