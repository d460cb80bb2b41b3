"""Model providers: one contract (:mod:`engine.providers.base`) and its implementations."""

from engine.providers.base import (
    Capabilities,
    ChatMessage,
    ChatRequest,
    Finish,
    Provider,
    StreamEvent,
    TextDelta,
    Usage,
)
from engine.providers.local import LocalProvider

__all__ = [
    "Capabilities",
    "ChatMessage",
    "ChatRequest",
    "Finish",
    "LocalProvider",
    "Provider",
    "StreamEvent",
    "TextDelta",
    "Usage",
]
