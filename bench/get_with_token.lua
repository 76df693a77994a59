-- GET the URL's path (GET /users/me, or a /users?... page) as a bearer of
-- BENCH_TOKEN. The same request goes to the ceiling app, so both runs send
-- identical bytes.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local token = os.getenv("BENCH_TOKEN")
assert(token and token ~= "", "BENCH_TOKEN is not set")

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. token
