-- Health of a KEDA ScaledObject (keda.sh/v1alpha1), the autoscaler of streaming
-- consumers. KEDA reports the conditions Ready, Active, Fallback and Paused; its status
-- has no observedGeneration, so a just-edited ScaledObject cannot be told from one KEDA
-- has processed: Slipway's rollout also waits for the Deployment it scales.
-- Paused is Suspended (someone paused scaling on purpose); Fallback means the scaler is
-- failing and KEDA holds the fallback replica count, which is Degraded.
-- Only Lua's base and table libraries are available to Argo CD health checks.
local hs = {}
local byType = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    byType[condition.type] = condition
  end
end

local function said(condition, default)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return default
end

local ready = byType.Ready
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = said(ready, "ScaledObject is not ready")
  if ready.reason ~= nil and ready.reason ~= "" then
    hs.message = ready.reason .. ": " .. hs.message
  end
  return hs
end
if byType.Fallback ~= nil and byType.Fallback.status == "True" then
  hs.status = "Degraded"
  hs.message = "Scaler failing, KEDA holds the fallback replica count: " ..
    said(byType.Fallback, "fallback active")
  return hs
end
if byType.Paused ~= nil and byType.Paused.status == "True" then
  hs.status = "Suspended"
  hs.message = said(byType.Paused, "ScaledObject is paused") ..
    " (remove the autoscaling.keda.sh/paused annotation to resume)"
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  if byType.Active ~= nil and byType.Active.status == "True" then
    hs.message = "Scaling: " .. said(byType.Active, "the trigger is active")
  else
    hs.message = "Ready; the trigger is inactive, so the target stays at its minimum"
  end
  return hs
end
hs.status = "Progressing"
hs.message = "Waiting for KEDA to set up scaling"
return hs
