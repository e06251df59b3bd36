"""Load benchmark of chat-service: ``python -m bench`` (``make bench``).

It starts the service itself on a fresh temporary database, drives it with ``wrk`` over
loopback, and prints one table row per scenario next to a bare aiohttp reference app, the
ceiling one aiohttp process reaches on the same machine. See ``bench/README.md``.
"""
