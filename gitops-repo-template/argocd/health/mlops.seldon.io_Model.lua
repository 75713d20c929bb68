-- Health of a Seldon Core 2 Model (mlops.seldon.io/v1alpha1).
-- Argo CD ships no check for this kind: without this one an Application reads Healthy as
-- soon as the Model object exists, whether the model loaded or not.
-- Seldon's operator writes the scheduler's state word (ModelAvailable, ModelProgressing,
-- ModelFailed, ScheduleFailed, ModelScaledDown...) and its reason text into the ModelReady
-- condition (mirrored into Ready), the state in `message` and the text in `reason`; both
-- fields are read, so a swap in a later release does not break the check.
-- status.observedGeneration is honoured when present; Seldon 2.x's operator does not set
-- it today (its scheduler drops events of older generations instead), so right after an
-- edit the previous generation's ModelReady may show until the scheduler reports.
-- Only Lua's base and table libraries are available to Argo CD health checks.
local hs = {}
local states = {
  ModelAvailable = true, ModelProgressing = true, ModelFailed = true, ScheduleFailed = true,
  ModelScaledDown = true, ModelStateUnknown = true, ModelCreate = true,
  ModelTerminating = true, ModelTerminated = true, ModelTerminateFailed = true,
  ModelTerminate = true,
}
local failures = {
  ModelFailed = "Model failed to load",
  ScheduleFailed = "Model could not be scheduled on a server",
  ModelTerminateFailed = "Model failed to unload",
}

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Seldon to schedule the model"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Seldon has not processed generation " .. tostring(generation) ..
    " yet (observed " .. tostring(observed) .. ")"
  return hs
end

local ready = nil
local mirrored = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "ModelReady" then ready = condition end
    if condition.type == "Ready" then mirrored = condition end
  end
end
if ready == nil then ready = mirrored end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Seldon to report the model's state"
  return hs
end

local state = ""
local detail = ""
for _, field in ipairs({ "message", "reason" }) do
  local value = ready[field]
  if value ~= nil and value ~= "" then
    if states[value] and state == "" then
      state = value
    elseif detail == "" then
      detail = value
    end
  end
end
local replicas = tostring(obj.status.availableReplicas or 0) .. "/" ..
  tostring(obj.status.replicas or 0) .. " replicas available"

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = "Model loaded, " .. replicas
elseif failures[state] ~= nil then
  hs.status = "Degraded"
  if detail == "" then detail = state end
  hs.message = failures[state] .. ": " .. detail
elseif state == "ModelScaledDown" then
  hs.status = "Suspended"
  hs.message = "Model scaled down to zero replicas"
else
  hs.status = "Progressing"
  hs.message = "Model loading (" .. (state ~= "" and state or "no state yet") .. "), " .. replicas
  if detail ~= "" then hs.message = hs.message .. ": " .. detail end
end
return hs
