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


class ProviderAuthFailed(EngineError):
    """The remote endpoint refused our credentials (HTTP 401/403); retrying cannot help."""

    code = "provider_auth_failed"
    default_message = "The model endpoint refused the configured credentials."


class ProviderRateLimited(EngineError):
    """The remote endpoint said 429; ``retry_after`` is its Retry-After in seconds, if any."""

    code = "provider_rate_limited"
    retryable = True
    default_message = "The model endpoint is rate limiting requests; try again shortly."

    def __init__(
        self, message: str | None = None, retry_after: float | None = None, **context: Any
    ) -> None:
        super().__init__(message, retry_after=retry_after, **context)
        self.retry_after = retry_after


class ProviderTimeout(EngineError):
    """The endpoint did not answer, or stopped sending, within its configured timeouts."""

    code = "provider_timeout"
    retryable = True
    default_message = "The model endpoint did not answer in time."


class ProviderProtocolError(EngineError):
    """The endpoint answered with something that is not the protocol it claims to speak."""

    code = "provider_protocol_error"
    default_message = "The model endpoint sent a malformed answer."


class ProviderRejected(EngineError):
    """The endpoint refused the request itself (HTTP 400/404/422): a configuration problem."""

    code = "provider_rejected"
    default_message = "The model endpoint rejected the request."


class ResponseTooLarge(EngineError):
    code = "provider_response_too_large"
    default_message = "The model endpoint's answer exceeded the configured size limit."


class CircuitOpen(ProviderUnavailable):
    """Recent requests to this endpoint failed; it is not tried again until a cool-down ends."""

    code = "provider_circuit_open"
    default_message = "The model endpoint failed repeatedly and is paused for a short while."


class ProviderFailedMidStream(EngineError):
    """A provider failed after part of its answer had streamed; the chain does not splice
    another model's output onto it."""

    code = "provider_failed_mid_stream"
    default_message = (
        "The model failed part-way through its answer; the partial answer was not completed "
        "by another model."
    )


class AgentDefinitionInvalid(EngineError):
    code = "agent_definition_invalid"
    default_message = "The agent definition is invalid."


class ProviderConfigInvalid(EngineError):
    """An endpoint's configuration cannot work (bad URL, unreadable CA bundle or certificate)."""

    code = "provider_config_invalid"
    default_message = "The model endpoint's configuration is not valid."


class ModelOutputInvalid(EngineError):
    code = "model_output_invalid"
    default_message = (
        "The model's reply did not follow the tool protocol, even after a repair turn."
    )


class ToolFailed(EngineError):
    code = "tool_failed"
    default_message = "A tool failed unexpectedly."


class TurnTimeout(EngineError):
    code = "turn_timeout"
    default_message = "The turn took longer than the agent's turn timeout."


class McpServerFailed(EngineError):
    code = "mcp_server_failed"
    retryable = True
    default_message = "The MCP server could not be reached or failed."
