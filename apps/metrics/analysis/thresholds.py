"""Per-service analysis thresholds, with defaults an ML engineer can leave alone.

A service's config holds them as a plain dict (``{"latency_p95_ratio_max": 1.3, ...}``);
``Thresholds.from_dict`` checks every key and value and names the key in its message,
since the person reading it typed that key. Keys left out keep the defaults below.

Why these defaults:

- p95 latency ratio 1.2: tail latency on the same traffic window is stable to within
  ~10% between two copies of one model; 20% more is a real regression, not noise.
- error rate <= 1% absolute *and* <= 1.5 x stable + 0.5 percentage points: the absolute
  limit catches a candidate that fails on its own, the relative one a candidate that
  fails more than the stable on the same traffic. The floor keeps a stable at 0 errors
  from failing a candidate for its first stray error (1 in 200 requests is 0.5%).
- cost per 1,000 predictions ratio 1.25: a bigger model may cost more; a quarter more
  for the same predictions needs a person's yes.
- output PSI <= 0.2 (0.1 to 0.2 "watch", noted in the message but passing): the usual
  credit-scoring rule of thumb, tightened from 0.25 because candidate and stable see the
  *same* inputs here, so any shift is the model's doing.
- agreement >= 0.95 for classifiers: on mirrored requests, at most 1 in 20 different
  answers before a person looks.
- minimum samples: 200 requests per side for latency and errors (a p95 from fewer is a
  handful of requests), 100 scored predictions per side for PSI, 100 mirrored
  comparisons for agreement. Fewer means "inconclusive", never "pass".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

from apps.core.errors import DomainError

CHECK_NAMES = ("latency_p95", "error_rate", "cost_per_1k", "output_psi", "agreement")
# Checks that must pass for an overall pass unless a service says otherwise. Cost and
# agreement need data not every cluster has (kube-state-metrics, a shadow comparer);
# where they are measured, a failure still fails the analysis.
DEFAULT_REQUIRED = ("latency_p95", "error_rate", "output_psi")


class ThresholdError(DomainError):
    """A threshold in a service's config is unknown or out of range; the message names it."""


@dataclass(frozen=True)
class Thresholds:
    latency_p95_ratio_max: float = 1.2
    error_rate_max: float = 0.01
    error_rate_ratio_max: float = 1.5
    error_rate_floor: float = 0.005
    cost_per_1k_ratio_max: float = 1.25
    psi_max: float = 0.2
    psi_watch: float = 0.1
    psi_epsilon: float = 1e-4
    agreement_min: float = 0.95
    min_requests: int = 200
    min_predictions: int = 100
    min_comparisons: int = 100
    required: tuple[str, ...] = DEFAULT_REQUIRED

    @classmethod
    def from_dict(cls, data: Mapping | None) -> Thresholds:
        """Thresholds from a service config dict; missing keys keep their defaults.

        Raises ``ThresholdError`` naming the first bad key (and every bad key in
        ``field_errors``), so a form or the API can point at it."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ThresholdError(
                "Analysis thresholds must be a mapping of name to value, e.g. "
                '{"latency_p95_ratio_max": 1.2}.'
            )
        known = {f.name: f for f in fields(cls)}
        values: dict = {}
        errors: dict[str, list[str]] = {}
        for key, raw in data.items():
            if key not in known:
                errors[str(key)] = [
                    f"Unknown analysis threshold {_shown(key)}; the thresholds are "
                    f"{', '.join(sorted(known))}."
                ]
                continue
            try:
                values[key] = _PARSERS[key](key, raw)
            except ValueError as exc:
                errors[key] = [str(exc)]
        if not errors:
            merged = {**{f: getattr(cls(), f) for f in known}, **values}
            if merged["psi_watch"] > merged["psi_max"]:
                given = "" if "psi_watch" in values else ", the default; set it too"
                errors["psi_watch"] = [
                    f"psi_watch ({merged['psi_watch']:g}{given}) must not exceed psi_max "
                    f"({merged['psi_max']:g}): the watch zone lies below the limit."
                ]
        if errors:
            first = next(iter(errors.values()))[0]
            raise ThresholdError(first, field_errors=errors)
        return cls(**values)

    def as_dict(self) -> dict:
        """JSON-ready, to store next to a verdict (which limits judged it)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["required"] = list(self.required)
        return out


def _shown(raw) -> str:
    """A value as the message quotes it: its repr, cut short (a value pasted by mistake
    may be a whole nested document)."""
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(key: str, raw) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"Analysis threshold {key!r} must be a number, not {_shown(raw)}.")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"Analysis threshold {key!r} must be a number, not {_shown(raw)}."
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"Analysis threshold {key!r} must be a finite number, not {_shown(raw)}.")
    return value


def _ratio(key: str, raw) -> float:
    value = _number(key, raw)
    if value < 1:
        raise ValueError(
            f"Analysis threshold {key!r} is a ratio candidate/stable and must be at least 1 "
            f"(1.2 allows 20% worse), not {_shown(raw)}."
        )
    return value


def _share(key: str, raw) -> float:
    value = _number(key, raw)
    if not 0 <= value <= 1:
        raise ValueError(
            f"Analysis threshold {key!r} is a share between 0 and 1 (0.01 is 1%), "
            f"not {_shown(raw)}."
        )
    return value


def _positive(key: str, raw) -> float:
    value = _number(key, raw)
    if value <= 0:
        raise ValueError(f"Analysis threshold {key!r} must be above 0, not {_shown(raw)}.")
    return value


def _count(key: str, raw) -> int:
    value = _number(key, raw)
    if value != int(value) or value < 1:
        raise ValueError(
            f"Analysis threshold {key!r} must be a whole number >= 1, not {_shown(raw)}."
        )
    return int(value)


def _required(key: str, raw) -> tuple[str, ...]:
    if isinstance(raw, str) or not isinstance(raw, list | tuple):
        raise ValueError(
            f"Analysis threshold {key!r} must be a list of check names from "
            f"{', '.join(CHECK_NAMES)}, not {_shown(raw)}."
        )
    unknown = [name for name in raw if name not in CHECK_NAMES]
    if unknown:
        raise ValueError(
            f"Analysis threshold {key!r} names unknown checks {unknown}; the checks are "
            f"{', '.join(CHECK_NAMES)}."
        )
    if not raw:
        raise ValueError(
            f"Analysis threshold {key!r} must name at least one check: an analysis that "
            "requires nothing would pass on no data."
        )
    return tuple(dict.fromkeys(raw))


_PARSERS = {
    "latency_p95_ratio_max": _ratio,
    "error_rate_max": _share,
    "error_rate_ratio_max": _ratio,
    "error_rate_floor": _share,
    "cost_per_1k_ratio_max": _ratio,
    "psi_max": _positive,
    "psi_watch": _positive,
    "psi_epsilon": _positive,
    "agreement_min": _share,
    "min_requests": _count,
    "min_predictions": _count,
    "min_comparisons": _count,
    "required": _required,
}
