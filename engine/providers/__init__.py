"""Model providers: one contract (:mod:`engine.providers.base`) and its implementations."""

from engine.providers.anthropic import AnthropicProvider
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
from engine.providers.circuit import CircuitBreaker
from engine.providers.fallback import FallbackChain
from engine.providers.local import LocalProvider
from engine.providers.openai_compat import OpenAICompatibleProvider
from engine.providers.probe import ProbeResult, build_provider, probe
from engine.providers.queue import FairQueue
from engine.providers.remote import EndpointConfig

__all__ = [
    "AnthropicProvider",
    "Capabilities",
    "ChatMessage",
    "ChatRequest",
    "CircuitBreaker",
    "EndpointConfig",
    "FairQueue",
    "Fallback",
    "FallbackChain",
    "Finish",
    "LocalProvider",
    "OpenAICompatibleProvider",
    "ProbeResult",
    "Provider",
    "QueuePosition",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolDefinition",
    "Usage",
    "build_provider",
    "collect",
    "collect_with_tools",
    "probe",
]
