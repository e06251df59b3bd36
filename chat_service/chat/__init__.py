"""The application layer: every chat operation, between the HTTP API and the parts below it.

``facade.Chat`` is what the handlers call (history pages, replies plain and streamed, live
follow, conversations); ``domain`` holds the types every layer shares. Nothing here knows
HTTP. This package file imports nothing, so that the store can use ``chat.domain`` without
pulling the rest of the layer (which uses the store) in with it.
"""
