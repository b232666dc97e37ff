-- Included by the scenario scripts: counts responses outside 2xx in every wrk thread and prints
-- one machine-readable line when the run ends, which bench/http_bench.py parses.
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  threads[#threads + 1] = thread
end

bad_status = 0

function response(status, headers, body)
  if status < 200 or status >= 300 then
    bad_status = bad_status + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("bad_status") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    "BENCH requests=%d seconds=%.3f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    bad, errors.connect + errors.read + errors.write + errors.timeout))
end
