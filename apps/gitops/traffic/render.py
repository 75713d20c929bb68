"""The files of one rollout step, built from the stable and the candidate release's renders.

Input: the two releases' rendered files (file name -> YAML text, as
``apps.gitops.render.render`` returns them) and one ``TrafficStep``. Output: the files
to commit for that step, validated like every render. The mechanism is the one the
runtime's controller honours (``capabilities``):

- KServe, Knative mode: the candidate InferenceService with
  ``spec.predictor.canaryTrafficPercent: <weight>``; Knative keeps the last revision
  that had 100% as the stable one and gives it the rest. The promotion is the
  candidate's own render (field absent: 100% to the latest revision).
- Seldon Core 2: the stable Model with its spec unchanged, the candidate Model under
  ``<service>-candidate``, and an ``Experiment`` whose default is the stable Model:
  candidates' weights for canary, ``mirror`` for shadow. At 0% (blue-green) there is no
  Experiment: the candidate is reachable only by its own name.
- Deployment runtimes: the stable objects as they are, a ``<service>-stable`` and a
  ``<service>-candidate`` Service selecting each release's pods by release id, the
  candidate Deployment, and an ``HTTPRoute`` (Gateway API v1) attached to the
  service's own Service (GAMMA, mesh traffic) or to a Gateway, with weighted
  ``backendRefs`` or a ``RequestMirror`` filter for shadow.

The promotion step is the candidate's own render; an abort is the stable render alone.

The step and weight go into annotations on every object whose controller does not turn
an annotation change into new pods: the traffic objects, the Services, and the
Deployments' own metadata (never the pod template). Not on an InferenceService: KServe
copies its annotations into the Knative revision template
(``components/predictor.go``, ``buildPredictorResources``), so a per-step annotation
would start a new revision at every step and drop the candidate's warm pods; there the
weight is ``canaryTrafficPercent`` itself and the step is in the commit trailer. Seldon
Models do carry them: the operator's Model reconciler filters events with
``GenerationChangedPredicate`` (``operator/controllers/mlops/model_controller.go``), and
a metadata change does not bump the generation, so no model is reloaded.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from apps.gitops.conventions import KUSTOMIZATION_FILE, LABEL_COMPONENT, LABEL_RELEASE_ID
from apps.gitops.errors import RenderError
from apps.gitops.names import DNS1035_LABEL
from apps.gitops.render.common import dump, kustomization
from apps.gitops.runtimes import KServeMode, Runtime
from apps.gitops.traffic.capabilities import DEPLOYMENT_RUNTIMES, KSERVE_RUNTIMES, capability
from apps.gitops.traffic.plan import Strategy, TrafficStep
from apps.gitops.validate import validate_manifests

ANNOTATION_STEP = "slipway.io/rollout-step"
ANNOTATION_WEIGHT = "slipway.io/rollout-weight"
ANNOTATION_MIRROR = "slipway.io/rollout-mirror-percent"
LABEL_TRACK = "slipway.io/track"
TRACK_STABLE = "stable"
TRACK_CANDIDATE = "candidate"
CANDIDATE_SUFFIX = "-candidate"
STABLE_SUFFIX = "-stable"
TRAFFIC_SUFFIX = "-rollout"
GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class RouteParent:
    """Where the HTTPRoute attaches. By default the service's own Service (GAMMA: mesh
    traffic to ``<service>`` is split); a ``Gateway`` for traffic entering the cluster."""

    kind: str = "Service"  # "Service" or "Gateway"
    name: str | None = None  # default: the service name
    namespace: str | None = None  # default: the route's namespace
    section_name: str | None = None  # a Gateway listener

    def as_ref(self, service: str) -> dict[str, Any]:
        if self.kind not in ("Service", "Gateway"):
            raise RenderError(
                f"An HTTPRoute parent must be a Service or a Gateway, not {self.kind}."
            )
        ref: dict[str, Any] = {
            "group": "" if self.kind == "Service" else GATEWAY_GROUP,
            "kind": self.kind,
            "name": self.name or service,
        }
        if self.namespace:
            ref["namespace"] = self.namespace
        if self.section_name:
            ref["sectionName"] = self.section_name
        return ref


def render_step(
    *,
    runtime: Runtime | str,
    kserve_mode: KServeMode | str,
    service: str,
    stable: Mapping[str, str] | None,
    candidate: Mapping[str, str],
    step: TrafficStep,
    parent: RouteParent | None = None,
) -> dict[str, str]:
    """The validated files of ``step``; the promotion returns the candidate's own files.

    Raises ``RenderError`` when the runtime or mode cannot run the step, or when there
    is no stable release to share traffic with.
    """
    runtime, kserve_mode = Runtime(runtime), KServeMode(kserve_mode)
    if step.is_promotion:
        return dict(candidate)
    strategy = _strategy_of(step)
    found = capability(runtime, kserve_mode)
    if not found.supports(strategy):
        raise RenderError(found.refusals[strategy])
    if stable is None:
        raise RenderError(
            "No release is live in this environment, so there is no stable version to "
            "share traffic with: the first release of a service goes out all-at-once."
        )
    if runtime in KSERVE_RUNTIMES:
        objects = _kserve(stable, candidate, step)
    elif runtime is Runtime.SELDON:
        objects = _seldon(service, stable, candidate, step)
    elif runtime in DEPLOYMENT_RUNTIMES:
        objects = _deployment(service, stable, candidate, step, parent or RouteParent())
    else:  # capability() refused every other runtime above
        raise RenderError(f"{runtime.value} cannot split traffic.")
    files = {name: dump(obj) for name, obj in objects.items()}
    files[KUSTOMIZATION_FILE] = dump(kustomization(list(objects)))
    validate_manifests(files, require_image_digest=False)
    return files


def render_abort(*, stable: Mapping[str, str]) -> dict[str, str]:
    """The files of an abort: the stable release's own render, 100% of the traffic.

    Exactly the files reviewers approved for the stable release, so the commit's
    digest matches it and nothing from the candidate survives (Argo CD prunes the
    candidate's objects and the traffic object).
    """
    return dict(stable)


def _strategy_of(step: TrafficStep) -> Strategy:
    if step.mirror_percent:
        return Strategy.SHADOW
    return Strategy.BLUE_GREEN if step.weight == 0 else Strategy.CANARY


def _load(files: Mapping[str, str], name: str, kind: str) -> dict[str, Any]:
    if name not in files:
        raise RenderError(f"The release's render has no {name} (a {kind}) to roll out.")
    doc = yaml.safe_load(files[name])
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise RenderError(f"{name} in the release's render is not a {kind}.")
    return doc


def _step_annotations(step: TrafficStep) -> dict[str, str]:
    values = {ANNOTATION_STEP: str(step.number), ANNOTATION_WEIGHT: str(step.weight)}
    if step.mirror_percent:
        values[ANNOTATION_MIRROR] = str(step.mirror_percent)
    return values


def _annotate(doc: dict[str, Any], step: TrafficStep) -> dict[str, Any]:
    doc["metadata"].setdefault("annotations", {}).update(_step_annotations(step))
    return doc


def _derived_name(service: str, suffix: str) -> str:
    name = service + suffix
    if not DNS1035_LABEL.fullmatch(name):
        raise RenderError(
            f"The service name {service!r} is too long to name the rollout's object "
            f"{name!r} (at most 63 characters): shorten the service name."
        )
    return name


def _traffic_metadata(source: dict[str, Any], name: str, step: TrafficStep) -> dict[str, Any]:
    labels = {k: v for k, v in source["metadata"]["labels"].items() if k != LABEL_TRACK}
    labels[LABEL_COMPONENT] = "traffic"  # serves neither track: it splits between them
    return {
        "name": name,
        "namespace": source["metadata"]["namespace"],
        "labels": labels,
        "annotations": _step_annotations(step),
    }


# --- KServe (Knative mode) ---------------------------------------------------------------
def _kserve(
    stable: Mapping[str, str], candidate: Mapping[str, str], step: TrafficStep
) -> dict[str, Any]:
    name = "inferenceservice.yaml"
    old, new = _load(stable, name, "InferenceService"), _load(candidate, name, "InferenceService")
    if old["metadata"]["name"] != new["metadata"]["name"]:
        raise RenderError(
            "The stable and candidate InferenceServices have different names; KServe "
            "splits traffic only between revisions of one InferenceService."
        )
    # A weight of 0 is honoured: the new revision is created and made ready, and all
    # traffic stays on the last rolled-out revision (ksvc_reconciler.go).
    new["spec"]["predictor"]["canaryTrafficPercent"] = step.weight
    objects = {name: new}
    for other in sorted(set(candidate) - {name, KUSTOMIZATION_FILE}):
        objects[other] = yaml.safe_load(candidate[other])
    return objects


# --- Seldon Core 2 -----------------------------------------------------------------------
def _seldon(
    service: str, stable: Mapping[str, str], candidate: Mapping[str, str], step: TrafficStep
) -> dict[str, Any]:
    old, new = _load(stable, "model.yaml", "Model"), _load(candidate, "model.yaml", "Model")
    default = old["metadata"]["name"]
    candidate_name = _derived_name(service, CANDIDATE_SUFFIX)
    new["metadata"]["name"] = candidate_name
    new["metadata"]["labels"][LABEL_TRACK] = TRACK_CANDIDATE
    objects: dict[str, Any] = {
        "model.yaml": _annotate(old, step),
        "model-candidate.yaml": _annotate(new, step),
    }
    if step.weight == 0 and not step.mirror_percent:
        return objects  # blue-green at 0%: nothing routes to the candidate yet
    # The scheduler requires the default to be one of the candidates and every name
    # (mirror included) to appear once (scheduler/pkg/store/experiment/validate.go).
    if step.mirror_percent:
        spec: dict[str, Any] = {
            "default": default,
            "resourceType": "model",
            "candidates": [{"name": default, "weight": 100}],
            "mirror": {"name": candidate_name, "percent": step.mirror_percent},
        }
    else:
        spec = {
            "default": default,
            "resourceType": "model",
            "candidates": [
                {"name": default, "weight": 100 - step.weight},
                {"name": candidate_name, "weight": step.weight},
            ],
        }
    objects["experiment.yaml"] = {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Experiment",
        "metadata": _traffic_metadata(new, _derived_name(service, TRAFFIC_SUFFIX), step),
        "spec": spec,
    }
    return objects


# --- Deployment runtimes: Gateway API HTTPRoute --------------------------------------------
def _deployment(
    service: str,
    stable: Mapping[str, str],
    candidate: Mapping[str, str],
    step: TrafficStep,
    parent: RouteParent,
) -> dict[str, Any]:
    objects: dict[str, Any] = {}
    # The stable objects keep their names and pod template, so no stable pod restarts;
    # only their own metadata says which step this is.
    for name in sorted(set(stable) - {KUSTOMIZATION_FILE}):
        doc = _annotate(yaml.safe_load(stable[name]), step)
        if doc["kind"] == "Deployment":
            doc["metadata"]["labels"][LABEL_TRACK] = TRACK_STABLE
        objects[name] = doc
    old_service = _load(stable, "service.yaml", "Service")
    new_deployment = _load(candidate, "deployment.yaml", "Deployment")
    new_service = _load(candidate, "service.yaml", "Service")
    stable_id = old_service["metadata"]["labels"][LABEL_RELEASE_ID]
    candidate_id = new_deployment["metadata"]["labels"][LABEL_RELEASE_ID]
    if stable_id == candidate_id:
        raise RenderError("The stable and candidate renders are of the same release.")
    stable_name = _derived_name(service, STABLE_SUFFIX)
    candidate_name = _derived_name(service, CANDIDATE_SUFFIX)
    objects["service-stable.yaml"] = _track_service(old_service, stable_name, TRACK_STABLE, step)
    objects["service-candidate.yaml"] = _track_service(
        new_service, candidate_name, TRACK_CANDIDATE, step
    )
    objects["deployment-candidate.yaml"] = _candidate_deployment(
        new_deployment, candidate, candidate_name, step
    )
    port = old_service["spec"]["ports"][0]["port"]
    objects["httproute.yaml"] = _httproute(
        service, new_deployment, stable_name, candidate_name, port, step, parent
    )
    return objects


def _track_service(source: dict, name: str, track: str, step: TrafficStep) -> dict[str, Any]:
    """A Service for one release's pods only: the release id is on every pod (and was
    never in a Deployment selector), so selecting on it needs no pod to change."""
    doc = copy.deepcopy(source)
    doc["metadata"]["name"] = name
    doc["metadata"]["labels"][LABEL_TRACK] = track
    release_id = doc["metadata"]["labels"][LABEL_RELEASE_ID]
    doc["spec"]["selector"] = {**doc["spec"]["selector"], LABEL_RELEASE_ID: release_id}
    return _annotate(doc, step)


def _candidate_deployment(
    doc: dict, candidate: Mapping[str, str], name: str, step: TrafficStep
) -> dict[str, Any]:
    release_id = doc["metadata"]["labels"][LABEL_RELEASE_ID]
    doc["metadata"]["name"] = name
    doc["metadata"]["labels"][LABEL_TRACK] = TRACK_CANDIDATE
    # Its own selector, so the two Deployments' ReplicaSets never claim each other's pods.
    doc["spec"]["selector"]["matchLabels"][LABEL_RELEASE_ID] = release_id
    doc["spec"]["template"]["metadata"]["labels"][LABEL_TRACK] = TRACK_CANDIDATE
    # The candidate gets no HPA of its own during the rollout: it runs at the minimum
    # its release asks for, which keeps its share of pods predictable for the analysis.
    replicas = 1
    if "hpa.yaml" in candidate:
        replicas = yaml.safe_load(candidate["hpa.yaml"])["spec"].get("minReplicas", 1)
    doc["spec"]["replicas"] = replicas
    return _annotate(doc, step)


def _httproute(
    service: str,
    source: dict,
    stable_name: str,
    candidate_name: str,
    port: int,
    step: TrafficStep,
    parent: RouteParent,
) -> dict[str, Any]:
    stable_ref = {"kind": "Service", "group": "", "name": stable_name, "port": port}
    candidate_ref = {"kind": "Service", "group": "", "name": candidate_name, "port": port}
    rule: dict[str, Any]
    if step.mirror_percent:
        # Mirrored requests' responses are dropped by the data plane: the client only
        # ever gets the stable backend's answer.
        rule = {
            "backendRefs": [{**stable_ref, "weight": 100}],
            "filters": [
                {
                    "type": "RequestMirror",
                    "requestMirror": {"backendRef": candidate_ref, "percent": step.mirror_percent},
                }
            ],
        }
    else:
        rule = {
            "backendRefs": [
                {**stable_ref, "weight": 100 - step.weight},
                {**candidate_ref, "weight": step.weight},
            ]
        }
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": _traffic_metadata(source, _derived_name(service, TRAFFIC_SUFFIX), step),
        "spec": {"parentRefs": [parent.as_ref(service)], "rules": [rule]},
    }
