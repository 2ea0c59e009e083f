-- Forward each stable study's fundus photographs from Orthanc to the DR grading gateway
-- (STOW-RS intake): one multipart request per study, so the gateway grades the study as one
-- exam and stores one study SR back (docs/pacs.md "One result per study").
--
-- Installed by pacs/orthanc/orthanc.json ("LuaScripts"); settings come from its "DrgGateway"
-- section:  Url          gateway STOW-RS endpoint, e.g. "http://drg-gateway:8080/dicomweb/studies"
--           ApiKey       gateway API key with the "pacs" scope (may be "${DRG_API_KEY}")
--           MaxParts     instances per request (default 20 = the gateway's DRG_PACS_MAX_PARTS);
--                        a bigger study goes in several requests, which the gateway joins
--                        into one exam within DRG_PACS_STUDY_SETTLE_S
--           MaxAttempts  tries per study before giving up (default 12)
--           RetryBaseSeconds  first retry delay, doubled per failure up to 10 min (default 10;
--                        12 attempts then span about an hour)
-- A study is sent when Orthanc finds it stable ("StableAge" seconds without a new instance).
-- Only photographs not sent before are forwarded (Ophthalmic Photography 8/16 bit, Secondary
-- Capture, VL Photographic); a photograph the gateway accepted is marked with the user
-- metadata "DrgForwarded" (declared in orthanc.json "UserMetadata"), kept in Orthanc's index,
-- so the SR the gateway stores back (not a photograph), an Orthanc restart or a photograph
-- added to the study later never re-sends the others. Nothing about the patient is logged:
-- only Orthanc's own study ids.
-- Failed studies are kept in memory and retried, once their backoff has passed, whenever
-- another instance arrives or a study becomes stable (Orthanc 1.10 Lua has no timer). After an
-- Orthanc restart or "giving up", re-send with the "drg-gateway" DICOMweb server (see
-- docs/pacs.md). The gateway is idempotent, so re-sending is always safe.

local PHOTOGRAPH_CLASSES = {
  ['1.2.840.10008.5.1.4.1.1.77.1.5.1'] = true,  -- Ophthalmic Photography 8 Bit Image
  ['1.2.840.10008.5.1.4.1.1.77.1.5.2'] = true,  -- Ophthalmic Photography 16 Bit Image
  ['1.2.840.10008.5.1.4.1.1.7'] = true,         -- Secondary Capture Image
  ['1.2.840.10008.5.1.4.1.1.77.1.4'] = true,    -- VL Photographic Image
}
local FORWARDED = 'DrgForwarded'
local RETRIES_PER_EVENT = 20

local settings = GetOrthancConfiguration()['DrgGateway'] or {}
local url = settings['Url']
local apiKey = settings['ApiKey']
local maxParts = tonumber(settings['MaxParts'] or 20)
local maxAttempts = tonumber(settings['MaxAttempts'] or 12)
local retryBase = tonumber(settings['RetryBaseSeconds'] or 10)
local MAX_DELAY = 600
local pending = {}  -- Orthanc study id -> {failures = n, due = os.time() of the next try}

if url == nil or url == '' or apiKey == nil or apiKey == '' then
  error('drg-forward.lua: set "DrgGateway": {"Url": ..., "ApiKey": ...} in the configuration')
end
math.randomseed(os.time())

local function boundary()
  local hex = {}
  for i = 1, 32 do
    hex[i] = string.format('%x', math.random(0, 15))
  end
  return 'drg-' .. table.concat(hex)
end

-- One multipart/related STOW-RS request; true when the gateway answered 2xx.
local function post(files)
  local mark = boundary()
  local body = {}
  for _, dicom in ipairs(files) do
    table.insert(body, '--' .. mark .. '\r\nContent-Type: application/dicom\r\n\r\n')
    table.insert(body, dicom)
    table.insert(body, '\r\n')
  end
  table.insert(body, '--' .. mark .. '--\r\n')
  local headers = {
    ['X-API-Key'] = apiKey,
    ['Content-Type'] = 'multipart/related; type="application/dicom"; boundary=' .. mark,
    ['Accept'] = 'application/dicom+json',
  }
  -- HttpPost returns nil when the gateway is unreachable or answers with an error status.
  return HttpPost(url, table.concat(body), headers) ~= nil
end

-- A photograph the gateway has not accepted yet (one metadata read, no error when unmarked).
local function unsent(instanceId)
  local ok, answer = pcall(RestApiGet, '/instances/' .. instanceId .. '/metadata?expand')
  if not ok or answer == nil then
    return false  -- deleted meanwhile
  end
  local metadata = ParseJson(answer)
  return PHOTOGRAPH_CLASSES[metadata['SopClassUid']] == true and metadata[FORWARDED] == nil
end

local function sendBatch(ids)
  local files = {}
  for _, instanceId in ipairs(ids) do
    local ok, dicom = pcall(RestApiGet, '/instances/' .. instanceId .. '/file')
    if ok and dicom ~= nil then  -- else deleted meanwhile: nothing to forward
      table.insert(files, dicom)
    end
  end
  if #files > 0 and not post(files) then
    return false
  end
  for _, instanceId in ipairs(ids) do
    pcall(RestApiPut, '/instances/' .. instanceId .. '/metadata/' .. FORWARDED, '1')
  end
  return true
end

-- Send the study's photographs not sent before, MaxParts per request; true when all went.
local function forward(studyId)
  local ok, answer = pcall(RestApiGet, '/studies/' .. studyId .. '/instances')
  if not ok or answer == nil then
    return true  -- the study was deleted meanwhile
  end
  local batch = {}
  for _, instance in ipairs(ParseJson(answer)) do
    if unsent(instance['ID']) then
      table.insert(batch, instance['ID'])
      if #batch == maxParts then
        if not sendBatch(batch) then
          return false
        end
        batch = {}
      end
    end
  end
  return #batch == 0 or sendBatch(batch)
end

local function attempt(studyId)
  if forward(studyId) then
    pending[studyId] = nil
    return
  end
  local failures = (pending[studyId] and pending[studyId].failures or 0) + 1
  if failures >= maxAttempts then
    pending[studyId] = nil
    print('drg-forward: giving up on study ' .. studyId .. ' after ' .. failures ..
          ' attempts; re-send it through the drg-gateway DICOMweb server')
  else
    local delay = math.min(MAX_DELAY, retryBase * 2 ^ (failures - 1))
    pending[studyId] = { failures = failures, due = os.time() + delay }
    print('drg-forward: gateway did not accept study ' .. studyId ..
          '; retry in ' .. delay .. ' s or later')
  end
end

local function retryPending(skip)
  local now = os.time()
  local budget = RETRIES_PER_EVENT
  for studyId, state in pairs(pending) do
    if budget == 0 then
      return
    end
    if studyId ~= skip and state.due <= now then
      budget = budget - 1
      attempt(studyId)
    end
  end
end

function OnStoredInstance(instanceId, tags, metadata, origin)
  retryPending()
end

function OnStableStudy(studyId, tags, metadata)
  attempt(studyId)
  retryPending(studyId)
end
