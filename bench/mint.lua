-- POST /v1/links with a pool of JWTs (many users); saves minted ids when IDS_OUT is set.
-- The requests are formatted once in init(), and response() exists only when ids are saved:
-- wrk then does per request what it does for the nginx ceiling run (no Lua per response).
local requests = {}
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
    requests[n] = wrk.format("POST", "/v1/links", { ["Authorization"] = "Bearer " .. line }, "")
  end
  counter = math.random(n)
  local dir = os.getenv("IDS_OUT")
  if dir and dir ~= "" then
    out = io.open(dir .. "/ids-" .. id .. "-" .. tostring(os.time()) .. "-" .. tostring(math.random(1e9)), "w")
  end
end

function request()
  counter = counter % n + 1
  return requests[counter]
end

if (os.getenv("IDS_OUT") or "") ~= "" then
  function response(status, headers, body)
    if out and status == 201 then
      local link = body:match('"id":"([0-9a-f%-]+)"')
      if link then out:write(link, "\n") end
    end
  end
end

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
