-- Health of a Gateway API HTTPRoute (gateway.networking.k8s.io/v1), the object that splits
-- and mirrors traffic to Deployment runtimes during a Slipway rollout.
-- Replaces Argo CD's built-in check (3.1+), which counts only a condition that is "False"
-- as a problem, so a route a controller has not reconciled yet (Accepted Unknown, reason
-- Pending) read Healthy, and which is satisfied by any one parent: here every parent the
-- spec names must have accepted the route.
-- The contract (Gateway API v1.3, apis/v1/shared_types.go): status.parents has one entry
-- per parent a controller serves, echoing its parentRef; each entry's conditions are
-- Accepted (MUST be set: True, or False with NotAllowedByListeners, NoMatchingParent...,
-- or Unknown/Pending), ResolvedRefs (False: BackendNotFound, RefNotPermitted, InvalidKind,
-- UnsupportedProtocol) and PartiallyInvalid (only ever True: rules dropped, or the whole
-- route kept at its last good generation, "Fall Back"). A parent no controller can
-- resolve gets no entry at all, so a missing entry stays Progressing with that reason.
-- Freshness: the route status has no observedGeneration of its own; each condition
-- carries the generation it describes, compared with metadata.generation.
-- Only Lua's base and table libraries are available to Argo CD health checks.
local hs = {}
local generation = obj.metadata.generation
local namespace = obj.metadata.namespace or ""

local function text(value, default)
  if value ~= nil and value ~= "" then return tostring(value) end
  return default
end

-- A parentRef with the API's defaults filled in (group gateway.networking.k8s.io, kind
-- Gateway, the route's namespace): controllers echo the ref as written or with defaults.
local function refKey(ref)
  local group = ref.group
  if group == nil then group = "gateway.networking.k8s.io" end
  return text(group, "core") .. "/" .. text(ref.kind, "Gateway") .. "/" ..
    text(ref.namespace, namespace) .. "/" .. text(ref.name, "") .. "/" ..
    text(ref.sectionName, "") .. "/" .. text(ref.port, "")
end

local function label(ref)
  local name = text(ref.kind, "Gateway") .. " " .. text(ref.name, "?")
  if ref.sectionName ~= nil then name = name .. " (listener " .. tostring(ref.sectionName) .. ")" end
  return name
end

local function why(condition)
  local reason = text(condition.reason, "")
  local message = text(condition.message, "")
  if reason ~= "" and message ~= "" then return reason .. ": " .. message end
  if reason ~= "" then return reason end
  if message ~= "" then return message end
  return condition.type .. " is " .. tostring(condition.status)
end

local function stale(condition)
  return generation ~= nil and condition.observedGeneration ~= nil and
    condition.observedGeneration < generation
end

-- One parent's verdict from the entry a controller wrote for it.
local function judge(entry, name)
  local byType = {}
  for _, condition in ipairs(entry.conditions or {}) do
    byType[condition.type] = condition
  end
  local partial = byType.PartiallyInvalid
  if partial ~= nil and partial.status == "True" and not stale(partial) then
    return "Degraded", name .. " applies only part of the route: " .. why(partial)
  end
  local accepted = byType.Accepted
  if accepted == nil then
    return "Progressing", name .. " has not reported whether it accepts the route"
  end
  if stale(accepted) then
    return "Progressing", name .. " has not processed generation " .. tostring(generation) ..
      " yet (observed " .. tostring(accepted.observedGeneration) .. ")"
  end
  if accepted.status == "False" then
    return "Degraded", name .. " did not accept the route: " .. why(accepted)
  end
  if accepted.status ~= "True" then
    return "Progressing", name .. " has not accepted the route yet: " .. why(accepted)
  end
  local refs = byType.ResolvedRefs
  if refs ~= nil then
    if stale(refs) then
      return "Progressing", name .. " has not resolved the backends of generation " ..
        tostring(generation) .. " yet"
    end
    if refs.status == "False" then
      return "Degraded", name .. " cannot send traffic to a backend: " .. why(refs)
    end
    if refs.status ~= "True" then
      return "Progressing", name .. " is resolving the backends: " .. why(refs)
    end
  end
  return "Healthy", name
end

local parents = {}
if obj.spec ~= nil and obj.spec.parentRefs ~= nil then parents = obj.spec.parentRefs end
if #parents == 0 then
  hs.status = "Degraded"
  hs.message = "The route names no parent (spec.parentRefs): no Gateway or mesh applies it"
  return hs
end

local entries = {}
if obj.status ~= nil and obj.status.parents ~= nil then entries = obj.status.parents end

local rank = { Healthy = 1, Progressing = 2, Degraded = 3 }
local worst, worstMessage = "Healthy", ""
local healthy = {}
for _, ref in ipairs(parents) do
  local key = refKey(ref)
  local name = label(ref)
  local found = false
  for _, entry in ipairs(entries) do
    if entry.parentRef ~= nil and refKey(entry.parentRef) == key then
      found = true
      local status, message = judge(entry, name)
      if status == "Healthy" then
        table.insert(healthy, name)
      elseif rank[status] > rank[worst] then
        worst, worstMessage = status, message
      end
    end
  end
  if not found and rank.Progressing > rank[worst] then
    worst = "Progressing"
    worstMessage = "No controller has reported on " .. name .. " yet: it may not exist, or " ..
      "no Gateway controller or mesh serves it"
  end
end

hs.status = worst
if worst == "Healthy" then
  hs.message = "Route accepted by " .. table.concat(healthy, ", ")
else
  hs.message = worstMessage
end
return hs
