-- POST /auth/token with grant_type=refresh_token, each request spending the
-- refresh token the last answer of its chain returned, as a client does.
-- BENCH_REFRESH_TOKENS holds one refresh token per session, one per line:
-- give more than connections (below). The tokens wait on a stack: an answer
-- pushes the new token, and wrk asks for the next request of that connection
-- right after its answer, so a connection spends the token it got last.
-- wrk may call request() again for a request it could not write at once
-- (seen at connect), which drops the token it took: give a few spare chains
-- beyond one per connection. A non-200 answer loses its chain too; once every
-- chain is lost, requests carry a token no server knows (counted as non-200).
-- With several wrk threads (BENCH_WRK_THREADS, each a Lua state of its own)
-- thread i takes every i-th token, so no chain is spent twice.
-- Counts statuses: only the 200s are refreshes.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local shared_setup = setup
function setup(thread)
   shared_setup(thread)
   thread:set("bench_thread_index", #bench_threads) -- 1-based
end

local all = {}
for token in (os.getenv("BENCH_REFRESH_TOKENS") or ""):gmatch("[^\n]+") do
   table.insert(all, token)
end
assert(#all > 0, "BENCH_REFRESH_TOKENS is not set")
local threads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")

local tokens = nil
local function own_tokens()
   local mine = {}
   local index = bench_thread_index or 1
   for i, token in ipairs(all) do
      if (i - 1) % threads == index - 1 then
         table.insert(mine, token)
      end
   end
   return mine
end

local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local LOST = "lost-chain"

function request()
   tokens = tokens or own_tokens()
   local token = table.remove(tokens) or LOST
   -- The tokens are base64url: nothing to escape in a form.
   return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

statuses = {}
function response(status, _, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 200 and tokens then
      local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if token then
         table.insert(tokens, token)
      end
   end
end
