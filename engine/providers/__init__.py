"""Model providers: one contract (:mod:`engine.providers.base`) and its implementations."""

from engine.providers.base import (
    Capabilities,
    ChatMessage,
    ChatRequest,
    Fallback,
    Finish,
    Provider,
    QueuePosition,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    Usage,
    collect,
    collect_with_tools,
)
from engine.providers.local import LocalProvider
from engine.providers.queue import FairQueue

__all__ = [
    "Capabilities",
    "ChatMessage",
    "ChatRequest",
    "FairQueue",
    "Fallback",
    "Finish",
    "LocalProvider",
    "Provider",
    "QueuePosition",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolDefinition",
    "Usage",
    "collect",
    "collect_with_tools",
]
