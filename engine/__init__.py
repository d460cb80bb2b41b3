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
    WorkerCrashed,
)
from engine.providers import (
    Capabilities,
    ChatMessage,
    ChatRequest,
    Finish,
    LocalProvider,
    Provider,
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
    "Finish",
    "GenerationCancelled",
    "GenerationFailed",
    "InvalidChatRequest",
    "LocalProvider",
    "Provider",
    "ProviderUnavailable",
    "StreamEvent",
    "TextDelta",
    "Usage",
    "WorkerCrashed",
]
