"""The check of a release's ``analysis:`` config (thresholds, PromQL overrides), run when
the release is created, so a mistake is refused before review instead of pausing the
rollout at its first judgement.

The schema belongs to metrics: the same parse judges every step, so checking with it
here can never accept what the judgement refuses, nor refuse what it accepts. Metrics sits
above releases, which may not import it (tests/test_architecture.py), so it registers its
check here from its AppConfig.ready(), as it registers the freeze signal and its panels.
Moving the schema down instead would put metrics' checks, PromQL families and their
settings into a lower layer that has no other use for them, and leave two places to
keep in step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

# check(config, environment=<name>, runtime=<runtime value>) raises DomainError naming
# the key (field_errors by path: "analysis.thresholds.psi_max") and its allowed values.
AnalysisConfigCheck = Callable[..., None]
_checks: list[AnalysisConfigCheck] = []


def register_analysis_config_check(check: AnalysisConfigCheck) -> AnalysisConfigCheck:
    if check not in _checks:
        _checks.append(check)
    return check


def analysis_config_check(config: Mapping, *, environment: str, runtime: str) -> None:
    """Run every registered check; the first problem is raised as a ``DomainError``."""
    for check in _checks:
        check(config, environment=environment, runtime=runtime)
