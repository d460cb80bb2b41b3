"""Model providers: one contract (:mod:`engine.providers.base`) and its implementations."""

from engine.providers.base import (
    Capabilities,
    ChatMessage,
    ChatRequest,
    Finish,
    Provider,
    QueuePosition,
    StreamEvent,
    TextDelta,
    Usage,
)
from engine.providers.local import LocalProvider
from engine.providers.queue import FairQueue

__all__ = [
    "Capabilities",
    "ChatMessage",
    "ChatRequest",
    "FairQueue",
    "Finish",
    "LocalProvider",
    "Provider",
    "QueuePosition",
    "StreamEvent",
    "TextDelta",
    "Usage",
]
