"""The Lua health checks in the GitOps repo template, run by a real Lua interpreter
(lupa) against status objects shaped like the controllers write them.

Argo CD runs health scripts with only Lua's base and table libraries (``string``, ``io``
and friends are not opened unless ``useOpenLibs`` is set), with the resource as the global
``obj``; the sandbox below gives the scripts exactly that, so a script that leans on
``string.format`` fails here as it would in Argo CD.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lupa import LuaError, LuaRuntime

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template" / "argocd"
PATCH = TEMPLATE / "patches" / "argocd-cm-health.yaml"
KEY = "resource.customizations.health."
SELDON, KSERVE, KEDA, ROUTE, EXPERIMENT = (
    "mlops.seldon.io_Model",
    "serving.kserve.io_InferenceService",
    "keda.sh_ScaledObject",
    "gateway.networking.k8s.io_HTTPRoute",
    "mlops.seldon.io_Experiment",
)

_SANDBOX = """
function(source, obj)
  local env = {
    obj = obj, ipairs = ipairs, pairs = pairs, next = next, type = type, select = select,
    tostring = tostring, tonumber = tonumber, error = error, pcall = pcall, table = table,
  }
  local chunk, problem = load(source, "health.lua", "t", env)
  if chunk == nil then error(problem) end
  local hs = chunk()
  return hs.status, hs.message
end
"""


def _configmap_scripts() -> dict[str, str]:
    data = yaml.safe_load(PATCH.read_text())["data"]
    return {key.removeprefix(KEY): value for key, value in data.items()}


def _lua_value(lua, value):
    if isinstance(value, dict):
        return lua.table_from({k: _lua_value(lua, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return lua.table_from([_lua_value(lua, v) for v in value])
    return value


def health(kind: str, obj: dict) -> tuple[str, str]:
    """(status, message) as Argo CD would compute them with the ConfigMap's script."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    run = lua.eval(_SANDBOX)
    return run(_configmap_scripts()[kind], _lua_value(lua, obj))


def test_the_configmap_patch_holds_exactly_the_script_files():
    files = {path.stem: path.read_text() for path in (TEMPLATE / "health").glob("*.lua")}
    assert _configmap_scripts() == files
    assert set(files) == {SELDON, KSERVE, KEDA, ROUTE, EXPERIMENT}
    # Argo CD reads these keys as resource.customizations.health.<group>_<kind>.
    assert all(key.count("_") == 1 for key in files)


def test_the_sandbox_is_as_bare_as_argo_cd_s():
    lua = LuaRuntime(unpack_returned_tuples=True)
    run = lua.eval(_SANDBOX)
    with pytest.raises(LuaError):
        run('local hs = {}; hs.status = string.format("%s", "x"); return hs', None)


# --- Seldon Core 2 Model ---------------------------------------------------------------
def seldon(conditions=None, *, generation=1, observed=None, replicas=2, available=2):
    status = {"replicas": replicas, "availableReplicas": available, "selector": "server=mlserver"}
    if conditions is not None:
        status["conditions"] = conditions
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "churn-model", "namespace": "staging", "generation": generation},
        "spec": {"storageUri": "gs://models/churn/4", "requirements": ["sklearn"]},
        "status": status,
    }


def model_ready(status, message, reason=""):
    # What the operator writes: the scheduler's state into `message`, its text into `reason`
    # (CreateAndSetCondition's arguments are passed the other way round), Ready mirrored.
    return [
        {"type": "ModelReady", "status": status, "message": message, "reason": reason},
        {"type": "Ready", "status": status, "message": message, "reason": reason},
    ]


def test_seldon_loaded_model_is_healthy():
    assert health(SELDON, seldon(model_ready("True", "ModelAvailable"))) == (
        "Healthy",
        "Model loaded, 2/2 replicas available",
    )


def test_seldon_loading_model_is_progressing():
    status, message = health(SELDON, seldon(model_ready("False", "ModelProgressing"), available=0))
    assert status == "Progressing"
    assert message == "Model loading (ModelProgressing), 0/2 replicas available"


def test_seldon_model_that_failed_to_load_is_degraded_with_the_reason():
    reason = "rpc error: code = Internal desc = failed to load model: No such file model.joblib"
    assert health(SELDON, seldon(model_ready("False", "ModelFailed", reason), available=0)) == (
        "Degraded",
        f"Model failed to load: {reason}",
    )


