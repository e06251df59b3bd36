-- POST /chat/message with a distinct message of about 100 characters on every request,
-- so the service stores (and the assistant answers) something new each time. Requests go
-- round-robin to 1,024 conversations, as from many users: a conversation answers one
-- message at a time, so 64 connections posting to one conversation would measure its
-- queue instead of the service.
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
   local body = string.format(
      '{"message": "bench %d-%d %s", "conversation_id": "bench-%d"}',
      thread_number, sent, filler, sent % 1024)
   return wrk.format("POST", nil, headers, body)
end
