-- What the wrk scripts share: the multipart body and the BENCH_JSON result line.
-- Loaded with dofile() from the folder of the script that wrk runs.

local common = {}

common.boundary = "----digitsbench7c1e0f5b2a"

local function read_file(path)
  local handle = assert(io.open(path, "rb"))
  local content = handle:read("*a")
  handle:close()
  return content
end

-- A multipart/form-data body with the file at PATH as the field "file".
function common.multipart(path, content_type)
  local name = path:match("([^/]+)$")
  return "--" .. common.boundary .. "\r\n"
    .. 'Content-Disposition: form-data; name="file"; filename="' .. name .. '"\r\n'
    .. "Content-Type: " .. content_type .. "\r\n\r\n"
    .. read_file(path) .. "\r\n--" .. common.boundary .. "--\r\n"
end

function common.post(path, content_type)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. common.boundary
  wrk.body = common.multipart(path, content_type)
end

-- Writes one line "BENCH_JSON {...}": counts, errors and latency percentiles (µs),
-- then EXTRA (already JSON, starting with ", ") if given.
function common.report(summary, latency, extra)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, '
      .. '"p999": %d}%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), extra or ""))
end

return common
