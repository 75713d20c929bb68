"""The plain-language summary at the top of the release page, for reviewers who are not
Kubernetes people: which model replaces which, what changes in the serving
configuration, how the quality metrics compare, what the soak in the earlier environment
showed and where the approvals stand. Pure functions over values the page already has;
``selectors.release_review`` gathers them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from apps.releases.policy import PolicyProgress

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_LONG_HEX = re.compile(r"[0-9a-f]{24,}", re.I)
_PLAIN_MAX = 32


@dataclass(frozen=True)
class StagingFigures:
    """The soak of the release this one promotes: where, how long against the target's
    minimum, and the SLO verdict over that time ("within", "over" or "no data")."""

    environment: str
    soaked_minutes: int
    required_minutes: int
    slo: str


@dataclass(frozen=True)
class ReviewSummary:
    model: str
    config: str
    quality: str
    staging: str
    approvals: str

    @property
    def parts(self) -> list[str]:
        return [self.model, self.config, self.quality, self.staging, self.approvals]

    @property
    def text(self) -> str:
        return "; ".join(self.parts)


def build_summary(
    *,
    to_version: str,
    from_version: str | None,
    environment: str,
    config_before: Mapping | None,
    config_after: Mapping,
    better: int,
    worse: int,
    compared: bool,
    staging: StagingFigures | None,
    progress: PolicyProgress,
) -> ReviewSummary:
    """One sentence part per question a reviewer asks, in the order they ask them."""
    if from_version is None:
        model = f"Model {to_version} (first release in {environment})"
    elif from_version == to_version:
        model = f"Model {to_version} (already live in {environment})"
    else:
        model = f"Model {from_version} -> {to_version}"
    if config_before is None:
        config = "serving configuration: new in " + environment
    else:
        config = "serving configuration: " + ", ".join(config_changes(config_before, config_after))
    if compared:
        quality = f"quality: {_count(better, 'metric')} better, {worse} worse"
    else:
        quality = "quality: nothing to compare with"
    return ReviewSummary(
        model=model,
        config=config,
        quality=quality,
        staging=_staging(staging),
        approvals=approvals_text(progress),
    )


def config_changes(before: Mapping, after: Mapping) -> list[str]:
    """What changes between two resolved serving configurations, in short phrases. The
    image is always mentioned (reviewers ask first whether the code changes); values that
    are long, paths or identifiers are only said to have changed."""
    old, new = _flatten(before), _flatten(after)
    phrases = ["image changed" if old.get("image") != new.get("image") else "image unchanged"]
    for path in sorted(set(old) | set(new)):
        if path == "image" or old.get(path) == new.get(path):
            continue
        label = path.replace(".", " ")
        a, b = old.get(path), new.get(path)
        if path not in old:
            phrases.append(f"{label} added" + (f" ({b})" if _plain(b) else ""))
        elif path not in new:
            phrases.append(f"{label} removed")
        elif _plain(a) and _plain(b):
            phrases.append(f"{label} {a} -> {b}")
        else:
            phrases.append(f"{label} changed")
    if len(phrases) == 1:
        phrases.append("nothing else changes")
    return phrases


def approvals_text(progress: PolicyProgress) -> str:
    if progress.rejected:
        return f"approvals: rejected by {', '.join(progress.rejected_by)}"
    if not progress.roles:
        return "approvals: none required"
    done = sum(min(len(r.approved_by), r.required) for r in progress.roles)
    need = sum(r.required for r in progress.roles)
    missing = [r.role for r in progress.roles if not r.met]
    tail = f" (waiting for {', '.join(missing)})" if missing else " (complete)"
    return f"approvals: {done} of {need}{tail}"


def _staging(staging: StagingFigures | None) -> str:
    if staging is None:
        return "soak: none, no earlier environment"
    where = staging.environment
    span = f"{staging.soaked_minutes} min of {staging.required_minutes} required"
    if staging.slo == "within":
        return f"{where}: within SLOs for {span}"
    if staging.slo == "over":
        return f"{where}: over an SLO during the soak ({span})"
    return f"{where}: no SLO data yet ({span})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _flatten(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, Mapping):
        flat: dict[str, object] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(node, Sequence) and not isinstance(node, str):
        return {prefix: tuple(node)} if prefix else {}
    return {prefix: node}


def _plain(value) -> bool:
    if isinstance(value, bool | int | float):
        return True
    if not isinstance(value, str) or len(value) > _PLAIN_MAX:
        return False
    return "://" not in value and not _UUID.search(value) and not _LONG_HEX.search(value)