def test_seldon_fields_read_either_way_round():
    conditions = [
        {
            "type": "ModelReady",
            "status": "False",
            "reason": "ScheduleFailed",
            "message": "no server",
        }
    ]
    assert health(SELDON, seldon(conditions)) == (
        "Degraded",
        "Model could not be scheduled on a server: no server",
    )


def test_seldon_stale_generation_with_old_ready_condition_is_progressing():
    status, message = health(
        SELDON, seldon(model_ready("True", "ModelAvailable"), generation=3, observed=2)
    )
    assert status == "Progressing" and "generation 3" in message


def test_seldon_model_without_status_yet_is_progressing():
    obj = seldon()
    del obj["status"]
    assert health(SELDON, obj)[0] == "Progressing"
    assert health(SELDON, seldon([]))[0] == "Progressing"


def test_seldon_scaled_down_model_is_suspended():
    assert health(SELDON, seldon(model_ready("False", "ModelScaledDown"), available=0))[0] == (
        "Suspended"
    )


# --- KServe InferenceService -----------------------------------------------------------
def isvc(
    conditions,
    *,
    predictor=None,
    model_status=None,
    canary=None,
    generation=2,
    observed=1,
):
    spec = {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://m"}}}
    if canary is not None:
        spec["predictor"]["canaryTrafficPercent"] = canary
    status = {"conditions": conditions, "observedGeneration": observed}
    if predictor is not None:
        status["components"] = {"predictor": predictor}
    if model_status is not None:
        status["modelStatus"] = model_status
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "churn-model", "namespace": "prod", "generation": generation},
        "spec": spec,
        "status": status,
    }


def ready_conditions(**overrides):
    kinds = [
        "IngressReady",
        "PredictorConfigurationReady",
        "PredictorReady",
        "PredictorRouteReady",
        "Ready",
    ]
    return [{"type": kind, "status": overrides.get(kind, "True")} for kind in kinds]


REV1, REV2 = "churn-model-predictor-00001", "churn-model-predictor-00002"


def test_kserve_ready_is_healthy_though_observed_generation_is_another_object_s():
    # observedGeneration is the Knative Service's (1) and the ISVC is at generation 2:
    # comparing them would keep a ready service Progressing forever.
    predictor = {
        "latestCreatedRevision": REV2,
        "latestReadyRevision": REV2,
        "latestRolledoutRevision": REV2,
    }
    assert health(KSERVE, isvc(ready_conditions(), predictor=predictor)) == (
        "Healthy",
        "InferenceService is ready",
    )


def test_kserve_new_revision_not_ready_while_old_one_serves_is_progressing():
    predictor = {
        "latestCreatedRevision": REV2,
        "latestReadyRevision": REV1,
        "latestRolledoutRevision": REV1,
    }
    assert health(KSERVE, isvc(ready_conditions(), predictor=predictor)) == (
        "Progressing",
        f"Revision {REV2} is not ready yet",
    )


def test_kserve_traffic_not_moved_yet_is_progressing_unless_a_canary_holds_it():
    predictor = {
        "latestCreatedRevision": REV2,
        "latestReadyRevision": REV2,
        "latestRolledoutRevision": REV1,
    }
    assert health(KSERVE, isvc(ready_conditions(), predictor=predictor))[0] == "Progressing"
    assert health(KSERVE, isvc(ready_conditions(), predictor=predictor, canary=10)) == (
        "Healthy",
        f"Canary revision {REV2} serves 10% of traffic",
    )


def test_kserve_model_that_failed_to_load_is_degraded_with_the_reason():
    model_status = {
        "transitionStatus": "BlockedByFailedLoad",
        "states": {"activeModelState": "FailedToLoad", "targetModelState": "FailedToLoad"},
        "lastFailureInfo": {
            "reason": "ModelLoadFailed",
            "message": "Failed to locate model file at /mnt/models/model.joblib",
        },
    }
    conditions = ready_conditions(PredictorReady="False", Ready="False")
    assert health(KSERVE, isvc(conditions, model_status=model_status)) == (
        "Degraded",
        "Model failed to load: ModelLoadFailed: "
        "Failed to locate model file at /mnt/models/model.joblib",
    )


