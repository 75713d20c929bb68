"""Who hears about a release's moves, and what they are told.

``_transitions._move`` calls ``release_notify_moved`` for every state change, inside the
transaction that makes it, so the outbox row (``apps.notifications``) commits with the
change or not at all. The recipients of "a release waits for you" are computed in one
place, ``waiting_recipients``: only people who can fill an open approval slot now.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.accounts.roles import Role, holders_q
from apps.notifications.events import EventKind
from apps.notifications.services import notification_emit
from apps.releases.models import Release, ReleaseKind, ReleaseState
from apps.releases.selectors import eligible_reviewers


def waiting_recipients(release: Release) -> list:
    """People who can fill an open approval slot of ``release`` now: a role the policy
    still needs, held for the service's team or organisation-wide, not the requester, not
    someone who decided already or trained the model where duties are separated."""
    return eligible_reviewers(release)


def oncall_recipients(team_id: int | None) -> list:
    """Everyone on call for the team ``team_id`` (on-call organisation-wide included):
    they hear about failures, breaches and rollbacks of that team's services."""
    oncall = holders_q([Role.ONCALL], team_id)
    return list(get_user_model().objects.filter(oncall).distinct().order_by("pk"))


def _label(release: Release) -> str:
    return f"{release.service.name} v{release.model_version.version} in {release.environment.name}"


def _emit(release: Release, kind: str, title: str, text: str, users) -> None:
    notification_emit(
        kind=kind,
        title=title,
        text=text,
        path=reverse("releases:detail", args=[release.pk]),
        users=users,
        team=release.service.owner_team.slug,
        context={
            "release_id": release.pk,
            "release_uid": str(release.uid),
            "service": release.service.name,
            "environment": release.environment.name,
            "model_version": release.model_version.version,
            "state": release.state,
        },
    )


def _requester(release: Release) -> list:
    return [release.requested_by] if release.requested_by_id else []


def release_notify_moved(release: Release, *, before: str, after: str, note: dict) -> None:
    """The notification for one state change, if it is one people asked to hear about."""
    rollback_started = release.kind == ReleaseKind.ROLLBACK and before == ReleaseState.DRAFT
    told = {
        ReleaseState.PENDING_APPROVAL,
        ReleaseState.REJECTED,
        ReleaseState.FAILED,
        ReleaseState.APPROVED,
        ReleaseState.LIVE,
    }
    if not rollback_started and after not in told:
        return  # deploying, superseded, cancelled...: nobody asked to hear about these
    label = _label(release)
    who = release.requested_by.username if release.requested_by_id else release.requested_by_system
    if rollback_started:
        rolled_back = release.rolled_back_release
        users = [
            *oncall_recipients(release.service.owner_team_id),
            *(_requester(rolled_back) if rolled_back else []),
        ]
        _emit(
            release,
            EventKind.ROLLBACK_STARTED,
            f"Rollback of {release.service.name} in {release.environment.name} started",
            f"{who} rolls back to v{release.model_version.version}: {release.reason}",
            users,
        )
    if after == ReleaseState.PENDING_APPROVAL:
        _emit(
            release,
            EventKind.RELEASE_WAITING,
            f"{label} waits for your approval",
            f"Requested by {who}. {release.reason}\nPolicy: {note.get('policy', '')}".strip(),
            waiting_recipients(release),
        )
    elif after == ReleaseState.APPROVED and before == ReleaseState.PENDING_APPROVAL:
        _emit(
            release,
            EventKind.RELEASE_APPROVED,
            f"{label} is approved",
            f"Policy met: {note.get('policy', '')}. It deploys next.",
            _requester(release),
        )
    elif after == ReleaseState.REJECTED:
        _emit(
            release,
            EventKind.RELEASE_REJECTED,
            f"{label} was rejected",
            f"Rejected as {note.get('role', 'reviewer')}: {note.get('comment', '')}",
            _requester(release),
        )
    elif after == ReleaseState.FAILED:
        _emit(
            release,
            EventKind.DEPLOY_FAILED,
            f"Deploy of {label} failed",
            note.get("message", "") or release.status_message,
            [*_requester(release), *oncall_recipients(release.service.owner_team_id)],
        )
    elif after == ReleaseState.LIVE and release.kind == ReleaseKind.ROLLBACK:
        rolled_back = release.rolled_back_release
        _emit(
            release,
            EventKind.ROLLBACK_LIVE,
            f"Rollback of {release.service.name} in {release.environment.name} is live",
            f"v{release.model_version.version} runs again. {release.reason}",
            [
                *oncall_recipients(release.service.owner_team_id),
                *(_requester(rolled_back) if rolled_back else []),
            ],
        )


def release_notify_auto_abort(*, release: Release, reason: str) -> None:
    """Progressive delivery aborted ``release`` on its own (analysis failed). Call it in
    the transaction that records the abort, so the notification commits with it."""
    _emit(
        release,
        EventKind.AUTO_ABORT,
        f"Progressive delivery of {_label(release)} was aborted automatically",
        reason,
        [*_requester(release), *oncall_recipients(release.service.owner_team_id)],
    )


def release_notify_shadow_report(*, release: Release, evaluation) -> None:
    """The shadow evaluation of ``release`` is judged: tell the reviewers who can fill an
    open slot now (and the requester), in the transaction that stores the report."""
    verdict = {"pass": "passed", "fail": "failed", "inconclusive": "was inconclusive"}.get(
        evaluation.verdict, evaluation.verdict
    )
    _emit(
        release,
        EventKind.SHADOW_REPORT,
        f"Shadow evaluation of {_label(release)} {verdict}",
        f"{evaluation.verdict_message}\nThe report is on the release page, with the "
        "agreement rate, output PSI, latency and errors next to production.",
        [*waiting_recipients(release), *_requester(release)],
    )
