"""Mirror sync: bring Slipway's copy of the MLflow registry up to date.

MLflow is the source of truth. The sync only ever adds and updates rows: a version that
disappears upstream is marked ``deleted_upstream_at`` (and can no longer be released), and
when MLflow is down, slow or answers garbage the last good data stays as it was, with the
failure recorded for the UI to call the data stale. MLflow calls never run inside a
database transaction: each model is read first, then written in one short transaction.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.locks import try_advisory_lock
from apps.registry.client import (
    SCORE_BASELINE_PATH,
    ModelVersionInfo,
    RegisteredModelInfo,
    RegistryClient,
    RegistryError,
    RegistryNotFound,
    RegistryRejected,
    RegistryUnavailable,
    RunInfo,
)
from apps.registry.models import (
    ModelVersion,
    ModelVersionStatus,
    RegisteredModel,
    RegistrySyncState,
)
from apps.registry.services._alias_map import mirror_alias_map

logger = logging.getLogger(__name__)

SYNC_ACTOR = "registry-sync"
# A forced refresh (the button) re-reads the details of this many newest versions; the
# periodic full read covers the rest.
FORCED_DETAILS_NEWEST = 25
# The artifacts (MLmodel signature, score baseline) are two downloads per version and
# have no batch API: at first sync they were two thirds of all MLflow calls. Each model
# sync reads them for at most this many versions that still owe them, aliased first
# (those are deployed: drift needs their baseline), then newest (those are released next);
# every following sync (the beat runs each minute) reads the next few. A forced refresh
# reads them for its FORCED_DETAILS_NEWEST versions regardless.
ARTIFACT_READS_PER_MODEL = 3

# details_note parts about the run, as opposed to the artifacts (both share the note).
_NO_RUN = "its run no longer exists in MLflow"
_NOT_LINKED = "it is not linked to a run"
_ARTIFACTS_PENDING = "its signature and score baseline are not read yet (a coming sync reads them)"
_RUN_NOTES = frozenset({_NO_RUN, _NOT_LINKED, _ARTIFACTS_PENDING})

_LISTING_FIELDS = (
    "run_id",
    "source",
    "status",
    "status_message",
    "description",
    "tags",
    "aliases",
    "mlflow_user",
    "current_stage",
    "model_id",
    "run_link",
    "mlflow_created_at",
    "mlflow_updated_at",
)
_DETAIL_FIELDS = (
    "experiment_id",
    "run_user",
    "run_metrics",
    "run_params",
    "signature",
    "score_baseline",
    "details_synced_at",
    "details_note",
    "artifacts_synced_at",
)


def full_resync_seconds() -> int:
    """How often every version's details are read again even if nothing signalled a change.

    MLflow does not move a registered model's ``last_updated_timestamp`` for everything:
    version tags and descriptions, and metrics logged to a run after registration, change
    silently. This periodic full read is the backstop; the refresh button forces a read of
    the listing and of the newest versions' details.
    """
    return settings.REGISTRY_FULL_RESYNC_SECONDS


# --- results ------------------------------------------------------------------------------


@dataclass
class ModelChange:
    """What one model's sync changed, for the audit row and the result."""

    created: list[int] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    deleted_upstream: list[int] = field(default_factory=list)
    restored: list[int] = field(default_factory=list)
    aliases: dict | None = None  # {"before": ..., "after": ...} when they moved

    def __bool__(self) -> bool:
        return bool(
            self.created or self.updated or self.deleted_upstream or self.restored or self.aliases
        )