def test_kserve_ready_false_names_the_failing_condition():
    conditions = ready_conditions(Ready="False")
    conditions[2] = {
        "type": "PredictorReady",
        "status": "False",
        "reason": "RevisionFailed",
        "message": 'Revision "churn-model-predictor-00002" failed with message: OOMKilled.',
    }
    status, message = health(KSERVE, isvc(conditions))
    assert status == "Degraded"
    assert message.startswith("PredictorReady is False: RevisionFailed: Revision")


def test_kserve_unknown_ready_is_progressing_and_stopped_is_suspended():
    status, message = health(KSERVE, isvc(ready_conditions(Ready="Unknown")))
    assert status == "Progressing" and "Ready is Unknown" in message
    stopped = [*ready_conditions(Ready="False"), {"type": "Stopped", "status": "True"}]
    assert health(KSERVE, isvc(stopped))[0] == "Suspended"


def test_kserve_standard_mode_without_revisions_is_healthy_when_ready():
    conditions = [
        {"type": "IngressReady", "status": "True"},
        {"type": "LatestDeploymentReady", "status": "True"},
        {"type": "PredictorReady", "status": "True"},
        {"type": "Ready", "status": "True"},
    ]
    assert health(KSERVE, isvc(conditions))[0] == "Healthy"
    conditions[1] = {"type": "LatestDeploymentReady", "status": "Unknown", "reason": "Deploying"}
    assert health(KSERVE, isvc(conditions)) == (
        "Progressing",
        "LatestDeploymentReady is Unknown: Deploying",
    )


def test_kserve_without_status_is_progressing():
    obj = isvc([])
    del obj["status"]
    assert health(KSERVE, obj)[0] == "Progressing"


# --- KEDA ScaledObject -----------------------------------------------------------------
def scaled_object(*conditions, paused=False):
    metadata = {"name": "churn-consumer", "namespace": "prod", "generation": 4}
    if paused:
        metadata["annotations"] = {"autoscaling.keda.sh/paused": "true"}
    obj = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata,
        "spec": {"scaleTargetRef": {"name": "churn-consumer"}, "triggers": [{"type": "kafka"}]},
    }
    if conditions:
        obj["status"] = {"conditions": list(conditions), "hpaName": "keda-hpa-churn-consumer"}
    return obj


READY = {
    "type": "Ready",
    "status": "True",
    "reason": "ScaledObjectReady",
    "message": "ScaledObject is defined correctly and is ready for scaling",
}
ACTIVE = {
    "type": "Active",
    "status": "True",
    "reason": "ScalerActive",
    "message": "Scaling is performed because triggers are active",
}
INACTIVE = {
    "type": "Active",
    "status": "False",
    "reason": "ScalerNotActive",
    "message": "Scaling is not performed because triggers are not active",
}
NO_FALLBACK = {"type": "Fallback", "status": "False", "reason": "NoFallbackFound"}


def test_keda_ready_is_healthy_active_or_not():
    assert health(KEDA, scaled_object(READY, ACTIVE, NO_FALLBACK)) == (
        "Healthy",
        "Scaling: Scaling is performed because triggers are active",
    )
    status, message = health(KEDA, scaled_object(READY, INACTIVE, NO_FALLBACK))
    assert status == "Healthy" and "inactive" in message


def test_keda_paused_is_suspended_and_says_how_to_resume():
    paused = {
        "type": "Paused",
        "status": "True",
        "reason": "ScaledObjectPaused",
        "message": "ScaledObject is paused",
    }
    status, message = health(KEDA, scaled_object(READY, INACTIVE, NO_FALLBACK, paused, paused=True))
    assert status == "Suspended"
    assert (
        message
        == "ScaledObject is paused (remove the autoscaling.keda.sh/paused annotation to resume)"
    )


def test_keda_fallback_is_degraded():
    fallback = {
        "type": "Fallback",
        "status": "True",
        "reason": "FallbackExists",
        "message": "At least one trigger is falling back on this scaled object",
    }
    status, message = health(KEDA, scaled_object(READY, INACTIVE, fallback))
    assert status == "Degraded" and "fallback" in message and "falling back" in message


def test_keda_not_ready_is_degraded_with_keda_s_reason():
    broken = {
        "type": "Ready",
        "status": "False",
        "reason": "ScaledObjectCheckFailed",
        "message": "ScaledObject doesn't have correct scaleTargetRef specification",
    }
    assert health(KEDA, scaled_object(broken)) == (
        "Degraded",
        "ScaledObjectCheckFailed: ScaledObject doesn't have correct scaleTargetRef specification",
    )


