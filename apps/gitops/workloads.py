"""The serving objects' own status, read where Argo CD's health says too little.

Argo CD's app health is only as good as the health check for each kind: it has none for
Seldon Core 2 ``Model`` (so the app reads Healthy as soon as the object exists), and a
person wants the controller's reason ("model failed to load: ...") rather than an app
rolled up to "Degraded". ``WorkloadReader`` reads, through the official client with a
timeout on every call:

- a Seldon ``Model`` (mlops.seldon.io/v1alpha1) or KServe ``InferenceService``
  (serving.kserve.io/v1beta1) and says ready / progressing / failed / suspended, why;
- the Jobs of one release (label ``slipway.io/release-id``, which the CronJob's
  ``jobTemplate`` carries to every Job it creates), for batch releases.

Field names follow the controllers: Seldon Core 2 sets ``ModelReady`` (mirrored into
``Ready``) with the scheduler's state word (ModelAvailable, ModelProgressing, ModelFailed,
ScheduleFailed, ModelScaledDown) and its reason text, which the operator writes into
``message`` and ``reason`` the other way round from Knative's habit, so both are read.
KServe sets ``Ready``/``PredictorReady``/``IngressReady``/``LatestDeploymentReady``,
``Stopped``, ``modelStatus.transitionStatus`` with
``lastFailureInfo`` and, in Knative mode, ``components.predictor.latestCreatedRevision``
vs ``latestReadyRevision``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from apps.gitops.conventions import LABEL_RELEASE_ID
from apps.gitops.errors import ClusterError, ClusterUnavailable

# kind -> (group, version, plural) of the serving objects this module can read.
SERVING_KINDS = {
    "Model": ("mlops.seldon.io", "v1alpha1", "models"),
    "InferenceService": ("serving.kserve.io", "v1beta1", "inferenceservices"),
}
# Seldon scheduler states that mean the model will not serve without a change.
_SELDON_FAILED = {
    "ModelFailed": "model failed to load",
    "ScheduleFailed": "model could not be scheduled on a server",
}
_SELDON_STATES = {
    "ModelAvailable",
    "ModelProgressing",
    "ModelFailed",
    "ScheduleFailed",
    "ModelScaledDown",
    "ModelStateUnknown",
    "ModelCreate",
    "ModelTerminating",
    "ModelTerminated",
    "ModelTerminateFailed",
    "ModelTerminate",
}


@dataclass(frozen=True)
class WorkloadStatus:
    state: str  # ready | progressing | failed | suspended | missing
    message: str

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@dataclass(frozen=True)
class JobRun:
    name: str
    state: str  # running | succeeded | failed
    message: str


def _condition(conditions: Any, kind: str) -> dict[str, Any] | None:
    for condition in conditions or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return None


def _stale(obj: dict[str, Any]) -> str:
    """A message when the controller has not yet looked at the latest spec."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        return (
            f"the controller has not processed the new spec yet "
            f"(generation {generation}, observed {observed})"
        )
    return ""


def seldon_model_status(obj: dict[str, Any]) -> WorkloadStatus:
    """What a Seldon Core 2 ``Model`` says about itself."""
    status = obj.get("status") or {}
    stale = _stale(obj)
    if stale:
        return WorkloadStatus("progressing", stale)
    conditions = status.get("conditions")
    condition = _condition(conditions, "ModelReady") or _condition(conditions, "Ready")
    if condition is None:
        return WorkloadStatus("progressing", "model not scheduled yet (no status from Seldon)")
    words = [str(condition.get(k) or "").strip() for k in ("message", "reason")]
    state = next((w for w in words if w in _SELDON_STATES), "")
    detail = next((w for w in words if w and w != state), "")
    replicas = f"{status.get('availableReplicas') or 0}/{status.get('replicas') or 0} replicas"
    if condition.get("status") == "True":
        return WorkloadStatus("ready", f"model loaded ({replicas} available)")
    if state in _SELDON_FAILED:
        return WorkloadStatus("failed", f"{_SELDON_FAILED[state]}: {detail or state}")
    if state == "ModelScaledDown":
        return WorkloadStatus(
            "suspended", "model scaled down to zero replicas; it loads again on demand"
        )
    return WorkloadStatus("progressing", f"model loading ({replicas} available)")


def inference_service_status(obj: dict[str, Any]) -> WorkloadStatus:
    """What a KServe ``InferenceService`` says about itself."""
    status = obj.get("status") or {}
    # Not observedGeneration: KServe copies it from its Knative Service or Deployment, a
    # different object's counter; the predictor's revisions say whether it is current.
    conditions = status.get("conditions") or []
    stopped = _condition(conditions, "Stopped")
    if stopped and stopped.get("status") == "True":
        return WorkloadStatus(
            "suspended",
            "InferenceService is stopped (annotation serving.kserve.io/stop); remove it to serve",
        )
    model = status.get("modelStatus") or {}
    failure = model.get("lastFailureInfo") or {}
    transition = model.get("transitionStatus") or ""
    if transition in ("BlockedByFailedLoad", "InvalidSpec"):
        why = ": ".join(str(failure.get(k)) for k in ("reason", "message") if failure.get(k))
        what = "model failed to load" if transition == "BlockedByFailedLoad" else "invalid spec"
        return WorkloadStatus("failed", f"{what}: {why or transition}")
    ready = _condition(conditions, "Ready")
    if ready and ready.get("status") == "False":
        culprit = next(
            (
                c
                for c in conditions
                if c.get("status") == "False" and c.get("type") not in ("Ready", "Stopped")
            ),
            ready,
        )
        why = ": ".join(str(culprit.get(k)) for k in ("reason", "message") if culprit.get(k))
        return WorkloadStatus("failed", f"{culprit.get('type')} is False: {why or 'no reason'}")
    predictor = (status.get("components") or {}).get("predictor") or {}
    created, ready_rev = (
        predictor.get("latestCreatedRevision"),
        predictor.get("latestReadyRevision"),
    )
    if created and created != ready_rev:
        return WorkloadStatus("progressing", f"revision {created} is not ready yet")
    if ready and ready.get("status") == "True":
        return WorkloadStatus("ready", "InferenceService is ready")
    waiting = ready or next((c for c in conditions if c.get("status") != "True"), None) or {}
    why = waiting.get("message") or waiting.get("reason") or "waiting for KServe to report status"
    return WorkloadStatus("progressing", str(why))


