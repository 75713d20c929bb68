"""Canary analysis: is a candidate revision as good as the stable one, on the same window?

The engine the progressive-delivery step controller (issue #14) calls between steps:

- ``thresholds``: per-service limits with documented defaults, parsed from a service's
  config dict;
- ``checks``: pure functions, one per check, candidate against stable -> ``CheckResult``;
- ``verdict``: the checks combined into one pass / fail / inconclusive;
- ``queries`` + ``reader``: the default PromQL per runtime (overridable) and the reader that
  runs it over one window for both revisions and hands the checks their inputs.

Nothing here writes to the database: storing, showing and auditing verdicts belong to the
caller. See docs/analysis.md.
"""

from __future__ import annotations

from apps.metrics.analysis.checks import (
    CheckResult,
    Histogram,
    check_agreement,
    check_cost_per_1k,
    check_error_rate,
    check_latency_p95,
    check_output_psi,
    histogram_quantile,
)
from apps.metrics.analysis.inputs import AnalysisInputs, RevisionInputs
from apps.metrics.analysis.queries import resolve_queries
from apps.metrics.analysis.reader import AnalysisReader
from apps.metrics.analysis.run import Analysis, analysis_run
from apps.metrics.analysis.thresholds import ThresholdError, Thresholds
from apps.metrics.analysis.verdict import Verdict, analyse, combine

__all__ = [
    "Analysis",
    "AnalysisInputs",
    "AnalysisReader",
    "CheckResult",
    "Histogram",
    "RevisionInputs",
    "ThresholdError",
    "Thresholds",
    "Verdict",
    "analyse",
    "analysis_run",
    "check_agreement",
    "check_cost_per_1k",
    "check_error_rate",
    "check_latency_p95",
    "check_output_psi",
    "combine",
    "histogram_quantile",
    "resolve_queries",
]