def test_keda_without_conditions_yet_is_progressing():
    assert health(KEDA, scaled_object())[0] == "Progressing"
    unknown = {"type": "Ready", "status": "Unknown", "reason": "ScaledObjectCheckStarted"}
    assert health(KEDA, scaled_object(unknown))[0] == "Progressing"


def test_every_custom_kind_the_project_allows_has_a_health_check():
    # Argo CD knows the health of core kinds (Deployment, Service, HPA, PDB, CronJob); a
    # custom resource without a check reads Healthy as soon as it exists.
    project = yaml.safe_load((TEMPLATE / "appproject.yaml").read_text())
    core = {"", "apps", "autoscaling", "policy", "batch"}
    custom = {
        f"{entry['group']}_{entry['kind']}"
        for entry in project["spec"]["namespaceResourceWhitelist"]
        if entry["group"] not in core
    }
    assert custom == set(_configmap_scripts())


# --- Gateway API HTTPRoute (the rollout's traffic split for Deployment runtimes) -----------
# The objects are the ones Slipway renders for a canary step, as the API server returns
# them (namespace and generation set), with status as Gateway API v1.3 defines it.
MESH = "istio.io/gateway-controller"


def rendered(kind: str, plan_step, *, generation=1, **extra) -> dict:
    from apps.gitops.runtimes import Runtime
    from tests.gitops.test_traffic_render import by_kind, step_files

    runtime = Runtime.SELDON if kind == "Experiment" else Runtime.CUSTOM
    (obj,) = by_kind(step_files(runtime, plan_step, **extra), kind)
    obj["metadata"].update(namespace="prod", generation=generation)
    return obj


def canary_step():
    from tests.gitops.test_traffic_render import CANARY

    return CANARY.steps()[0]


def route_condition(kind, status, reason, message="", *, generation=2):
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": "2026-12-02T12:00:00Z",
    }


ACCEPTED = route_condition("Accepted", "True", "Accepted", "Route is accepted")
RESOLVED = route_condition("ResolvedRefs", "True", "ResolvedRefs", "Resolved all the references")


def route(*entries, generation=2, **extra):
    obj = rendered("HTTPRoute", canary_step(), generation=generation, **extra)
    if entries:
        obj["status"] = {"parents": list(entries)}
    return obj


def parent_entry(obj, *conditions, ref=None):
    # Controllers echo the parentRef; this one fills in the namespace, as Istio does.
    ref = ref or {**obj["spec"]["parentRefs"][0], "namespace": "prod"}
    return {"parentRef": ref, "controllerName": MESH, "conditions": list(conditions)}


def test_route_accepted_by_its_parent_with_backends_resolved_is_healthy():
    obj = route()
    obj["status"] = {"parents": [parent_entry(obj, ACCEPTED, RESOLVED)]}
    # The parent Slipway renders by default: the service's own Service (GAMMA, group "").
    assert obj["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "churn"}]
    assert health(ROUTE, obj) == ("Healthy", "Route accepted by Service churn")


def test_route_not_reconciled_yet_is_progressing():
    obj = route()
    assert health(ROUTE, obj)[0] == "Progressing"
    pending = route_condition("Accepted", "Unknown", "Pending", "Waiting for controller")
    obj["status"] = {"parents": [parent_entry(obj, pending)]}
    # Argo CD's built-in check counts only "False" as a problem and calls this Healthy.
    assert health(ROUTE, obj) == (
        "Progressing",
        "Service churn has not accepted the route yet: Pending: Waiting for controller",
    )


def test_route_whose_parent_nobody_reports_on_is_progressing_with_the_reason():
    from apps.gitops.traffic.render import RouteParent

    obj = route(parent=RouteParent(kind="Gateway", name="public", namespace="gateways"))
    # Only a leftover entry for another Gateway: Gateway API writes no entry for a parent
    # no controller can resolve (a Gateway that does not exist).
    other = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "old"}
    obj["status"] = {"parents": [parent_entry(obj, ACCEPTED, RESOLVED, ref=other)]}
    status, message = health(ROUTE, obj)
    assert status == "Progressing"
    assert message.startswith("No controller has reported on Gateway public yet")


