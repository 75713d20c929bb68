"""The private core every release transition goes through: lock the row, check the
source state, write the new state and its audit row in the caller's transaction.
Also the text cleaning every action applies to what people type."""

from __future__ import annotations

from django.conf import settings

from apps.audit.services import audit_record
from apps.core.errors import Conflict, DomainError
from apps.gitops.validate import secret_findings
from apps.releases.models import RELEASE_TRANSITIONS, Release
from apps.releases.notify import release_notify_moved
from apps.releases.rendering import control_plane_secrets

# Row locks on releases: only the release rows (not the service and environment rows a
# select_related joins in), and FOR NO KEY UPDATE, which a concurrent insert's foreign-key
# check (KEY SHARE, taken at COMMIT: Django's foreign keys are deferred) does not wait
# for. With a plain FOR UPDATE over the join, a submission held the environment row and
# waited for the audit chain lock while a creation held that lock and waited, at COMMIT,
# for the environment row: a deadlock, found under load (tests/hardening/test_lock_order.py).
LOCK = {"no_key": True, "of": ("self",)}


def _locked(release: Release) -> Release:
    """Re-read the release under a row lock; every transition starts here."""
    return (
        Release.objects.select_for_update(**LOCK)
        .select_related("service", "environment")
        .get(pk=release.pk)
    )


def _check_transition(release: Release, to_state: str, *, doing: str) -> None:
    if to_state not in RELEASE_TRANSITIONS[release.state]:
        raise Conflict(
            f"Cannot {doing} release #{release.pk}: it is {release.get_state_display().lower()}."
        )


def _move(
    release: Release,
    to_state: str,
    *,
    actor=None,
    system_actor=None,
    action: str,
    fields: dict | None = None,
    note: dict | None = None,
) -> None:
    """Write the new state (plus ``fields``) and its audit row. Caller holds the row lock.

    The transition table is checked here too, so no caller can write a move the state
    machine does not allow (callers check first to refuse with their own wording).
    """
    _check_transition(release, to_state, doing=action.removeprefix("release."))
    before = release.state
    release.state = to_state
    changed = ["state"]
    for name, value in (fields or {}).items():
        setattr(release, name, value)
        changed.append(name)
    release.save(update_fields=changed)
    audit_record(
        actor=actor,
        system_actor=system_actor,
        action=action,
        target_type="release",
        target_id=release.pk,
        before={"state": before},
        after={"state": to_state, **(note or {})},
    )
    # The outbox row for whoever should hear about it, in this same transaction.
    release_notify_moved(release, before=before, after=to_state, note=note or {})


def _clean_text(value: str, *, field: str) -> str:
    value = (value or "").strip()
    limit = settings.RELEASE_TEXT_MAX_LENGTH
    if len(value) > limit:
        raise DomainError(
            f"The {field} is {len(value)} characters; keep it under {limit}.",
            field_errors={field: [f"at most {limit} characters"]},
        )
    if "\x00" in value:
        raise DomainError(f"The {field} contains a NUL character.", field_errors={field: ["NUL"]})
    return value


def _committed_text(value: str, *, field: str) -> str:
    """Clean text that will be committed to the GitOps repository (a reason goes into the
    commit message and the metadata file), refusing what looks like a secret there and
    then, rather than failing the deploy later. Found by
    tests/hardening/test_security_gates.py; the deploy checks again (deploy.py)."""
    value = _clean_text(value, field=field)
    found = secret_findings(value, control_plane_secrets())
    if found:
        raise DomainError(
            f"The {field} contains what looks like {found[0]}; it would be committed to "
            "the GitOps repository. Leave it out.",
            field_errors={field: ["looks like a secret"]},
        )
    return value
