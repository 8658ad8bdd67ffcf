-- wrk script: POST one file as the multipart field "file", the same body every time.
--   wrk ... -s bench/multipart.lua URL -- PATH CONTENT_TYPE
-- done() prints one line "BENCH_JSON {...}" with counts and latency percentiles (µs).

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")

function init(args)
  common.post(args[1], args[2])
end

function done(summary, latency, requests)
  common.report(summary, latency)
end