def test_route_gateway_parent_matches_an_echo_with_defaults_filled_in():
    from apps.gitops.traffic.render import RouteParent

    obj = route(parent=RouteParent(kind="Gateway", name="public", section_name="https"))
    echoed = {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "public",
        "namespace": "prod",
        "sectionName": "https",
    }
    obj["status"] = {"parents": [parent_entry(obj, ACCEPTED, RESOLVED, ref=echoed)]}
    assert health(ROUTE, obj) == ("Healthy", "Route accepted by Gateway public (listener https)")
    # Another listener of the same Gateway is another parent.
    obj["status"]["parents"][0]["parentRef"]["sectionName"] = "http"
    assert health(ROUTE, obj)[0] == "Progressing"


def test_route_conditions_of_an_older_generation_are_progressing():
    obj = route(generation=3)
    obj["status"] = {"parents": [parent_entry(obj, ACCEPTED, RESOLVED)]}
    assert health(ROUTE, obj) == (
        "Progressing",
        "Service churn has not processed generation 3 yet (observed 2)",
    )
    # A stale rejection does not condemn the new generation either.
    refused = route_condition("Accepted", "False", "UnsupportedValue", "percent is not supported")
    obj["status"] = {"parents": [parent_entry(obj, refused, RESOLVED)]}
    assert health(ROUTE, obj)[0] == "Progressing"


def test_route_with_a_missing_backend_is_degraded_with_the_controller_s_reason():
    obj = route()
    missing = route_condition(
        "ResolvedRefs", "False", "BackendNotFound", 'Service "churn-candidate" not found'
    )
    obj["status"] = {"parents": [parent_entry(obj, ACCEPTED, missing)]}
    assert health(ROUTE, obj) == (
        "Degraded",
        "Service churn cannot send traffic to a backend: "
        'BackendNotFound: Service "churn-candidate" not found',
    )


def test_route_not_accepted_is_degraded():
    obj = route()
    refused = route_condition(
        "Accepted", "False", "UnsupportedValue", "RequestMirror percent is not supported"
    )
    obj["status"] = {"parents": [parent_entry(obj, refused)]}
    assert health(ROUTE, obj) == (
        "Degraded",
        "Service churn did not accept the route: UnsupportedValue: RequestMirror percent is "
        "not supported",
    )


def test_route_kept_at_its_last_good_generation_is_degraded_not_progressing_forever():
    # "Fall Back": Accepted stays True at the last good generation, PartiallyInvalid is
    # True at the current one. Waiting for Accepted to catch up would wait forever.
    obj = route(generation=3)
    fell_back = route_condition(
        "PartiallyInvalid",
        "True",
        "UnsupportedValue",
        "Fall Back: weight 0 unsupported",
        generation=3,
    )
    obj["status"] = {"parents": [parent_entry(obj, ACCEPTED, RESOLVED, fell_back)]}
    status, message = health(ROUTE, obj)
    assert status == "Degraded"
    assert message == (
        "Service churn applies only part of the route: UnsupportedValue: Fall Back: weight 0 "
        "unsupported"
    )


def test_route_is_as_healthy_as_its_worst_parent():
    from apps.gitops.traffic.render import RouteParent

    obj = route()
    gateway = RouteParent(kind="Gateway", name="public").as_ref("churn")
    obj["spec"]["parentRefs"].append(gateway)
    refused = route_condition("Accepted", "False", "NotAllowedByListeners", "")
    obj["status"] = {
        "parents": [
            parent_entry(obj, ACCEPTED, RESOLVED),
            parent_entry(obj, refused, ref=gateway),
        ]
    }
    assert health(ROUTE, obj) == (
        "Degraded",
        "Gateway public did not accept the route: NotAllowedByListeners",
    )
    obj["status"]["parents"][1]["conditions"] = [ACCEPTED, RESOLVED]
    assert health(ROUTE, obj) == ("Healthy", "Route accepted by Service churn, Gateway public")


def test_route_without_parents_is_degraded():
    obj = route()
    obj["spec"]["parentRefs"] = []
    assert health(ROUTE, obj)[0] == "Degraded"


# --- Seldon Core 2 Experiment (the rollout's traffic split for Seldon) -----------------------
T0, T1, T2 = "2026-12-02T12:00:00Z", "2026-12-02T12:00:05Z", "2026-12-02T12:01:00Z"


def experiment_condition(kind, status, reason="", when=T0):
    # As the operator writes them: the scheduler's text in reason, message empty.
    condition = {"type": kind, "status": status, "lastTransitionTime": when}
    if reason:
        condition["reason"] = reason
    return condition


