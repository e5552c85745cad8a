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

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
