-- Shared by the wrk scripts (loaded with dofile): collects each thread and, in
-- done(), prints one machine-readable line that bench/wrk_runner.py parses.
-- A JSON line is sturdier than scraping wrk's human output, whose units vary.

bench_threads = {}

function setup(thread)
   table.insert(bench_threads, thread)
end

-- Opt-in per-status counting. Off by default because defining response()
-- makes wrk hand every response to Lua, which slows the load generator: fine
-- for logins (a few per second), not for the fast GET runs, which rely on
-- summary.errors.status (responses with a status >= 400) instead.
function count_statuses()
   statuses = {}
   response = function(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
   end
end

local function merged_statuses()
   local total = {}
   for _, thread in ipairs(bench_threads) do
      local counts = thread:get("statuses")
      if counts then
         for status, n in pairs(counts) do
            total[status] = (total[status] or 0) + n
         end
      end
   end
   local parts = {}
   for status, n in pairs(total) do
      table.insert(parts, string.format('"%d":%d', status, n))
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
   local e = summary.errors
   -- %.0f rather than %d: wrk's counters are doubles in Lua and may be huge
   -- (latency.min before any response).
   io.write(string.format(
      'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
      '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
      '"latency_us":{"min":%.0f,"mean":%.1f,"max":%.0f,"p50":%.0f,"p90":%.0f,"p99":%.0f},' ..
      '"statuses":%s}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      summary.requests > 0 and latency.min or 0, latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      merged_statuses()))
end
