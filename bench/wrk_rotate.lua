-- wrk script: rotate through a file of bearer tokens, one per request, and
-- print the summary as one JSON line. Arguments: TOKEN_FILE [METHOD] [PATH_FILE]
-- PATH_FILE, when given, holds one path per token line (same order).
local tokens, paths = {}, {}
local idx = 0
local method = "GET"

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  method = args[2] or method
  if args[3] then for line in io.lines(args[3]) do paths[#paths + 1] = line end end
  idx = math.random(#tokens)
end

function request()
  idx = idx % #tokens + 1
  local p = paths[idx] or wrk.path
  return wrk.format(method, p, {Authorization = "Bearer " .. tokens[idx]})
end

function done(summary, latency, requests)
  local s = summary
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    s.requests, s.duration, s.errors.status,
    s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
