"""``GET /chat/search``: the caller's messages and replies that hold the words of a query.

Only the caller's own exchanges are searched (the owner is the caller's namespace, as for
the conversations API); what is found, and how, is the application layer's (chat/search.py)
and the store's.
"""

from __future__ import annotations

from aiohttp import web

from chat_service.api.errors import when_the_store_fails
from chat_service.api.identity import owner
from chat_service.api.jsonio import json_response
from chat_service.api.keys import CHAT, service_app
from chat_service.api.validation import parse_search_query
from chat_service.chat.search import result_body

routes = web.RouteTableDef()


@routes.get("/search")
@when_the_store_fails("Failed to search the conversations.")
async def search(request: web.Request) -> web.Response:
    query = parse_search_query(request.query)
    found = await service_app(request)[CHAT].search(owner(request), query.text, limit=query.limit)
    return json_response({"results": [result_body(each) for each in found]})
