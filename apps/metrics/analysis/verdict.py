"""One verdict from the checks: what the step controller acts on.

- any check that ran and failed -> "fail" (required or not: a measured regression is a
  regression), failing checks named first;
- every required check passed -> "pass";
- otherwise "inconclusive", saying what is missing, so the controller waits or extends
  the step and a person reading it knows how much more traffic is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from apps.metrics.analysis.checks import (
    FAIL,
    INCONCLUSIVE,
    LABELS,
    PASS,
    CheckResult,
    check_agreement,
    check_cost_per_1k,
    check_error_rate,
    check_latency_p95,
    check_output_psi,
)
from apps.metrics.analysis.inputs import AnalysisInputs
from apps.metrics.analysis.thresholds import Thresholds

_ORDER = {FAIL: 0, INCONCLUSIVE: 1, PASS: 2}


@dataclass(frozen=True)
class Verdict:
    verdict: str
    checks: tuple[CheckResult, ...]  # failing first, then inconclusive, then passing
    message: str
    missing: tuple[str, ...] = ()  # required checks that neither passed nor failed

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if c.verdict == FAIL)

    def as_dict(self) -> dict:
        """JSON-ready, to store, show and audit with the step."""
        return {
            "verdict": self.verdict,
            "message": self.message,
            "missing": list(self.missing),
            "checks": [c.as_dict() for c in self.checks],
        }


def combine(results: Iterable[CheckResult], *, thresholds: Thresholds) -> Verdict:
    """The overall verdict of ``results`` under ``thresholds.required``."""
    by_name: dict[str, CheckResult] = {}
    for result in results:
        if result.name in by_name:
            raise ValueError(f"check {result.name!r} was given twice")
        by_name[result.name] = result
    ordered = tuple(sorted(by_name.values(), key=lambda c: (_ORDER.get(c.verdict, 1), c.name)))
    failed = [c for c in ordered if c.verdict == FAIL]
    if failed:
        return Verdict(FAIL, ordered, "fail: " + "; ".join(c.message for c in failed))
    missing, reasons = [], []
    for name in thresholds.required:
        result = by_name.get(name)
        if result is None:
            missing.append(name)
            reasons.append(f"{LABELS.get(name, name)} was not measured")
        elif result.verdict != PASS:
            missing.append(name)
            reasons.append(result.message)
    if missing:
        return Verdict(INCONCLUSIVE, ordered, "inconclusive: " + "; ".join(reasons), tuple(missing))
    return Verdict(PASS, ordered, "pass: " + "; ".join(c.message for c in ordered))


def run_checks(inputs: AnalysisInputs, *, thresholds: Thresholds) -> list[CheckResult]:
    """Every check on one window's inputs. Cost and agreement run only when some figure
    for them came back (or a service requires them): a cluster without a cost metric or a
    regressor without a shadow comparer should not read "not measured" on every step."""
    c, s = inputs.candidate, inputs.stable
    results = [
        check_latency_p95(candidate=c.latency_ms, stable=s.latency_ms, thresholds=thresholds),
        check_error_rate(
            candidate_requests=c.requests,
            candidate_errors=c.errors,
            stable_requests=s.requests,
            stable_errors=s.errors,
            thresholds=thresholds,
        ),
        check_output_psi(candidate=c.scores, stable=s.scores, thresholds=thresholds),
    ]
    if c.cost is not None or s.cost is not None or "cost_per_1k" in thresholds.required:
        results.append(
            check_cost_per_1k(
                candidate_cost=c.cost,
                candidate_requests=c.requests,
                stable_cost=s.cost,
                stable_requests=s.requests,
                thresholds=thresholds,
            )
        )
    if inputs.compared is not None or "agreement" in thresholds.required:
        results.append(
            check_agreement(agreed=inputs.agreed, compared=inputs.compared, thresholds=thresholds)
        )
    return results


def analyse(inputs: AnalysisInputs, *, thresholds: Thresholds) -> Verdict:
    """The verdict on one window: every applicable check, combined."""
    return combine(run_checks(inputs, thresholds=thresholds), thresholds=thresholds)
