"""Reading the registry mirror: releasable versions, the model card, sync freshness,
alias updates. No MLflow calls here: pages render from the mirror, fast, even when MLflow
is down (and say so)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from apps.registry.client import RELEASE_TAG
from apps.registry.models import (
    AliasUpdate,
    AliasUpdateState,
    ModelVersion,
    ModelVersionStatus,
    RegisteredModel,
    RegistrySyncState,
)


def releasable_versions(registered_model: str) -> QuerySet[ModelVersion]:
    """Versions of the registered model a release may use: READY in MLflow and not
    deleted there, newest first."""
    return ModelVersion.objects.filter(
        name=registered_model, status=ModelVersionStatus.READY, deleted_upstream_at__isnull=True
    ).order_by("-version")


def alias_updates_for(release_uid) -> QuerySet[AliasUpdate]:
    """The MLflow alias updates requested for one release, oldest first."""
    return (
        AliasUpdate.objects.filter(release_uid=release_uid)
        .select_related("model_version")
        .order_by("created_at", "id")
    )


def alias_updates_due(*, now: datetime | None = None, limit: int = 100) -> list[int]:
    """Ids of pending alias updates whose next attempt is due (for the sweeper task)."""
    now = now or timezone.now()
    return list(
        AliasUpdate.objects.filter(state=AliasUpdateState.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )


# --- sync status ------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncStatus:
    """How fresh Slipway's copy of MLflow is, for one registered model or the whole registry.

    ``is_stale`` when the copy was never read, was last confirmed longer ago than three
    sync intervals, or the latest attempt to read it failed.
    """

    registered_model: str | None
    known: bool
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str
    last_error_at: datetime | None
    deleted_upstream_at: datetime | None
    warning: str
    stale_after: timedelta
    is_stale: bool
    failing: bool

    @property
    def message(self) -> str:
        """A sentence for the page."""
        subject = self.registered_model or "The model registry"
        if self.deleted_upstream_at is not None:
            return (
                f"{subject} was deleted from MLflow; Slipway keeps its versions for the "
                "record, but none can be released."
            )
        if not self.known or self.last_success_at is None:
            if self.failing:
                return f"{subject} has not been read from MLflow yet: {self.last_error}"
            return f"{subject} has not been read from MLflow yet."
        if self.failing:
            return (
                f"MLflow could not be reached, so this is the data Slipway had when it "
                f"last could: {self.last_error}"
            )
        if self.is_stale:
            return "Slipway has not been able to check MLflow recently; figures may be out of date."
        return "Up to date with MLflow."


def sync_status(registered_model: str | None = None) -> SyncStatus:
    """Freshness of the mirror of ``registered_model`` (a name), or of the registry."""
    stale_after = timedelta(seconds=3 * settings.REGISTRY_SYNC_SECONDS)
    now = timezone.now()
    registry = RegistrySyncState.objects.filter(pk=1).first()
    if registered_model is None:
        errors = [(registry.last_error_at, registry.last_error)] if registry else []
        return _status(None, registry, errors, stale_after, now, deleted=None, warning="")
    rm = RegisteredModel.objects.filter(name=registered_model).first()
    errors = []
    if rm is not None:
        errors.append((rm.last_error_at, rm.last_error))
    if registry is not None:
        # A failed listing means this model was not checked either.
        errors.append((registry.last_error_at, registry.last_error))
    return _status(
        registered_model,
        rm,
        errors,
        stale_after,
        now,
        deleted=rm.deleted_upstream_at if rm else None,
        warning=rm.warning if rm else "",
    )


def _status(name, row, errors, stale_after, now, *, deleted, warning) -> SyncStatus:
    last_success = row.last_success_at if row else None
    live_errors = [
        (at, text)
        for at, text in errors
        if at is not None and (last_success is None or at > last_success)
    ]
    live_errors.sort(key=lambda item: item[0], reverse=True)
    failing = bool(live_errors)
    is_stale = failing or last_success is None or now - last_success > stale_after
    return SyncStatus(
        registered_model=name,
        known=row is not None,
        last_success_at=last_success,
        last_attempt_at=row.last_attempt_at if row else None,
        last_error=live_errors[0][1] if live_errors else "",
        last_error_at=live_errors[0][0] if live_errors else None,
        deleted_upstream_at=deleted,
        warning=warning,
        stale_after=stale_after,
        is_stale=is_stale,
        failing=failing,
    )


# --- the model card ---------------------------------------------------------------------

_LOWER_IS_BETTER = frozenset(
    {
        "loss",
        "logloss",
        "error",
        "err",
        "errors",
        "rmse",
        "mse",
        "mae",
        "mape",
        "smape",
        "rmsle",
        "msle",
        "medae",
        "brier",
        "perplexity",
        "wer",
        "cer",
        "fpr",
        "fnr",
        "far",
        "latency",
        "duration",
        "time",
        "seconds",
        "ms",
        "cost",
        "regret",
        "deviance",
        "hamming",
        "eer",
        "drift",
        "psi",
    }
)
_HIGHER_IS_BETTER = frozenset(
    {
        "accuracy",
        "acc",
        "auc",
        "roc",
        "f1",
        "f2",
        "fbeta",
        "precision",
        "recall",
        "r2",
        "ap",
        "map",
        "ndcg",
        "mrr",
        "iou",
        "dice",
        "bleu",
        "rouge",
        "sensitivity",
        "specificity",
        "tpr",
        "tnr",
        "kappa",
        "mcc",
        "throughput",
        "qps",
        "coverage",
        "hit",
        "hits",
        "gain",
        "lift",
        "jaccard",
    }
)


def metric_direction(name: str) -> str:
    """``"higher"`` or ``"lower"`` is better for a metric, judged by its name, or
    ``"neutral"`` when the name does not say (or says both).

    Names are split into words (``val_log_loss`` -> val, log, loss); scikit-learn's
    ``neg_`` scorers (``neg_mean_squared_error``) flip the direction.
    """
    lowered = name.lower()
    words = [w for w in re.split(r"[^a-z0-9]+", lowered) if w]
    lower = any(w in _LOWER_IS_BETTER for w in words)
    higher = any(w in _HIGHER_IS_BETTER for w in words) or "explained_variance" in lowered
    if not (lower or higher):
        # camelCase or glued names: fall back to unambiguous long words inside.
        lower = any(w in lowered for w in ("loss", "error", "latency"))
        higher = any(w in lowered for w in ("accuracy", "precision", "recall"))
    if lower == higher:
        return "neutral"
    direction = "lower" if lower else "higher"
    if "neg" in words:
        direction = "higher" if direction == "lower" else "lower"
    return direction


@dataclass(frozen=True)
class MetricRow:
    name: str
    value: float | None
    other: float | None
    delta: float | None
    delta_pct: float | None
    direction: str  # higher | lower | neutral
    verdict: str  # better | worse | same | changed | n/a

    @property
    def css_class(self) -> str:
        return {"better": "delta-better", "worse": "delta-worse"}.get(self.verdict, "delta-neutral")

    @property
    def direction_label(self) -> str:
        return {"higher": "higher is better", "lower": "lower is better"}.get(
            self.direction, "no preferred direction"
        )

    @property
    def verdict_label(self) -> str:
        return {
            "better": "better",
            "worse": "worse",
            "same": "no change",
            "changed": "changed",
            "n/a": "",
        }[self.verdict]

    @property
    def value_display(self) -> str:
        return _number(self.value)

    @property
    def other_display(self) -> str:
        return _number(self.other)

    @property
    def delta_display(self) -> str:
        if self.delta is None:
            return "—"
        if self.verdict == "same":
            return ""  # the verdict says "no change"
        text = f"{self.delta:+.4g}"
        if self.delta_pct is not None and self.verdict != "same":
            text += f" ({self.delta_pct:+.1f}%)"
        return text


@dataclass(frozen=True)
class ParamRow:
    name: str
    value: str | None
    other: str | None

    @property
    def changed(self) -> bool:
        return self.other is not None and self.value != self.other


@dataclass(frozen=True)
class SignatureField:
    name: str
    type: str
    required: bool


@dataclass(frozen=True)
class ModelCard:
    """What a reviewer needs to judge a model version, next to the one it would replace."""

    model_version: ModelVersion
    compare_to: ModelVersion | None
    compare_label: str
    run_url: str
    version_url: str
    inputs: list[SignatureField]
    outputs: list[SignatureField]
    metrics: list[MetricRow]
    params: list[ParamRow]
    tags: list[tuple[str, str]]
    release_tag: str
    sync: SyncStatus

    @property
    def has_signature(self) -> bool:
        return self.model_version.signature is not None

    @property
    def signature_size(self) -> int:
        return len(self.inputs) + len(self.outputs)

    @property
    def has_baseline(self) -> bool:
        return bool(self.model_version.score_baseline)

    @property
    def is_stale(self) -> bool:
        return self.sync.is_stale

    @property
    def better_count(self) -> int:
        return sum(1 for m in self.metrics if m.verdict == "better")

    @property
    def worse_count(self) -> int:
        return sum(1 for m in self.metrics if m.verdict == "worse")


def model_card(
    model_version: ModelVersion,
    *,
    compare_to: ModelVersion | None = None,
    compare_label: str | None = None,
) -> ModelCard:
    """The model card of ``model_version``; metrics and parameters side by side with
    ``compare_to`` (usually the version live in the release's environment), each metric
    delta judged better or worse by the metric's name."""
    if compare_to is not None and compare_to.pk == model_version.pk:
        compare_to = None
    ours = model_version.run_metrics or {}
    theirs = (compare_to.run_metrics or {}) if compare_to is not None else {}
    metrics = [
        _metric_row(name, ours.get(name), theirs.get(name), compared=compare_to is not None)
        for name in sorted(set(ours) | set(theirs), key=str.lower)
    ]
    our_params = model_version.run_params or {}
    their_params = (compare_to.run_params or {}) if compare_to is not None else {}
    params = [
        ParamRow(name, our_params.get(name), their_params.get(name) if compare_to else None)
        for name in sorted(set(our_params) | set(their_params), key=str.lower)
    ]
    signature = model_version.signature or {}
    return ModelCard(
        model_version=model_version,
        compare_to=compare_to,
        compare_label=compare_label or (f"v{compare_to.version}" if compare_to else ""),
        run_url=_run_url(model_version),
        version_url=_version_url(model_version),
        inputs=_signature_fields(signature.get("inputs")),
        outputs=_signature_fields(signature.get("outputs")),
        metrics=metrics,
        params=params,
        tags=sorted(
            (k, v)
            for k, v in (model_version.tags or {}).items()
            if not k.startswith("mlflow.") and k != RELEASE_TAG
        ),
        release_tag=(model_version.tags or {}).get(RELEASE_TAG, ""),
        sync=sync_status(model_version.name),
    )


def _metric_row(name: str, value, other, *, compared: bool) -> MetricRow:
    value, other = _finite(value), _finite(other)
    direction = metric_direction(name)
    if not compared or value is None or other is None:
        return MetricRow(name, value, other, None, None, direction, "n/a")
    delta = value - other
    pct = (delta / abs(other) * 100) if other != 0 else None
    if math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-12):
        verdict = "same"
    elif direction == "neutral":
        verdict = "changed"
    else:
        verdict = "better" if (delta > 0) == (direction == "higher") else "worse"
    return MetricRow(name, value, other, delta, pct, direction, verdict)


def _signature_fields(spec) -> list[SignatureField]:
    fields = []
    for item in spec if isinstance(spec, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "")
        if kind == "tensor" and isinstance(item.get("tensor-spec"), dict):
            tensor = item["tensor-spec"]
            kind = f"tensor {tensor.get('dtype', '?')} {tuple(tensor.get('shape') or ())}"
        fields.append(
            SignatureField(
                name=str(item.get("name") or "(unnamed)"),
                type=str(kind or "?"),
                required=bool(item.get("required", True)),
            )
        )
    return fields


def _run_url(mv: ModelVersion) -> str:
    base = settings.MLFLOW_UI_URL.rstrip("/")
    if not base or not mv.run_id:
        return ""
    if mv.experiment_id:
        return f"{base}/#/experiments/{quote(mv.experiment_id)}/runs/{quote(mv.run_id)}"
    return ""


def _version_url(mv: ModelVersion) -> str:
    base = settings.MLFLOW_UI_URL.rstrip("/")
    if not base:
        return ""
    return f"{base}/#/models/{quote(mv.name, safe='')}/versions/{mv.version}"


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if float(value).is_integer() and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.4g}"
