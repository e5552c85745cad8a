-- GET /v1/face-auth/start with a pool of JWTs (requests formatted once, in init()).
local requests = {}
local n = 0
local counter = 0

function init(args)
  for line in io.lines(os.getenv("JWT_FILE")) do
    n = n + 1
    requests[n] = wrk.format("GET", "/v1/face-auth/start", { ["Authorization"] = "Bearer " .. line })
  end
  counter = math.random(n)
end

function request()
  counter = counter % n + 1
  return requests[counter]
end

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
