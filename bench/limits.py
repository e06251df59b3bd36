"""The per-caller limits, off: a load generator's many connections come from one address and
one caller, but stand for many users, so what a load measures is the load, not the limits.
The bench's services get these, and so do the tests that load a service from one client
(tests/support/service.py); the limits' own tests are tests/security/."""

LIMITS_OFF = {
    "CHAT_RATE_LIMIT_RPS": "0",
    "CHAT_MAX_REPLIES_PER_CALLER": "100000",
    "CHAT_MAX_STREAMS_PER_CALLER": "100000",
    "CHAT_MAX_STREAMS_PER_ADDRESS": "100000",
    "CHAT_MAX_CONNECTIONS": "100000",
    "CHAT_MAX_CONNECTIONS_PER_ADDRESS": "100000",
}
