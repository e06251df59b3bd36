-- POST /chat/message with a distinct message of about 100 characters on every request,
-- so the service stores (and the assistant answers) something new each time.
require "report"

local filler = string.rep("lorem ipsum ", 8)
local headers = { ["Content-Type"] = "application/json" }
local threads = 0
local sent = 0

function setup(thread)
   thread:set("thread_number", threads)
   threads = threads + 1
end

function request()
   sent = sent + 1
   local body = string.format('{"message": "bench %d-%d %s"}', thread_number, sent, filler)
   return wrk.format("POST", nil, headers, body)
end
