"""The domain's workflow for answering messages: ordering, context, cache, model slots."""

from chat_service.replies.cache import ReplyCache
from chat_service.replies.service import ModelBusy, ModelSlots, ReplyService, Turn

__all__ = ["ModelBusy", "ModelSlots", "ReplyCache", "ReplyService", "Turn"]
