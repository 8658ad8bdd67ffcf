-- wrk script for the soak: several kinds of upload at once, every answer checked.
--   wrk -tN -cM ... -s bench/soak.lua URL -- KIND:STATUS:CONTENT_TYPE:PATH ... (N specs)
-- Each wrk thread sends one kind only (thread i the i-th spec, on M/N connections),
-- so every answer is known to belong to its kind: the mix is set by repeating specs.
-- An answer is as documented when its status is the kind's and its body has the
-- documented shape (200: digit and probabilities; 4xx: {"detail": ...}).
-- done() prints "BENCH_JSON {...}" with answers per kind and status, undocumented
-- answers per kind, and latency percentiles (µs) over all kinds.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("slot", #threads)
end

function init(args)
  local spec = args[slot]
  local status, content_type, path
  kind, status, content_type, path = spec:match("^([^:]+):(%d+):([^:]+):(.+)$")
  expected = tonumber(status)
  answers, undocumented = {}, 0
  common.post(path, content_type)
end

local function documented(status, body)
  if status ~= expected then
    return false
  end
  if status == 200 then
    return body:find('"digit"', 1, true) ~= nil and body:find('"probabilities"', 1, true) ~= nil
  end
  return body:find('^{"detail":') ~= nil
end

function response(status, headers, body)
  local key = tostring(status)
  answers[key] = (answers[key] or 0) + 1
  if not documented(status, body) then
    undocumented = undocumented + 1
  end
end

function done(summary, latency, requests)
  local by_kind, bad = {}, {}
  for _, thread in ipairs(threads) do
    local name = thread:get("kind")
    by_kind[name] = by_kind[name] or {}
    for status, count in pairs(thread:get("answers") or {}) do
      by_kind[name][status] = (by_kind[name][status] or 0) + count
    end
    bad[name] = (bad[name] or 0) + (thread:get("undocumented") or 0)
  end
  local kinds, bads = {}, {}
  for name, statuses in pairs(by_kind) do
    local parts = {}
    for status, count in pairs(statuses) do
      table.insert(parts, string.format('"%s": %d', status, count))
    end
    table.insert(kinds, string.format('"%s": {%s}', name, table.concat(parts, ", ")))
    table.insert(bads, string.format('"%s": %d', name, bad[name]))
  end
  common.report(summary, latency, string.format(
    ', "answers": {%s}, "undocumented": {%s}', table.concat(kinds, ", "), table.concat(bads, ", ")))
end
