"""Freezes: is an environment frozen at an instant, why, and until when.

Two sources, one answer (``freeze_status``):

- **Calendar windows** (``FreezeWindow``, admin-managed): one-off (start and end) or
  recurring (an RFC 5545 RRULE expanded by python-dateutil, plus a duration), in
  wall-clock time of an IANA zone (``zoneinfo``). A window on no environment freezes
  every environment.
- **Signals**, for environments reached by promotion: conditions other apps know
  about, reported through the registry below
  (``register_freeze_signal``). Metrics sits above releases and may not be imported from
  here, so it registers its provider (an SLO breach or a drift alert in the environment)
  from ``MetricsConfig.ready()``, as it does with its release-page panel. A signal
  freeze has no end time: it lasts until the condition clears.

"Until when" is the end of the *union* of the calendar windows that cover the instant:
a window that starts before (or exactly when) another ends carries the freeze on, across
environments' and organisation-wide windows and across time zones, since every occurrence
is turned into an absolute (UTC) interval first.

The calendar arithmetic (time zones, DST, RFC 5545 rules) is in ``freeze_rules``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.utils import timezone

from apps.releases.freeze_rules import (
    HORIZON,
    FreezeRuleError,
    calendar_union,
    occurrences,
    window_check,
)
from apps.releases.models import FreezeWindow, ReleaseKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Freeze:
    """One reason an environment is frozen now."""

    kind: str  # "calendar" or "signal"
    reason: str
    scope: str  # the environment's name, or "every environment"
    starts_at: datetime | None = None
    ends_at: datetime | None = None  # None: until the signal clears
    time_zone: str = "UTC"
    window_id: int | None = None
    # A signal's end in words, from its provider: "the SLO breach clears".
    clears: str = "the alert clears"

    @property
    def describe(self) -> str:
        if self.kind == "signal":
            return f"{self.reason} (until {self.clears})"
        ends = _when(self.ends_at, self.time_zone) if self.ends_at else "?"
        return f"{self.reason} ({self.scope}, until {ends})"


@dataclass(frozen=True)
class FreezeStatus:
    """Whether releases into ``environment`` wait at ``at``, why, and until when."""

    environment: str
    at: datetime
    freezes: tuple[Freeze, ...] = ()
    # End of the union of the calendar windows covering ``at`` (None: no calendar freeze).
    calendar_until: datetime | None = None
    # The chain of windows ran past HORIZON: "until at least calendar_until".
    beyond_horizon: bool = False
    time_zone: str = "UTC"

    @property
    def frozen(self) -> bool:
        return bool(self.freezes)

    @property
    def by_signal(self) -> bool:
        return any(f.kind == "signal" for f in self.freezes)

    @property
    def until_text(self) -> str:
        """When it ends, in words: a time, or "the breach clears"."""
        calendar = ""
        if self.calendar_until is not None:
            calendar = ("at least " if self.beyond_horizon else "") + _when(
                self.calendar_until, self.time_zone
            )
        if self.by_signal:
            clears = list(dict.fromkeys(f.clears for f in self.freezes if f.kind == "signal"))
            text = " and ".join(clears)
            return text + (f", and not before {calendar}" if calendar else "")
        return calendar

    @property
    def reasons(self) -> list[str]:
        """Each reason in words; a window's own end only when it is not the freeze's end
        (the message already says that one)."""
        return [
            f"{f.reason} ({f.scope})"
            if f.kind == "calendar" and f.ends_at == self.calendar_until
            else f.describe
            for f in self.freezes
        ]

    @property
    def message(self) -> str:
        if not self.frozen:
            return f"{self.environment} is not frozen."
        reasons = "; ".join(self.reasons)
        return f"{self.environment} is frozen until {self.until_text}: {reasons}."

    def as_dict(self) -> dict:
        """The API's ``freeze`` field."""
        return {
            "environment": self.environment,
            "frozen": self.frozen,
            "until": self.calendar_until.isoformat() if self.calendar_until else None,
            "until_alert_clears": self.by_signal,
            "message": self.message if self.frozen else "",
            "reasons": [
                {
                    "kind": f.kind,
                    "reason": f.reason,
                    "scope": f.scope,
                    "starts_at": f.starts_at.isoformat() if f.starts_at else None,
                    "ends_at": f.ends_at.isoformat() if f.ends_at else None,
                }
                for f in self.freezes
            ],
        }


