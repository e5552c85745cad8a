-- GET /v1/face-auth/start with a pool of JWTs.
local tokens = {}
local n = 0
local counter = 0

function init(args)
  for line in io.lines(os.getenv("JWT_FILE")) do
    n = n + 1
    tokens[n] = line
  end
  counter = math.random(n)
end

function request()
  counter = counter % n + 1
  return wrk.format("GET", "/v1/face-auth/start", { ["Authorization"] = "Bearer " .. tokens[counter] })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d errors=%d non2xx3xx=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.connect + e.read + e.write + e.timeout, e.status))
end
