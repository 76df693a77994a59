-- POST /auth/token with correct credentials: BENCH_FORM_BODIES holds the
-- already urlencoded forms (username=...&password=...), one per line, of
-- several accounts, taken in turn: a login storm is many users logging in
-- (the logins of one account are checked one at a time by each process).
-- Counts statuses, because only the 200s are logins; 503 (hashing queue
-- timeout) and others are reported.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local forms = {}
for form in (os.getenv("BENCH_FORM_BODIES") or ""):gmatch("[^\n]+") do
   table.insert(forms, form)
end
assert(#forms > 0, "BENCH_FORM_BODIES is not set")

local requests = {}
for i, form in ipairs(forms) do
   requests[i] = wrk.format(
      "POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" }, form
   )
end

local turn = 0
function request()
   turn = turn % #requests + 1
   return requests[turn]
end

count_statuses()
