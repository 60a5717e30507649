-- POST /ivr: every request creates a new IVR (ids unique per wrk thread and request)
-- from the tree in BENCH_TREE, with the bench's API key.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local tree = os.getenv("BENCH_TREE")
local key = os.getenv("BENCH_KEY")
local run = os.getenv("BENCH_RUN")
local n = 0

function request()
  n = n + 1
  local body = string.format('{"id": "w%s-%d-%d", "nodes": %s}', run, tid, n, tree)
  return wrk.format("POST", "/ivr", {["Authorization"] = "Bearer " .. key,
                                     ["Content-Type"] = "application/json"}, body)
end
