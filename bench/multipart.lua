-- wrk script: POST one file as the multipart field "file", the same body every time.
--   wrk ... -s bench/multipart.lua URL -- PATH CONTENT_TYPE
-- done() prints one line "BENCH_JSON {...}" with counts and latency percentiles (µs).

local boundary = "----digitsbench7c1e0f5b2a"

local function read_file(path)
  local handle = assert(io.open(path, "rb"))
  local content = handle:read("*a")
  handle:close()
  return content
end

function multipart(path, content_type)
  local name = path:match("([^/]+)$")
  return "--" .. boundary .. "\r\n"
    .. 'Content-Disposition: form-data; name="file"; filename="' .. name .. '"\r\n'
    .. "Content-Type: " .. content_type .. "\r\n\r\n"
    .. read_file(path) .. "\r\n--" .. boundary .. "--\r\n"
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
  wrk.body = multipart(args[1], args[2])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, '
      .. '"p999": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
