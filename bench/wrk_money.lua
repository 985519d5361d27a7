-- wrk script for money routes: one bearer token per request (rotating), a
-- fresh Idempotency-Key on every request, and a JSON body: the same for all
-- (BODY), or one per token line (BODY_FILE). Prints one JSON summary line.
-- Arguments: TOKEN_FILE PATH BODY|@BODY_FILE
local tokens, bodies = {}, {}
local idx, sent = 0, 0
local path, body = "/", nil
local prefix = tostring(math.random(1, 1e9))

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  path = args[2]
  if string.sub(args[3], 1, 1) == "@" then
    for line in io.lines(string.sub(args[3], 2)) do bodies[#bodies + 1] = line end
  else
    body = args[3]
  end
  prefix = prefix .. "-" .. tostring(math.random(1, 1e9))
end

function request()
  idx = idx % #tokens + 1
  sent = sent + 1
  local headers = {
    Authorization = "Bearer " .. tokens[idx],
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. "-" .. sent,
  }
  return wrk.format("POST", path, headers, bodies[idx] or body)
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
