"""Approval policy: pure functions over an environment's rules and a release's decisions.

Rules: each required role needs ``min_count`` approvals from distinct people holding
that role; the requester never counts; one person fills at most one slot (their
approval is recorded under one role); any rejection rejects the release.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    role: str
    min_count: int


@dataclass(frozen=True)
class Decision:
    approver: str
    role: str
    approved: bool


@dataclass(frozen=True)
class RoleProgress:
    role: str
    required: int
    approved_by: tuple[str, ...]

    @property
    def met(self) -> bool:
        return len(self.approved_by) >= self.required

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.approved_by))


@dataclass(frozen=True)
class PolicyProgress:
    roles: tuple[RoleProgress, ...]
    rejected_by: tuple[str, ...]

    @property
    def rejected(self) -> bool:
        return bool(self.rejected_by)

    @property
    def met(self) -> bool:
        return not self.rejected and all(role.met for role in self.roles)

    @property
    def summary(self) -> str:
        if self.rejected:
            return f"rejected by {', '.join(self.rejected_by)}"
        if not self.roles:
            return "no approval required"
        parts = [f"{len(r.approved_by)}/{r.required} {r.role}" for r in self.roles]
        return ", ".join(parts)


def policy_progress(rules: Iterable[Rule], decisions: Iterable[Decision]) -> PolicyProgress:
    decisions = list(decisions)
    roles = tuple(
        RoleProgress(
            role=rule.role,
            required=rule.min_count,
            approved_by=tuple(d.approver for d in decisions if d.approved and d.role == rule.role),
        )
        for rule in sorted(rules, key=lambda r: r.role)
    )
    rejected_by = tuple(d.approver for d in decisions if not d.approved)
    return PolicyProgress(roles=roles, rejected_by=rejected_by)


def open_slots_for(*, user_roles: Iterable[str], progress: PolicyProgress) -> list[str]:
    """Roles this person could approve as: roles they hold that still need approvals."""
    held = set(user_roles)
    return [r.role for r in progress.roles if r.role in held and not r.met]
