-- Shared by the API benchmarks: counts statuses and "database is locked" bodies in every
-- wrk thread, and prints one JSON line at the end (prefixed BENCH-JSON).
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  s2, s4, s5, locked, other = 0, 0, 0, 0, 0
end

function response(status, headers, body)
  if status >= 200 and status < 300 then s2 = s2 + 1
  elseif status >= 500 then s5 = s5 + 1
  elseif status >= 400 then s4 = s4 + 1
  else other = other + 1 end
  if body and string.find(body, "database is locked", 1, true) then locked = locked + 1 end
end

function done(summary, latency, requests)
  local t = {s2 = 0, s4 = 0, s5 = 0, locked = 0, other = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "s2": %d, "s4": %d, "s5": %d, "locked": %d, "other": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"status_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, t.s2, t.s4, t.s5, t.locked, t.other, e.connect, e.read, e.write,
    e.timeout, e.status))
end
