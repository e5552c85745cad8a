-- GET /l/{id} on links minted beforehand, each used once: thread t takes ids t, t+T, t+2T, …
-- from the slice [OFFSET, OFFSET+COUNT) of IDS_FILE (requests formatted once, in init()).
local ids = {}
local n = 0
local i = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("THREADS"))
  local offset = tonumber(os.getenv("OFFSET"))
  local count = tonumber(os.getenv("COUNT"))
  local line_no = 0
  for line in io.lines(os.getenv("IDS_FILE")) do
    if line_no >= offset and line_no < offset + count and (line_no - offset) % nthreads == id then
      n = n + 1
      ids[n] = wrk.format("GET", "/l/" .. line)
    end
    line_no = line_no + 1
    if line_no >= offset + count then break end
  end
end

function request()
  i = i + 1
  if i > n then
    -- Out of fresh links: this shows up as 404s in the report (the pool was too small).
    return wrk.format("GET", "/l/00000000-0000-4000-8000-000000000000")
  end
  return ids[i]
end

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
