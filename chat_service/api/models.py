"""``GET /chat/models``: the models a conversation or a message may ask for.

The answer is ``{"default": ..., "models": [{"id": ...}, ...]}``, the default first: the
deployment's ``CHAT_MODELS``, or what its model server lists (chat/models.py). A request
naming a model not offered is refused here, with a 400 that says where the list is, before
anything is stored or sent to the model.
"""

from __future__ import annotations

from aiohttp import web

from chat_service.api.errors import ApiError
from chat_service.api.jsonio import json_response
from chat_service.api.keys import CHAT, service_app
from chat_service.chat.domain import Keep
from chat_service.chat.facade import Chat

routes = web.RouteTableDef()


@routes.get("/models")
async def list_models(request: web.Request) -> web.Response:
    default, offered = await service_app(request)[CHAT].models()
    return json_response({"default": default, "models": [{"id": model} for model in offered]})


async def refuse_models_not_offered(chat: Chat, model: str | Keep | None) -> None:
    """A 400 unless ``model`` is offered (None, the default, and KEEP always are)."""
    if isinstance(model, str) and not await chat.offers(model):
        raise ApiError(
            400, f"Model {model!r} is not offered here; GET /chat/models lists those that are."
        )
