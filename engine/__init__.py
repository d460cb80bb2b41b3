"""The agent runtime as a library: model providers (more to come: run loop, tools, knowledge).

Knows nothing of users, HTTP or credits; imports only ``sandbox``, ``models`` and third-party
libraries.
"""

from engine.errors import (
    ContextOverflow,
    EngineError,
    GenerationCancelled,
    GenerationFailed,
    InvalidChatRequest,
    ProviderUnavailable,
    QueueFull,
    WorkerCrashed,
)
from engine.providers import (
    Capabilities,
    ChatMessage,
    ChatRequest,
    FairQueue,
    Finish,
    LocalProvider,
    Provider,
    QueuePosition,
    StreamEvent,
    TextDelta,
    Usage,
)

__all__ = [
    "Capabilities",
    "ChatMessage",
    "ChatRequest",
    "ContextOverflow",
    "EngineError",
    "FairQueue",
    "Finish",
    "GenerationCancelled",
    "GenerationFailed",
    "InvalidChatRequest",
    "LocalProvider",
    "Provider",
    "ProviderUnavailable",
    "QueueFull",
    "QueuePosition",
    "StreamEvent",
    "TextDelta",
    "Usage",
    "WorkerCrashed",
]
