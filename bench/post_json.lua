-- POST the URL's path with the JSON body BENCH_JSON_BODY (POST
-- /auth/password/forgot with an address). Counts statuses: the run is
-- clean only if every answer is the one expected.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local body = os.getenv("BENCH_JSON_BODY")
assert(body and body ~= "", "BENCH_JSON_BODY is not set")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = body

count_statuses()
