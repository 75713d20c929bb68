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
SELDON, KSERVE, KEDA = (
    "mlops.seldon.io_Model",
    "serving.kserve.io_InferenceService",
    "keda.sh_ScaledObject",
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
    assert set(files) == {SELDON, KSERVE, KEDA}
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