def job_run(obj: dict[str, Any]) -> JobRun:
    """One Job's outcome from its terminal conditions (Complete / Failed)."""
    name = (obj.get("metadata") or {}).get("name") or "?"
    status = obj.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobRun(name, "succeeded", f"Job {name} succeeded")
        if condition.get("type") == "Failed":
            why = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
            return JobRun(name, "failed", f"Job {name} failed: {why or 'no reason given'}")
    return JobRun(name, "running", f"Job {name} is running")


def canary_revisions(obj: dict[str, Any]) -> tuple[str, str] | str:
    """(candidate, stable) Knative revision names of a KServe InferenceService in the
    middle of a canary, or why they cannot be named yet (a sentence).

    KServe's Knative reconciler gives ``canaryTrafficPercent`` to the latest revision and
    the rest to ``status.components.predictor.latestRolledoutRevision``, the last one that
    had 100% (``reconcilers/knative/ksvc_reconciler.go``); the candidate is the latest
    revision once it is ready (``latestReadyRevision == latestCreatedRevision``). These
    names are the ``revision_name`` label of the per-revision metrics.
    """
    predictor = ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}
    created = predictor.get("latestCreatedRevision") or ""
    ready = predictor.get("latestReadyRevision") or ""
    stable = predictor.get("latestRolledoutRevision") or ""
    if not created or created != ready:
        return f"the candidate's revision {created or '(none yet)'} is not ready yet"
    if not stable:
        return "KServe names no rolled-out revision: there is no stable revision to compare"
    if stable == created:
        return (
            f"revision {created} already has all the traffic: the canary split is not in "
            "place (yet)"
        )
    return created, stable


class WorkloadReader:
    """Reads serving objects and Jobs through the Kubernetes API."""

    def __init__(self, api_client: k8s_client.ApiClient, *, timeout: float = 10):
        self.timeout = timeout
        self._custom = k8s_client.CustomObjectsApi(api_client)
        self._batch = k8s_client.BatchV1Api(api_client)

    def serving_status(self, *, kind: str, namespace: str, name: str) -> WorkloadStatus:
        """The serving object's own verdict; raises ``ClusterError``/``ClusterUnavailable``."""
        group, version, plural = SERVING_KINDS[kind]
        try:
            obj = self._call(
                f"{kind} {namespace}/{name}",
                lambda: self._custom.get_namespaced_custom_object(
                    group,
                    version,
                    namespace,
                    plural,
                    name,
                    _request_timeout=(self.timeout, self.timeout),
                ),
            )
        except _NotFound:
            return WorkloadStatus("missing", f"{kind} {name} does not exist yet")
        if kind == "Model":
            return seldon_model_status(obj)
        return inference_service_status(obj)

    def inference_service(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """The InferenceService as the API server has it, None when it does not exist."""
        group, version, plural = SERVING_KINDS["InferenceService"]
        try:
            return self._call(
                f"InferenceService {namespace}/{name}",
                lambda: self._custom.get_namespaced_custom_object(
                    group,
                    version,
                    namespace,
                    plural,
                    name,
                    _request_timeout=(self.timeout, self.timeout),
                ),
            )
        except _NotFound:
            return None

    def release_jobs(self, *, namespace: str, release_id: str) -> list[JobRun]:
        """The Jobs created from this release's CronJob, oldest first."""
        try:
            listing = self._call(
                f"Jobs in {namespace}",
                lambda: self._batch.list_namespaced_job(
                    namespace,
                    label_selector=f"{LABEL_RELEASE_ID}={release_id}",
                    _request_timeout=(self.timeout, self.timeout),
                    _preload_content=False,
                ),
            )
        except _NotFound:
            return []
        items = sorted(
            listing.get("items") or [],
            key=lambda o: (o.get("metadata") or {}).get("creationTimestamp") or "",
        )
        return [job_run(item) for item in items]

    @staticmethod
    def _call(what: str, request) -> dict[str, Any]:
        try:
            answer = request()
        except ApiException as exc:
            if exc.status == 404:
                raise _NotFound from None
            if exc.status in (429, 500, 502, 503, 504):
                raise ClusterUnavailable(
                    f"The Kubernetes API answered {exc.status} {exc.reason} for {what}."
                ) from None
            raise ClusterError(
                f"The Kubernetes API refused to read {what}: {exc.status}."
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnavailable(
                f"Cannot reach the Kubernetes API: {type(exc).__name__}."
            ) from None
        if hasattr(answer, "data"):  # _preload_content=False: the raw JSON body
            return json.loads(answer.data)
        return answer


class _NotFound(Exception):
    pass
