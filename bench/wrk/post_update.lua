-- POST /update: each request a new body, alternately changing the message and the counter,
-- so that every request appends an event (as real clients would).
local dir = debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./"
dofile(dir .. "report.lua")

local headers = { ["Content-Type"] = "application/json" }
local n = 0

function init(args)
  -- Threads count in disjoint ranges, so that no two requests of a run carry the same body.
  n = (thread_id or 0) * 1000000000
end

function request()
  n = n + 1
  local body
  if n % 2 == 0 then
    body = '{"counter": ' .. n .. '}'
  else
    body = '{"message": "bench ' .. n .. '"}'
  end
  return wrk.format("POST", nil, headers, body)
end
