-- GET the URL given to wrk; the request is built once by wrk itself (no request() function).
local dir = debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./"
dofile(dir .. "report.lua")
