-- Health of a Seldon Core 2 Experiment (mlops.seldon.io/v1alpha1), which splits traffic
-- between Models (candidates' weights) or mirrors it (mirror) during a Slipway rollout.
-- Argo CD ships no check for this kind: without this one an Application reads Healthy as
-- soon as the object exists, whether Seldon routes by it or not.
-- What the operator writes (operator/apis/mlops/v1alpha1/experiment_types.go and
-- operator/scheduler/experiment.go, v2): Knative-style conditions ExperimentReady (the
-- scheduler has set up the routes), CandidatesReady and MirrorReady (every candidate, and
-- the mirror, is a Model in state ModelAvailable; MirrorReady is True without a mirror)
-- and Ready, True only when all three are. The scheduler's text goes into `reason` and
-- `message` stays empty; both are read. The scheduler replaces the experiment at every
-- change and reports it inactive (ExperimentReady False, no text) until its routes are
-- set up again; False with a text is a routing error.
-- When the scheduler refuses the Experiment (another Experiment already uses the same
-- default model; the default is not a candidate) or cannot be reached, the operator
-- records the error as a condition of type ModelReady, False, and never clears it: it is
-- current only while it is newer than ExperimentReady's last transition.
-- status.observedGeneration is honoured when present; the operator does not set it today.
-- Only Lua's base and table libraries are available to Argo CD health checks.
local hs = {}

local function said(condition, default)
  for _, field in ipairs({ "reason", "message" }) do
    local value = condition[field]
    if value ~= nil and value ~= "" then return tostring(value) end
  end
  return default
end

local function names(list)
  local out = {}
  for _, item in ipairs(list or {}) do table.insert(out, tostring(item.name)) end
  return table.concat(out, ", ")
end

if obj.status == nil or obj.status.conditions == nil or #obj.status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for Seldon's scheduler to start the experiment"
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

local byType = {}
for _, condition in ipairs(obj.status.conditions) do
  byType[condition.type] = condition
end
local routed = byType.ExperimentReady
local spec = obj.spec or {}

local refused = byType.ModelReady
if refused ~= nil and refused.status == "False" then
  local current = routed == nil or routed.status ~= "True"
  if not current and refused.lastTransitionTime ~= nil and routed.lastTransitionTime ~= nil then
    -- RFC 3339 times in UTC compare as strings.
    current = refused.lastTransitionTime >= routed.lastTransitionTime
  end
  if current then
    hs.status = "Degraded"
    hs.message = "Seldon did not start the experiment: " .. said(refused, "no reason given")
    return hs
  end
end

if routed ~= nil and routed.status == "False" and said(routed, "") ~= "" then
  hs.status = "Degraded"
  hs.message = "Seldon's scheduler could not route the experiment: " .. said(routed, "")
  return hs
end
if routed == nil or routed.status ~= "True" then
  hs.status = "Progressing"
  hs.message = "Seldon's scheduler is setting up the experiment's routes"
  return hs
end

local candidates = byType.CandidatesReady
if candidates == nil or candidates.status ~= "True" then
  hs.status = "Progressing"
  hs.message = "Waiting for the candidate models (" .. names(spec.candidates) ..
    ") to be available; each Model's own health says why"
  return hs
end
local mirror = byType.MirrorReady
if mirror == nil or mirror.status ~= "True" then
  hs.status = "Progressing"
  hs.message = "Waiting for the mirror model" ..
    (spec.mirror ~= nil and (" " .. tostring(spec.mirror.name)) or "") .. " to be available"
  return hs
end

local split = {}
for _, candidate in ipairs(spec.candidates or {}) do
  table.insert(split, tostring(candidate.name) .. " " .. tostring(candidate.weight))
end
hs.status = "Healthy"
hs.message = "Experiment active: " .. table.concat(split, ", ")
if spec.mirror ~= nil then
  hs.message = hs.message .. "; mirroring " .. tostring(spec.mirror.percent) .. "% to " ..
    tostring(spec.mirror.name)
end
return hs
