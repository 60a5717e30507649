-- POST /api/voice: every request queues an outbound call from the bench's DID
-- (BENCH_FROM) to a number unique per wrk thread and request, with the bench's API key.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local key = os.getenv("BENCH_KEY")
local from = os.getenv("BENCH_FROM")
local n = 0

function request()
  n = n + 1
  local body = string.format('{"from": "%s", "to": "+1415%d%06d"}', from, 2 + tid, n % 1000000)
  return wrk.format("POST", "/api/voice", {["Authorization"] = "Bearer " .. key,
                                           ["Content-Type"] = "application/json"}, body)
end
