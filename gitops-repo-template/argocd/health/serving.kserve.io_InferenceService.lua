-- Health of a KServe InferenceService (serving.kserve.io/v1beta1), replacing Argo CD's
-- built-in check, which reads the conditions without asking which revision they describe:
-- right after an update the old revision's Ready=True made the new one look Healthy
-- before it served a request.
-- Not status.observedGeneration: KServe copies it from the child it manages (the Knative
-- Service, or the predictor Deployment in Standard mode), so it is another object's
-- counter and cannot be compared with this object's metadata.generation. Freshness comes
-- from the revisions instead: in Knative (serverless) mode the predictor's
-- latestCreatedRevision must be the latestReadyRevision, and without a canary the
-- latestRolledoutRevision too.
-- Also reads the Stopped condition (serving.kserve.io/stop), modelStatus
-- (transitionStatus, lastFailureInfo) and the other conditions.
-- Only Lua's base and table libraries are available to Argo CD health checks.
local hs = {}

local function describe(condition)
  local text = condition.type .. " is " .. tostring(condition.status)
  if condition.reason ~= nil and condition.reason ~= "" then
    text = text .. ": " .. condition.reason
  end
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for KServe to report status"
  return hs
end

local conditions = obj.status.conditions or {}
local byType = {}
for _, condition in ipairs(conditions) do
  byType[condition.type] = condition
end

if byType.Stopped ~= nil and byType.Stopped.status == "True" then
  hs.status = "Suspended"
  hs.message = "InferenceService is stopped (annotation serving.kserve.io/stop)"
  return hs
end

local model = obj.status.modelStatus
if model ~= nil then
  local failure = model.lastFailureInfo or {}
  local why = ""
  if failure.reason ~= nil then why = failure.reason end
  if failure.message ~= nil then
    if why ~= "" then why = why .. ": " end
    why = why .. failure.message
  end
  if model.transitionStatus == "BlockedByFailedLoad" then
    hs.status = "Degraded"
    hs.message = "Model failed to load: " .. (why ~= "" and why or "BlockedByFailedLoad")
    return hs
  end
  if model.transitionStatus == "InvalidSpec" then
    hs.status = "Degraded"
    hs.message = "Invalid spec: " .. (why ~= "" and why or "InvalidSpec")
    return hs
  end
end

if byType.Ready ~= nil and byType.Ready.status == "False" then
  local culprit = byType.Ready
  for _, condition in ipairs(conditions) do
    if condition.status == "False" and condition.type ~= "Ready" and condition.type ~= "Stopped" then
      culprit = condition
      break
    end
  end
  hs.status = "Degraded"
  hs.message = describe(culprit)
  return hs
end

local predictor = nil
if obj.status.components ~= nil then predictor = obj.status.components.predictor end
if predictor ~= nil and predictor.latestCreatedRevision ~= nil and
    predictor.latestCreatedRevision ~= predictor.latestReadyRevision then
  hs.status = "Progressing"
  hs.message = "Revision " .. predictor.latestCreatedRevision .. " is not ready yet"
  return hs
end

if byType.Ready == nil or byType.Ready.status ~= "True" then
  hs.status = "Progressing"
  hs.message = byType.Ready ~= nil and describe(byType.Ready) or "Waiting for the Ready condition"
  return hs
end

for _, condition in ipairs(conditions) do
  if condition.status ~= "True" and condition.type ~= "Stopped" then
    hs.status = "Progressing"
    hs.message = describe(condition)
    return hs
  end
end

local canary = nil
if obj.spec ~= nil and obj.spec.predictor ~= nil then canary = obj.spec.predictor.canaryTrafficPercent end
if predictor ~= nil and predictor.latestRolledoutRevision ~= nil and
    predictor.latestRolledoutRevision ~= predictor.latestReadyRevision then
  if canary ~= nil and canary < 100 then
    hs.status = "Healthy"
    hs.message = "Canary revision " .. tostring(predictor.latestReadyRevision) .. " serves " ..
      tostring(canary) .. "% of traffic"
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Traffic has not moved to revision " .. tostring(predictor.latestReadyRevision) .. " yet"
  return hs
end

hs.status = "Healthy"
hs.message = "InferenceService is ready"
return hs
