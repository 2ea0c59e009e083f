-- Forward new fundus photographs from Orthanc to the DR grading gateway (STOW-RS intake).
--
-- Installed by pacs/orthanc/orthanc.json ("LuaScripts"); settings come from its "DrgGateway"
-- section:  Url          gateway STOW-RS endpoint, e.g. "http://drg-gateway:8080/dicomweb/studies"
--           ApiKey       gateway API key with the "pacs" scope (may be "${DRG_API_KEY}")
--           MaxAttempts  tries per instance before giving up (default 12)
--           RetryBaseSeconds  first retry delay, doubled per failure up to 10 min (default 10;
--                        12 attempts then span about an hour)
-- Only photographs are forwarded (Ophthalmic Photography 8/16 bit, Secondary Capture, VL
-- Photographic). The DICOM SR results the gateway stores back into Orthanc are NOT forwarded
-- (their SOP class is not in the list), so there is no loop.
-- Nothing about the patient is logged: only Orthanc's own instance ids.
-- Failed forwards are kept in memory and retried, once their backoff has passed, whenever
-- another instance arrives or a study becomes stable (Orthanc 1.10 Lua has no timer). After an
-- Orthanc restart or "giving up", re-send with the "drg-gateway" DICOMweb server (see
-- docs/pacs.md). The gateway is idempotent, so re-sending is always safe.

local PHOTOGRAPH_CLASSES = {
  ['1.2.840.10008.5.1.4.1.1.77.1.5.1'] = true,  -- Ophthalmic Photography 8 Bit Image
  ['1.2.840.10008.5.1.4.1.1.77.1.5.2'] = true,  -- Ophthalmic Photography 16 Bit Image
  ['1.2.840.10008.5.1.4.1.1.7'] = true,         -- Secondary Capture Image
  ['1.2.840.10008.5.1.4.1.1.77.1.4'] = true,    -- VL Photographic Image
}
local RETRIES_PER_EVENT = 20

local settings = GetOrthancConfiguration()['DrgGateway'] or {}
local url = settings['Url']
local apiKey = settings['ApiKey']
local maxAttempts = tonumber(settings['MaxAttempts'] or 12)
local retryBase = tonumber(settings['RetryBaseSeconds'] or 10)
local MAX_DELAY = 600
local pending = {}  -- Orthanc instance id -> {failures = n, due = os.time() of the next try}

if url == nil or url == '' or apiKey == nil or apiKey == '' then
  error('drg-forward.lua: set "DrgGateway": {"Url": ..., "ApiKey": ...} in the configuration')
end

local function forward(instanceId)
  local ok, dicom = pcall(RestApiGet, '/instances/' .. instanceId .. '/file')
  if not ok or dicom == nil then
    return true  -- the instance was deleted meanwhile: nothing left to forward
  end
  local headers = {
    ['X-API-Key'] = apiKey,
    ['Content-Type'] = 'application/dicom',
    ['Accept'] = 'application/dicom+json',
  }
  -- HttpPost returns nil when the gateway is unreachable or answers with an error status.
  local answer = HttpPost(url, dicom, headers)
  return answer ~= nil
end

local function attempt(instanceId)
  if forward(instanceId) then
    pending[instanceId] = nil
    return
  end
  local failures = (pending[instanceId] and pending[instanceId].failures or 0) + 1
  if failures >= maxAttempts then
    pending[instanceId] = nil
    print('drg-forward: giving up on instance ' .. instanceId .. ' after ' .. failures ..
          ' attempts; re-send it through the drg-gateway DICOMweb server')
  else
    local delay = math.min(MAX_DELAY, retryBase * 2 ^ (failures - 1))
    pending[instanceId] = { failures = failures, due = os.time() + delay }
    print('drg-forward: gateway did not accept instance ' .. instanceId ..
          '; retry in ' .. delay .. ' s or later')
  end
end

local function retryPending(skip)
  local now = os.time()
  local budget = RETRIES_PER_EVENT
  for instanceId, state in pairs(pending) do
    if budget == 0 then
      return
    end
    if instanceId ~= skip and state.due <= now then
      budget = budget - 1
      attempt(instanceId)
    end
  end
end

function OnStoredInstance(instanceId, tags, metadata, origin)
  local sopClass = metadata['SopClassUid'] or tags['SOPClassUID']
  if PHOTOGRAPH_CLASSES[sopClass] and tags['Modality'] ~= 'SR' then
    attempt(instanceId)
  end
  retryPending(instanceId)
end

function OnStableStudy(studyId, tags, metadata)
  retryPending()
end
