-- POST /v1/links with a pool of JWTs (many users); saves minted ids when IDS_OUT is set.
local tokens = {}
local n = 0
local counter = 0
local out = nil
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("JWT_FILE")) do
    n = n + 1
    tokens[n] = line
  end
  counter = math.random(n)
  local dir = os.getenv("IDS_OUT")
  if dir and dir ~= "" then
    out = io.open(dir .. "/ids-" .. id .. "-" .. tostring(os.time()) .. "-" .. tostring(math.random(1e9)), "w")
  end
end

function request()
  counter = counter % n + 1
  return wrk.format("POST", "/v1/links", { ["Authorization"] = "Bearer " .. tokens[counter] }, "")
end

function response(status, headers, body)
  if out and status == 201 then
    local link = body:match('"id":"([0-9a-f%-]+)"')
    if link then out:write(link, "\n") end
  end
end

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
