"""The engine's own error hierarchy: stable codes, a retry hint, a human message.

The engine cannot import the appliance (layer rule), so it defines its errors here in the same
style as ``appliance.errors``; the appliance maps each ``code`` to its HTTP status and
translatable message.
"""

from __future__ import annotations

from typing import Any, ClassVar


class EngineError(Exception):
    """Base class: a typed engine error with a stable ``code`` and a ``retryable`` hint."""

    code: ClassVar[str] = "engine_error"
    # True when the same request may succeed if sent again unchanged.
    retryable: ClassVar[bool] = False
    default_message: ClassVar[str] = "The engine failed to handle the request."

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.message = message or self.default_message
        self.context = context
        super().__init__(self.message)


class ProviderUnavailable(EngineError):
    code = "provider_unavailable"
    retryable = True
    default_message = "The model provider is not available right now."


class ContextOverflow(EngineError):
    code = "context_overflow"
    default_message = "The prompt and the requested answer length exceed the model's context."

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int) -> None:
        super().__init__(
            f"The prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceed the "
            f"model's context of {context_length} tokens; shorten the conversation or lower "
            "max_tokens.",
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            context_length=context_length,
        )


class GenerationCancelled(EngineError):
    code = "cancelled"
    default_message = "The generation was cancelled."


class WorkerCrashed(EngineError):
    code = "worker_crashed"
    retryable = True
    default_message = (
        "The model process stopped unexpectedly; it is restarted for the next request."
    )


class GenerationFailed(EngineError):
    code = "generation_failed"
    default_message = "The model failed while generating an answer."


class QueueFull(EngineError):
    """Too many requests wait for the model; ``retry_after`` estimates when to try again."""

    code = "queue_full"
    retryable = True
    default_message = "The model is busy and too many requests are waiting; try again shortly."

    def __init__(self, message: str | None = None, retry_after: int = 5, **context: Any) -> None:
        super().__init__(message, retry_after=retry_after, **context)
        # Seconds, as in an HTTP Retry-After header.
        self.retry_after = retry_after


class InvalidChatRequest(EngineError):
    code = "invalid_chat_request"
    default_message = "The chat request is not valid."


class UnknownTool(EngineError):
    code = "unknown_tool"
    default_message = "The model asked for a tool that is not available to this agent."


class ToolArgumentsInvalid(EngineError):
    code = "tool_arguments_invalid"
    default_message = "The tool's arguments do not match its parameters."
