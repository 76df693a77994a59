-- POST /auth/token with correct credentials: BENCH_FORM_BODY is the already
-- urlencoded form (username=...&password=...). Counts statuses, because only
-- the 200s are logins; 503 (hashing queue timeout) and others are reported.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local body = os.getenv("BENCH_FORM_BODY")
assert(body and body ~= "", "BENCH_FORM_BODY is not set")

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
count_statuses()
