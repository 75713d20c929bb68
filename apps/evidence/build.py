"""Assembling the evidence pack of one release from what Slipway stores.

Everything here is read from the database (no git or cluster I/O), so a pack can be made
for any release, at any time, quickly. What the database does not hold is listed under
``gaps`` in the pack rather than guessed.
"""

from __future__ import annotations

import hashlib

from django.utils import timezone

from apps.audit.selectors import audit_event_list
from apps.metrics.selectors import guard_decisions, release_evidence, release_slo_events
from apps.releases.models import Release
from apps.releases.selectors import release_changes
from apps.releases.shadow_report import release_shadow_reports

GAPS = [
    "approvals: each decision carries the digest the reviewer approved (which binds the "
    "exact manifests) and, for decisions made since approver snapshots exist, what the page "
    "showed them (summary, metric comparison, staging figures); older decisions have none",
    "commits: the trailers are restated from the database; the literal commit message is in "
    "the GitOps repository under the recorded sha",
    "sync/health: Slipway keeps the latest Argo CD status per service and environment, not "
    "every observation; the audit events carry each state change",
    "analysis verdicts: the shadow evaluations before approval are in the pack; the "
    "verdicts of a rollout's steps are on the release page and in the audit events only",
]


def _at(value) -> str | None:
    return value.isoformat() if value else None


def _ref(release: Release | None) -> dict | None:
    if release is None:
        return None
    return {"id": release.pk, "uid": str(release.uid), "state": release.state}


def _release(release: Release) -> dict:
    return {
        "id": release.pk,
        "uid": str(release.uid),
        "service": release.service.name,
        "environment": release.environment.name,
        "production": release.environment.is_production,
        "kind": release.kind,
        "state": release.state,
        "reason": release.reason,
        "requested_by": release.requester_label,
        "break_glass": release.break_glass,
        "promoted_from": _ref(release.promoted_from),
        "created_at": _at(release.created_at),
        "submitted_at": _at(release.submitted_at),
        "approved_at": _at(release.approved_at),
        "deploy_started_at": _at(release.deploy_started_at),
        "live_at": _at(release.live_at),
        "ended_at": _at(release.ended_at),
        "status_message": release.status_message,
    }


def _model(release: Release) -> dict:
    mv = release.model_version
    return {
        "name": mv.name,
        "version": mv.version,
        "mlflow_run_id": mv.run_id,
        "mlflow_model_id": mv.model_id,
        "source": mv.source,
        "description": mv.description,
        "registered_by": mv.mlflow_user,
        "tags": mv.tags,
        "aliases": mv.aliases,
        "run_metrics": mv.run_metrics,
        "run_params": mv.run_params,
    }


def _manifests(release: Release) -> dict:
    changes = release_changes(release)
    return {
        "digest": release.digest,
        "files": {
            name: hashlib.sha256(text.encode()).hexdigest()
            for name, text in sorted(release.rendered_files.items())
        },
        "config": release.config,
        "diff_against": changes.against,
        "diff": changes.diff,
        "diff_error": changes.error,
    }


def _approvals(release: Release) -> list[dict]:
    return [
        {
            "approver": a.approver.get_username(),
            "role": a.role,
            "decision": a.decision,
            "comment": a.comment,
            "at": _at(a.created_at),
            "approved_digest": a.digest,
            "digest_matches_release": a.digest == release.digest,
            # What the review page showed this person when they decided (None for
            # decisions made before snapshots were kept).
            "saw": a.evidence or None,
        }
        for a in release.approvals.select_related("approver").order_by("created_at", "id")
    ]


def _commits(release: Release) -> list[dict]:
    if not release.commit_sha:
        return []
    approvers = sorted(
        a.approver.get_username() for a in release.approvals.all() if a.decision == "approve"
    )
    return [
        {
            "sha": release.commit_sha,
            "trailers": {
                "Release-Id": str(release.uid),
                "Model-Version": f"{release.model_version.name}/{release.model_version.version}",
                "Requested-By": release.requester_label,
                "Approved-By": ", ".join(approvers),
            },
        }
    ]


def _status(release: Release) -> dict:
    target = release.service.targets.filter(environment=release.environment).first()
    if target is None:
        return {}
    return {
        "sync_status": target.sync_status,
        "health_status": target.health_status,
        "health_since": _at(target.health_since),
        "synced_revision": target.synced_revision,
        "synced_revision_is_this_release": bool(release.commit_sha)
        and target.synced_revision == release.commit_sha,
        "observed_at": _at(target.status_observed_at),
        "message": target.status_message,
    }


def _slo(release: Release) -> dict:
    decision = guard_decisions([release.pk]).get(release.pk)
    return {
        "while_live": [
            {
                "metric": row.metric,
                "threshold": row.threshold,
                "samples": row.samples,
                "avg": row.avg,
                "min": row.min,
                "max": row.max,
                "polls_over": row.over,
                "status": row.status,
            }
            for row in release_evidence(release)
        ],
        "events": [
            {
                "metric": e.metric,
                "kind": e.kind,
                "value": e.value,
                "threshold": e.threshold,
                "polls": e.polls,
                "started_at": _at(e.started_at),
                "at": _at(e.time),
            }
            for e in release_slo_events([release.pk])
        ],
        "guard_decision": None
        if decision is None
        else {
            "outcome": decision.outcome,
            "metric": decision.metric,
            "value": decision.value,
            "threshold": decision.threshold,
            "reason": decision.reason,
            "rollback": _ref(decision.rollback),
        },
    }


def _rollback(release: Release) -> dict:
    return {
        "this_rolls_back": _ref(release.rolled_back_release),
        "restores": _ref(release.rollback_target),
        "rolled_back_by": [
            _ref(r) for r in Release.objects.filter(rolled_back_release=release).order_by("pk")
        ],
    }


def _audit(release: Release) -> list[dict]:
    events = audit_event_list(target=f"release:{release.pk}").order_by("id")
    return [
        {
            "id": e.id,
            "at": _at(e.created_at),
            "actor": e.actor_label,
            "action": e.action,
            "before": e.before,
            "after": e.after,
            "request_id": e.request_id,
            "hash": e.hash,
        }
        for e in events
    ]


def evidence_pack(*, release: Release) -> dict:
    """The unsigned pack of ``release``: a header and one section per kind of evidence."""
    release = Release.objects.select_related(
        "service",
        "environment",
        "model_version",
        "requested_by",
        "promoted_from",
        "rollback_target",
        "rolled_back_release",
    ).get(pk=release.pk)
    return {
        "release_id": release.pk,
        "release_uid": str(release.uid),
        "generated_at": timezone.now().isoformat(),
        "sections": {
            "release": _release(release),
            "model": _model(release),
            "manifests": _manifests(release),
            "approvals": _approvals(release),
            "commits": _commits(release),
            "status": _status(release),
            "slo": _slo(release),
            "rollback": _rollback(release),
            # Every shadow evaluation of the release before approval: verdict, numbers,
            # window, request counts and the start and end commits.
            "shadow_evaluations": release_shadow_reports(release),
            "audit_events": _audit(release),
            "gaps": GAPS,
        },
    }