@dataclass
class SyncResult:
    """What a sync did. ``ok`` is False when MLflow could not be read (all or some models);
    the data that could not be read is left as it was."""

    ok: bool = True
    error: str = ""
    skipped: bool = False
    models_seen: int = 0
    models_read: list[str] = field(default_factory=list)
    models_unchanged: int = 0
    models_failed: dict[str, str] = field(default_factory=dict)
    models_missing: list[str] = field(default_factory=list)
    models_deleted_upstream: list[str] = field(default_factory=list)
    versions_created: list[str] = field(default_factory=list)
    versions_updated: list[str] = field(default_factory=list)
    versions_deleted_upstream: list[str] = field(default_factory=list)
    versions_restored: list[str] = field(default_factory=list)
    details_read: int = 0
    artifacts_read: int = 0
    warnings: list[str] = field(default_factory=list)
    calls: int = 0
    duration_seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(
            self.versions_created
            or self.versions_updated
            or self.versions_deleted_upstream
            or self.versions_restored
            or self.models_deleted_upstream
        )

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One or two sentences for a person (the refresh button's message)."""
        if self.skipped:
            return "A registry sync is already running; try again in a minute."
        parts = []
        for label, items in (
            ("new", self.versions_created),
            ("updated", self.versions_updated),
            ("deleted in MLflow", self.versions_deleted_upstream),
            ("back in MLflow", self.versions_restored),
        ):
            if items:
                parts.append(f"{label}: {', '.join(items[:10])}{' …' if len(items) > 10 else ''}")
        if self.models_deleted_upstream:
            parts.append(f"models deleted in MLflow: {', '.join(self.models_deleted_upstream)}")
        text = (
            ("Changes from MLflow — " + "; ".join(parts) + ".")
            if parts
            else ("Up to date with MLflow: nothing changed.")
        )
        if self.models_missing:
            text += f" MLflow has no registered model named {', '.join(self.models_missing)}."
        if not self.ok:
            problem = self.error or "; ".join(sorted(set(self.models_failed.values())))
            text = (
                (f"MLflow could not be read, so Slipway is showing the last data it had. {problem}")
                if not parts
                else f"{text} But: {problem}"
            )
        return text


# --- sync ---------------------------------------------------------------------------------


def registry_sync(
    *,
    client: RegistryClient | None = None,
    model_names: list[str] | None = None,
    force: bool = False,
    actor=None,
) -> SyncResult:
    """Bring Slipway's mirror of the MLflow registry up to date, incrementally.

    Why incremental: a registry holds thousands of versions and the beat task runs every
    minute. One paged listing of registered models tells which models moved (their
    ``last_updated_timestamp``); an unchanged model costs no further call. Aliases, tags
    and descriptions of registered models come with the listing and are applied for free.

    ``model_names`` limits the sync to those models (the refresh button); ``force`` re-reads
    them even if MLflow's timestamp did not move: every version's listing fields, and the
    run metrics, signature and baseline of the newest FORCED_DETAILS_NEWEST versions.
    ``actor`` is the user who asked (audit rows name them); the beat task passes none.
    Never raises for MLflow trouble: the result and the sync state record it.
    """
    client = client or RegistryClient()
    started, calls_before = time.monotonic(), client.calls
    result = SyncResult()
    if model_names is None:
        with try_advisory_lock("registry-sync:all") as acquired:
            if not acquired:
                result.skipped = True
            else:
                _sync_all(client, force=force, actor=actor, result=result)
    else:
        _sync_named(
            client, list(dict.fromkeys(model_names)), force=force, actor=actor, result=result
        )
    result.calls = client.calls - calls_before
    result.duration_seconds = round(time.monotonic() - started, 3)
    if model_names is None and not result.skipped:
        RegistrySyncState.objects.filter(pk=1).update(last_result=_result_digest(result))
    return result


def _sync_all(client: RegistryClient, *, force: bool, actor, result: SyncResult) -> None:
    now = timezone.now()
    RegistrySyncState.load()
    try:
        listing = client.list_registered_models()
        _check_unique(listing)
    except RegistryError as exc:
        _record_global_failure(exc.message, now, result)
        return
    result.models_seen = len(listing)
    known = {rm.name: rm for rm in RegisteredModel.objects.all()}
    listed = {info.name for info in listing}
    active = [rm for rm in known.values() if rm.deleted_upstream_at is None]
    vanished = [rm for rm in active if rm.name not in listed]
    if len(active) >= 2 and len(vanished) == len(active):
        # Every model gone at once is far likelier a wrong MLFLOW_TRACKING_URI (or an
        # empty store) than a real deletion; marking them all unreleasable would block
        # every rollback. Refuse and say why.
        _record_global_failure(
            f"MLflow at {client.display_uri} lists none of the {len(active)} registered "
            "models Slipway knows, so none were marked deleted. Check MLFLOW_TRACKING_URI.",
            now,
            result,
        )
        return
    for rm in vanished:
        _mark_model_deleted(rm, actor=actor, result=result)
    _sync_models(client, listing, known, force=force, actor=actor, result=result)
    RegistrySyncState.objects.filter(pk=1).update(
        last_attempt_at=now, last_success_at=now, last_error="", last_error_at=None
    )


def _sync_named(
    client: RegistryClient, names: list[str], *, force: bool, actor, result: SyncResult
) -> None:
    now = timezone.now()
    listing: list[RegisteredModelInfo] = []
    for name in names:
        try:
            listing.append(client.get_registered_model(name))
        except RegistryNotFound:
            rm = RegisteredModel.objects.filter(name=name, deleted_upstream_at__isnull=True).first()
            if rm is not None:
                _mark_model_deleted(rm, actor=actor, result=result)
            else:
                result.models_missing.append(name)
        except RegistryError as exc:
            _record_model_failure(name, exc.message, now, result)
    result.models_seen = len(listing)
    known = {rm.name: rm for rm in RegisteredModel.objects.filter(name__in=names)}
    _sync_models(client, listing, known, force=force, actor=actor, result=result)
    if result.models_failed and not result.error:
        result.error = next(iter(result.models_failed.values()))


def _sync_models(
    client: RegistryClient,
    listing: list[RegisteredModelInfo],
    known: dict[str, RegisteredModel],
    *,
    force: bool,
    actor,
    result: SyncResult,
) -> None:
    now = timezone.now()
    owed_details = set(
        ModelVersion.objects.filter(
            Q(details_synced_at__isnull=True) | Q(artifacts_synced_at__isnull=True),
            name__in=[info.name for info in listing],
            deleted_upstream_at__isnull=True,
        )
        .values_list("name", flat=True)
        .distinct()
    )
    full_read_due_before = now - timedelta(seconds=full_resync_seconds())
    unchanged: list[RegisteredModelInfo] = []
    for info in listing:
        rm = known.get(info.name)
        moved = (
            rm is None
            or rm.deleted_upstream_at is not None
            or rm.mlflow_updated_at != _when(info.last_updated_timestamp)
            or rm.mlflow_created_at != _when(info.creation_timestamp)
        )
        full_read_due = (
            rm is not None
            and rm.fully_read_at is not None
            and (rm.fully_read_at < full_read_due_before)
        )
        if not (moved or force or full_read_due or info.name in owed_details):
            unchanged.append(info)
            continue
        try:
            _sync_model(
                client,
                info,
                relist=moved or force or full_read_due,
                details="all" if full_read_due else "newest" if force else "owed",
                actor=actor,
                result=result,
            )
        except RegistryError as exc:
            _record_model_failure(info.name, exc.message, timezone.now(), result, create_from=info)
    _apply_unchanged(unchanged, known, now=now, actor=actor, result=result)


def _sync_model(
    client: RegistryClient,
    info: RegisteredModelInfo,
    *,
    relist: bool,
    details: str,
    actor,
    result: SyncResult,
) -> None:
    """Re-read one model: its versions (when ``relist``), then version details: those
    still ``"owed"``, those plus the newest few (``"newest"``, a forced refresh, kept
    short so the refresh button answers quickly), or ``"all"`` (the periodic full read).
    The runs of all of them come in one batch; artifacts are read for the forced newest
    and for ARTIFACT_READS_PER_MODEL versions that still owe them."""
    result.models_read.append(info.name)
    warnings: list[str] = []
    if relist:
        versions = client.list_model_versions(info.name)
        if len({v.version for v in versions}) != len(versions):
            raise RegistryUnavailable(f"MLflow listed a version of {info.name} twice.")
        for v in versions:
            if v.status not in ModelVersionStatus.values:
                raise RegistryUnavailable(
                    f"MLflow gave {info.name} v{v.version} an unknown status {v.status!r}."
                )
        _write_versions(info, versions, actor=actor, result=result, warnings=warnings)

    # Newest first: the versions people release, and the most useful if MLflow fails.
    rows = list(
        ModelVersion.objects.filter(name=info.name, deleted_upstream_at__isnull=True).order_by(
            "-version"
        )
    )
    newest = FORCED_DETAILS_NEWEST if details == "newest" else 0
    with_artifacts = _artifact_targets(rows, newest=newest)
    targets = [
        row
        for i, row in enumerate(rows)
        if details == "all"
        or i < newest
        or row.details_synced_at is None
        or row.pk in with_artifacts
    ]
    fetched: list[ModelVersion] = []
    failure: RegistryError | None = None
    try:
        # One batch for the model's runs, whatever their number (see RegistryClient.get_runs).
        runs = client.get_runs(row.run_id for row in targets if row.run_id)
    except RegistryError as exc:
        runs, failure, targets = {}, exc, []
    for row in targets:
        before = _details_snapshot(row) if row.details_synced_at is not None else None
        read_artifacts = failure is None and row.pk in with_artifacts
        try:
            _apply_details(client, row, runs.get(row.run_id), read_artifacts=read_artifacts)
        except RegistryError as exc:
            # MLflow stopped answering mid-way: keep the run details, owe the artifacts.
            failure = exc
            _apply_details(client, row, runs.get(row.run_id), read_artifacts=False)
        if row.artifacts_synced_at is not None and read_artifacts and failure is None:
            result.artifacts_read += 1
        fetched.append(row)
        label = f"{row.name} v{row.version}"
        changed = before is not None and before != _details_snapshot(row)
        if changed and label not in result.versions_updated:
            result.versions_updated.append(label)
    now = timezone.now()
    with transaction.atomic():
        if fetched:
            ModelVersion.objects.bulk_update(fetched, _DETAIL_FIELDS, batch_size=500)
        result.details_read += len(fetched)
        state = {"last_attempt_at": now, "warning": "; ".join(warnings)}
        if failure is None:
            state.update(last_success_at=now, last_error="", last_error_at=None)
            rm = RegisteredModel.objects.get(name=info.name)
            if details == "all" or rm.fully_read_at is None:
                state["fully_read_at"] = now
        RegisteredModel.objects.filter(name=info.name).update(**state)
    if failure is not None:
        raise failure


def registry_version_details_read(
    *, model_version: ModelVersion, client: RegistryClient | None = None
) -> ModelVersion:
    """Read one version's run details and artifacts now, and save them.

    Why: the sync reads artifacts a few versions per model per run, so an old version
    picked for a release may still owe its signature and score baseline; the release path
    (or an admin) calls this to have them before reviewers look. Raises the client's
    RegistryError when MLflow cannot answer; the row is then left as it was. No database
    transaction is open during the MLflow calls.
    """
    client = client or RegistryClient()
    runs = client.get_runs([model_version.run_id]) if model_version.run_id else {}
    _apply_details(client, model_version, runs.get(model_version.run_id), read_artifacts=True)
    ModelVersion.objects.filter(pk=model_version.pk).update(
        **{name: getattr(model_version, name) for name in _DETAIL_FIELDS}
    )
    return model_version


def _details_snapshot(row: ModelVersion) -> tuple:
    return (row.run_metrics, row.run_params, row.signature, row.score_baseline)


def _write_versions(
    info: RegisteredModelInfo,
    versions: list[ModelVersionInfo],
    *,
    actor,
    result: SyncResult,
    warnings: list[str],
) -> None:
    now = timezone.now()
    change = ModelChange()
    with audited_atomic():
        rm, _ = RegisteredModel.objects.select_for_update(no_key=True).get_or_create(name=info.name)
        rows = {row.version: row for row in ModelVersion.objects.filter(name=info.name)}
        to_create, to_update = [], []
        for v in versions:
            fields = _listing_fields(v, info.aliases)
            row = rows.get(v.version)
            if row is None:
                to_create.append(
                    ModelVersion(name=v.name, version=v.version, synced_at=now, **fields)
                )
                change.created.append(v.version)
                continue
            if (
                row.mlflow_created_at
                and fields["mlflow_created_at"]
                and row.mlflow_created_at != fields["mlflow_created_at"]
            ):
                # The number was reused (model deleted and re-created in MLflow). Releases
                # point at the old row, so it keeps describing the version they shipped.
                warnings.append(
                    f"v{v.version} was re-created in MLflow after being deleted; Slipway keeps "
                    f"its record of the old v{v.version}, so the new one cannot be released "
                    "here. Register the model under a new version or name."
                )
                if row.deleted_upstream_at is None:
                    row.deleted_upstream_at, row.aliases = now, []
                    to_update.append(row)
                    change.deleted_upstream.append(v.version)
                continue
            changed = [name for name, value in fields.items() if getattr(row, name) != value]
            if row.deleted_upstream_at is not None:
                row.deleted_upstream_at = None
                change.restored.append(v.version)
            if "run_id" in changed:
                # A different run: its details and artifacts are owed again.
                row.details_synced_at = row.artifacts_synced_at = None
            for name in changed:
                setattr(row, name, fields[name])
            if changed or v.version in change.restored:
                row.synced_at = now
                to_update.append(row)
            shown = [name for name in changed if name != "mlflow_updated_at"]
            if shown:
                change.updated[str(v.version)] = shown
        listed = {v.version for v in versions}
        for version, row in rows.items():
            if version not in listed and row.deleted_upstream_at is None:
                row.deleted_upstream_at, row.aliases, row.synced_at = now, [], now
                to_update.append(row)
                change.deleted_upstream.append(version)
        ModelVersion.objects.bulk_create(to_create, batch_size=500)
        ModelVersion.objects.bulk_update(
            to_update,
            [
                *_LISTING_FIELDS,
                "deleted_upstream_at",
                "synced_at",
                "details_synced_at",
                "artifacts_synced_at",
            ],
            batch_size=500,
        )
        change.created.sort()
        change.deleted_upstream.sort()
        change.restored.sort()
        if rm.aliases != info.aliases and rm.mlflow_updated_at is not None:
            change.aliases = {"before": rm.aliases, "after": info.aliases}
        was_deleted = rm.deleted_upstream_at is not None
        rm.description, rm.tags, rm.aliases = info.description, info.tags, info.aliases
        rm.mlflow_created_at = _when(info.creation_timestamp)
        rm.mlflow_updated_at = _when(info.last_updated_timestamp)
        rm.deleted_upstream_at = None
        rm.save()
        if change or was_deleted:
            audit_record(
                actor=actor,
                system_actor=None if actor else SYNC_ACTOR,
                action="registry.sync",
                target_type="registered_model",
                target_id=info.name,
                after={
                    "created": change.created,
                    "updated": change.updated,
                    "deleted_upstream": change.deleted_upstream,
                    "restored": change.restored,
                    "aliases": change.aliases,
                    "model_restored": was_deleted,
                },
            )
    result.versions_created += [f"{info.name} v{n}" for n in change.created]
    result.versions_updated += [f"{info.name} v{n}" for n in change.updated]
    result.versions_deleted_upstream += [f"{info.name} v{n}" for n in change.deleted_upstream]
    result.versions_restored += [f"{info.name} v{n}" for n in change.restored]
    result.warnings += [f"{info.name}: {w}" for w in warnings]


def _listing_fields(v: ModelVersionInfo, model_aliases: dict[str, int]) -> dict:
    return {
        "run_id": v.run_id[:64],
        "source": v.source[:1024],
        "status": v.status,
        "status_message": v.status_message,
        "description": v.description,
        "tags": v.tags,
        "aliases": sorted(a for a, n in model_aliases.items() if n == v.version),
        "mlflow_user": v.user_id[:256],
        "current_stage": v.current_stage[:32],
        "model_id": v.model_id[:64],
        "run_link": v.run_link[:1024],
        "mlflow_created_at": _when(v.creation_timestamp),
        "mlflow_updated_at": _when(v.last_updated_timestamp),
    }


def _artifact_targets(rows: list[ModelVersion], *, newest: int) -> set[int]:
    """Primary keys of the versions whose artifacts this model sync reads: the ``newest``
    first (a forced refresh), plus up to ARTIFACT_READS_PER_MODEL that still owe them,
    aliased first, then newest (``rows`` come newest first)."""
    chosen = {row.pk for row in rows[:newest]}
    owed = [row for row in rows if row.artifacts_synced_at is None and row.pk not in chosen]
    owed.sort(key=lambda row: not row.aliases)  # stable: newest first within each group
    chosen.update(row.pk for row in owed[:ARTIFACT_READS_PER_MODEL])
    return chosen


def _apply_details(
    client: RegistryClient, row: ModelVersion, run: RunInfo | None, *, read_artifacts: bool
) -> None:
    """Put the run's metrics and params into ``row`` (unsaved) and, when
    ``read_artifacts``, the signature and the score baseline. What MLflow says is absent
    is noted, and earlier values are kept: nothing Slipway once knew about a version is
    thrown away. RegistryUnavailable propagates (before ``row`` is touched) so the caller
    can stop asking a server that is not answering."""
    artifact_notes: list[str] = []
    if read_artifacts:
        found, artifact_notes = _read_artifacts(client, row, run)
        for name, value in found.items():
            setattr(row, name, value)
        row.artifacts_synced_at = timezone.now()
    elif row.artifacts_synced_at is not None:
        artifact_notes = [n for n in row.details_note.split("; ") if n and n not in _RUN_NOTES]
    notes: list[str] = []
    if run is not None:
        row.run_metrics, row.run_params = run.metrics, run.params
        row.experiment_id = run.experiment_id
        # Who trained the model: separation of duties refuses them as its approver.
        row.run_user = run.user_id[:256]
    elif row.run_id:
        notes.append(_NO_RUN)
    else:
        notes.append(_NOT_LINKED)
    if row.artifacts_synced_at is None:
        notes.append(_ARTIFACTS_PENDING)
    row.details_note = "; ".join(notes + artifact_notes)
    row.details_synced_at = timezone.now()


def _read_artifacts(
    client: RegistryClient, row: ModelVersion, run: RunInfo | None
) -> tuple[dict, list[str]]:
    """The fields read from the version's artifacts (``signature``, ``score_baseline``;
    only those MLflow could give) and notes on what was missing or unusable."""
    notes: list[str] = []
    found: dict = {}
    if run is not None:
        try:
            found["score_baseline"] = validate_score_baseline(
                client.read_run_json(run, SCORE_BASELINE_PATH)
            )
        except RegistryNotFound:
            pass  # the artifact is optional
        except (RegistryRejected, ValueError) as exc:
            notes.append(f"{SCORE_BASELINE_PATH} is unusable ({exc})")
    try:
        found["signature"] = client.read_model_signature(row.name, row.version, row.source, run=run)
        if found["signature"] is None:
            notes.append("the model was logged without a signature")
    except RegistryNotFound:
        notes.append("there is no MLmodel file at its source")
    except RegistryRejected as exc:
        notes.append(exc.message)
    return found, notes


def validate_score_baseline(raw) -> dict:
    """Check a ``slipway/score_baseline.json`` document and return it normalised.

    Format: ``{"le": [upper bounds, ascending], "counts": [count per bucket]}``; bucket i
    is (le[i-1], le[i]] and bucket 0 is (-inf, le[0]]; counts are not cumulative.
    """
    if not isinstance(raw, dict):
        raise ValueError("not an object with 'le' and 'counts'")
    le, counts = raw.get("le"), raw.get("counts")
    if not isinstance(le, list) or not isinstance(counts, list) or not le:
        raise ValueError("'le' and 'counts' must be non-empty lists")
    if len(le) != len(counts):
        raise ValueError(f"{len(le)} bounds but {len(counts)} counts")
    bounds = []
    for bound in le:
        if (
            isinstance(bound, bool)
            or not isinstance(bound, int | float)
            or not math.isfinite(bound)
        ):
            raise ValueError(f"bound {bound!r} is not a finite number")
        bounds.append(float(bound))
    if any(b >= c for b, c in itertools.pairwise(bounds)):
        raise ValueError("bounds are not strictly ascending")
    clean_counts = []
    for count in counts:
        if (
            isinstance(count, bool)
            or not isinstance(count, int | float)
            or count < 0
            or (not float(count).is_integer())
        ):
            raise ValueError(f"count {count!r} is not a non-negative whole number")
        clean_counts.append(int(count))
    if sum(clean_counts) == 0:
        raise ValueError("all counts are zero")
    return {"le": bounds, "counts": clean_counts}


def _apply_unchanged(
    unchanged: list[RegisteredModelInfo],
    known: dict[str, RegisteredModel],
    *,
    now: datetime,
    actor,
    result: SyncResult,
) -> None:
    """Models whose timestamp did not move: apply what the listing itself carries
    (aliases, tags, description; MLflow moves aliases without touching the timestamp) and
    record that they were checked. No MLflow call."""
    result.models_unchanged += len(unchanged)
    for info in unchanged:
        rm = known[info.name]
        if (rm.aliases, rm.tags, rm.description) == (info.aliases, info.tags, info.description):
            continue
        with audited_atomic():
            rm = RegisteredModel.objects.select_for_update(no_key=True).get(pk=rm.pk)
            before = rm.aliases
            rm.aliases, rm.tags, rm.description = info.aliases, info.tags, info.description
            rm.save(update_fields=["aliases", "tags", "description"])
            if before != info.aliases:
                moved = mirror_alias_map(info.name, info.aliases)
                result.versions_updated += [f"{info.name} v{n}" for n in moved]
                audit_record(
                    actor=actor,
                    system_actor=None if actor else SYNC_ACTOR,
                    action="registry.sync",
                    target_type="registered_model",
                    target_id=info.name,
                    after={"aliases": {"before": before, "after": info.aliases}},
                )
    if unchanged:
        RegisteredModel.objects.filter(name__in=[info.name for info in unchanged]).update(
            last_attempt_at=now, last_success_at=now, last_error="", last_error_at=None
        )


def _mark_model_deleted(rm: RegisteredModel, *, actor, result: SyncResult) -> None:
    now = timezone.now()
    with audited_atomic():
        rm = RegisteredModel.objects.select_for_update(no_key=True).get(pk=rm.pk)
        if rm.deleted_upstream_at is not None:
            return
        versions = list(
            ModelVersion.objects.filter(name=rm.name, deleted_upstream_at__isnull=True).values_list(
                "version", flat=True
            )
        )
        ModelVersion.objects.filter(name=rm.name, deleted_upstream_at__isnull=True).update(
            deleted_upstream_at=now, aliases=[], synced_at=now
        )
        rm.deleted_upstream_at, rm.aliases = now, {}
        rm.last_attempt_at = rm.last_success_at = now
        rm.last_error, rm.last_error_at = "", None
        rm.save()
        audit_record(
            actor=actor,
            system_actor=None if actor else SYNC_ACTOR,
            action="registry.model_deleted_upstream",
            target_type="registered_model",
            target_id=rm.name,
            after={"versions": sorted(versions)},
        )
    result.models_deleted_upstream.append(rm.name)
    result.versions_deleted_upstream += [f"{rm.name} v{n}" for n in sorted(versions)]


def _record_model_failure(
    name: str,
    message: str,
    now: datetime,
    result: SyncResult,
    *,
    create_from: RegisteredModelInfo | None = None,
) -> None:
    result.ok = False
    result.models_failed[name] = message
    updated = RegisteredModel.objects.filter(name=name).update(
        last_attempt_at=now, last_error=message, last_error_at=now
    )
    if not updated and create_from is not None:
        # Seen in MLflow's listing but never read: a row carries the error for the UI
        # (with no timestamp, so the next sync reads it in full).
        RegisteredModel.objects.get_or_create(
            name=name,
            defaults={"last_attempt_at": now, "last_error": message, "last_error_at": now},
        )
    logger.warning("registry sync: %s: %s", name, message)


def _record_global_failure(message: str, now: datetime, result: SyncResult) -> None:
    result.ok, result.error = False, message
    RegistrySyncState.load()
    RegistrySyncState.objects.filter(pk=1).update(
        last_attempt_at=now, last_error=message, last_error_at=now
    )
    logger.warning("registry sync failed: %s", message)


def _check_unique(listing: list[RegisteredModelInfo]) -> None:
    names = [info.name for info in listing]
    if len(set(names)) != len(names):
        raise RegistryUnavailable("MLflow listed the same registered model twice.")


def _result_digest(result: SyncResult) -> dict:
    return {
        "ok": result.ok,
        "models_seen": result.models_seen,
        "models_read": len(result.models_read),
        "models_unchanged": result.models_unchanged,
        "models_failed": len(result.models_failed),
        "versions_created": len(result.versions_created),
        "versions_updated": len(result.versions_updated),
        "versions_deleted_upstream": len(result.versions_deleted_upstream),
        "details_read": result.details_read,
        "artifacts_read": result.artifacts_read,
        "calls": result.calls,
        "duration_seconds": result.duration_seconds,
    }


def _when(millis: int | None) -> datetime | None:
    """MLflow milliseconds -> an aware datetime, exactly (no float rounding)."""
    if millis is None:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