def scheduler_says(active=True, candidates=True, mirror=True, text=None, when=T0):
    conditions = [
        experiment_condition(
            "CandidatesReady",
            "True" if candidates else "False",
            "Candidates ready" if candidates else "Candidates not ready",
            when,
        ),
        experiment_condition(
            "ExperimentReady",
            "True" if active else "False",
            text if text is not None else ("experiment active" if active else ""),
            when,
        ),
        experiment_condition(
            "MirrorReady",
            "True" if mirror else "False",
            "Mirror ready" if mirror else "Mirror not ready",
            when,
        ),
    ]
    happy = active and candidates and mirror
    conditions.append(experiment_condition("Ready", "True" if happy else "False", "", when))
    return conditions


def experiment(conditions=None, *, step=None, generation=1, observed=None):
    obj = rendered("Experiment", step or canary_step(), generation=generation)
    if conditions is not None:
        obj["status"] = {"conditions": conditions}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
    return obj


def test_experiment_routed_with_its_models_available_is_healthy():
    obj = experiment(scheduler_says())
    assert obj["spec"]["default"] == "churn"
    assert health(EXPERIMENT, obj) == ("Healthy", "Experiment active: churn 90, churn-candidate 10")


def test_experiment_shadow_says_what_it_mirrors():
    from tests.gitops.test_traffic_render import SHADOW

    obj = experiment(scheduler_says(), step=SHADOW.steps()[0])
    assert health(EXPERIMENT, obj) == (
        "Healthy",
        "Experiment active: churn 100; mirroring 30% to churn-candidate",
    )


def test_experiment_being_set_up_is_progressing():
    assert health(EXPERIMENT, experiment())[0] == "Progressing"
    assert health(EXPERIMENT, experiment([]))[0] == "Progressing"
    # The scheduler replaces the experiment at every change and reports it inactive,
    # without a text, until its routes are set up again.
    assert health(EXPERIMENT, experiment(scheduler_says(active=False))) == (
        "Progressing",
        "Seldon's scheduler is setting up the experiment's routes",
    )


def test_experiment_waiting_for_its_models_is_progressing_and_names_them():
    status, message = health(EXPERIMENT, experiment(scheduler_says(candidates=False)))
    assert status == "Progressing"
    assert "churn, churn-candidate" in message
    status, message = health(
        EXPERIMENT, experiment(scheduler_says(mirror=False), step=_shadow_step())
    )
    assert (status, message) == (
        "Progressing",
        "Waiting for the mirror model churn-candidate to be available",
    )


def _shadow_step():
    from tests.gitops.test_traffic_render import SHADOW

    return SHADOW.steps()[0]


def test_experiment_the_scheduler_refused_is_degraded_with_its_reason():
    refusal = (
        "rpc error: code = FailedPrecondition desc = Experiment churn-rollout: default model "
        "churn is already the baseline of experiment other"
    )
    # A new Experiment: the operator's error condition (type ModelReady) is all there is.
    obj = experiment([experiment_condition("ModelReady", "False", refusal, T1)])
    assert health(EXPERIMENT, obj) == (
        "Degraded",
        f"Seldon did not start the experiment: {refusal}",
    )
    # A change refused after an earlier version was routed: the old split still serves.
    obj = experiment(
        [*scheduler_says(when=T0), experiment_condition("ModelReady", "False", refusal, T1)]
    )
    assert health(EXPERIMENT, obj)[0] == "Degraded"


def test_experiment_error_the_scheduler_has_since_superseded_is_not_degraded():
    # The operator never clears its error condition; the scheduler re-routing the
    # experiment after it (ExperimentReady's newer transition) shows the error is over.
    unreachable = "rpc error: code = Unavailable desc = connection refused"
    obj = experiment(
        [*scheduler_says(when=T2), experiment_condition("ModelReady", "False", unreachable, T1)]
    )
    assert health(EXPERIMENT, obj)[0] == "Healthy"


def test_experiment_routing_error_is_degraded():
    obj = experiment(scheduler_says(active=False, text="failed to add routes for model churn"))
    assert health(EXPERIMENT, obj) == (
        "Degraded",
        "Seldon's scheduler could not route the experiment: failed to add routes for model churn",
    )


def test_experiment_stale_generation_is_progressing():
    obj = experiment(scheduler_says(), generation=3, observed=2)
    status, message = health(EXPERIMENT, obj)
    assert status == "Progressing" and "generation 3" in message