def _when(moment: datetime, zone: str) -> str:
    """'2026-12-07 06:00 UTC', plus the local time when the window's zone is another."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M UTC")
    if zone and zone != "UTC":
        local = moment.astimezone(ZoneInfo(zone))
        text += f" ({local:%a %H:%M} {zone})"
    return text


# --- the signal registry --------------------------------------------------------------

FreezeSignal = Callable[[object, datetime], Iterable[Freeze]]
_signals: list[FreezeSignal] = []


def register_freeze_signal(provider: FreezeSignal) -> FreezeSignal:
    """Add a provider ``(environment, at) -> freezes``: an app above releases reports a
    condition that holds promotions into an environment (metrics: SLO breaches)."""
    if provider not in _signals:
        _signals.append(provider)
    return provider


def _usable(window) -> bool:
    """A window saved around the admin's checks (a script, a zone missing from this
    machine's tz database) is left out and logged, instead of failing every page and
    the deployer."""
    try:
        window_check(window)
    except FreezeRuleError as exc:
        log.error("freeze window %s is ignored: %s", window.pk, exc)
        return False
    return True


def windows_for(environment):
    """Enabled calendar windows that apply to ``environment`` (its own and org-wide)."""
    return list(
        FreezeWindow.objects.filter(enabled=True)
        .filter(Q(environment=environment) | Q(environment__isnull=True))
        .select_related("environment")
    )


def freeze_status(environment, *, at: datetime | None = None, windows=None) -> FreezeStatus:
    """Is ``environment`` frozen at ``at`` (default now): every reason, and until when.

    ``windows`` lets a page that asks for several environments read the rows once.
    """
    at = at or timezone.now()
    if windows is None:
        windows = windows_for(environment)
    else:
        windows = [w for w in windows if w.environment_id in (None, environment.pk)]
    covering, until, beyond = calendar_union([w for w in windows if _usable(w)], at)
    freezes = [
        Freeze(
            kind="calendar",
            reason=window.reason,
            scope=window.environment.name if window.environment_id else "every environment",
            starts_at=start,
            ends_at=end,
            time_zone=window.time_zone,
            window_id=window.pk,
        )
        for window, start, end in sorted(covering, key=lambda c: (c[1], c[0].pk))
    ]
    # Signals hold promotions: an environment reached by promotion (prod) stops taking
    # changes while it is unwell. Where releases go in directly (staging) they are how a
    # fix goes forward, so a breach there does not freeze it.
    if environment.freeze_on_alerts and environment.promotes_from_id is not None:
        for provider in _signals:
            freezes.extend(provider(environment, at))
    zones = [f.time_zone for f in freezes if f.kind == "calendar"]
    return FreezeStatus(
        environment=environment.name,
        at=at,
        freezes=tuple(freezes),
        calendar_until=until,
        beyond_horizon=beyond,
        time_zone=zones[0] if zones else "UTC",
    )


def upcoming(window, *, at: datetime | None = None, count: int = 3) -> list[tuple]:
    """The next ``count`` occurrences (UTC start, end) running at or after ``at``, for the
    environments page."""
    at = at or timezone.now()
    found: list[tuple[datetime, datetime]] = []
    lo, step = at, timedelta(days=35)
    while len(found) < count and lo < at + HORIZON:
        found.extend(o for o in occurrences(window, lo, lo + step) if o not in found)
        lo += step
    return sorted(found)[:count]


def is_exempt(release) -> bool:
    """Rollbacks (manual, automatic, restores) are never frozen: they undo a change."""
    return release.kind == ReleaseKind.ROLLBACK


def any_ready_to_commit(releases) -> bool:
    """Whether any of ``releases`` (awaiting commit) is not held by a freeze: the status
    poll re-sends the deploy drain only then, instead of every period while a freeze
    holds an approved release. Once the freeze ends this turns true and the drain
    commits what was held, within one status poll."""
    frozen: dict[int, bool] = {}
    for release in releases.select_related("environment"):
        if release.state != "approved" or is_exempt(release) or release.freeze_override_reason:
            return True
        env = release.environment
        if env.pk not in frozen:
            frozen[env.pk] = freeze_status(env).frozen
        if not frozen[env.pk]:
            return True
    return False
