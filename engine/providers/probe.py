"""The capability probe: what a configured endpoint offers, asked of the endpoint itself.

It lists the endpoint's models, sends a one-token streaming request (does it stream?), a
one-token request offering a tool (does it accept tools?), and reads a context length where the
model listing carries one (vLLM's ``max_model_len``, LM Studio's and others'
``context_length``, llama.cpp's ``meta.n_ctx_train``). The result is plain data, stored by the
appliance and refreshed on demand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx

from engine.errors import EngineError
from engine.providers.anthropic import AnthropicProvider
from engine.providers.base import ChatMessage, ChatRequest, ToolDefinition
from engine.providers.openai_compat import OpenAICompatibleProvider
from engine.providers.remote import EndpointConfig

ProviderKind = Literal["openai_compatible", "anthropic"]
CONTEXT_FIELDS = ("context_length", "max_model_len", "context_window", "max_context_length")
PROBE_TOOL = ToolDefinition(
    "get_time", "Tell the current time.", {"type": "object", "properties": {}}
)


@dataclass(frozen=True)
class ProbeResult:
    """What the probe found; ``error`` is the engine error code when the endpoint failed."""

    reachable: bool
    models: tuple[str, ...] = ()
    model_listed: bool = False
    streaming: bool = False
    tools: bool = False
    context_length: int | None = None
    error: str | None = None
    detail: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["models"] = list(self.models)
        return data


def build_provider(
    kind: ProviderKind, config: EndpointConfig, transport: httpx.AsyncBaseTransport | None = None
) -> OpenAICompatibleProvider | AnthropicProvider:
    """The provider class for ``kind``."""
    if kind == "anthropic":
        return AnthropicProvider(config, transport)
    return OpenAICompatibleProvider(config, transport)


async def probe(
    kind: ProviderKind, config: EndpointConfig, transport: httpx.AsyncBaseTransport | None = None
) -> ProbeResult:
    """Probe the endpoint of ``config`` (its circuit is not touched: a fresh client is used)."""
    quick = EndpointConfig(
        **{**asdict(config), "max_retries": 0, "read_timeout": min(config.read_timeout, 30.0)}
    )
    provider = build_provider(kind, quick, transport)
    try:
        listing = await _list_models(provider, kind)
        if listing is None:
            return ProbeResult(reachable=False, error="provider_unavailable")
        if isinstance(listing, EngineError):
            return ProbeResult(
                reachable=True, error=listing.code, detail={"models": listing.message}
            )
        models = tuple(str(m.get("id", "")) for m in listing if isinstance(m, dict))
        context = _context_length(listing, config.model)
        detail: dict[str, str] = {}
        hello = ChatRequest((ChatMessage("user", "Say hi."),), max_tokens=1, temperature=0.0)
        streaming = await _try(provider, hello, detail, "streaming")
        tool_request = ChatRequest(
            (ChatMessage("user", "What time is it?"),),
            max_tokens=1,
            temperature=0.0,
            tools=(PROBE_TOOL,),
        )
        tools = await _try(provider, tool_request, detail, "tools")
        return ProbeResult(
            reachable=True,
            models=models,
            model_listed=config.model in models,
            streaming=streaming,
            tools=tools,
            context_length=context,
            detail=detail,
        )
    finally:
        await provider.aclose()


async def _list_models(
    provider: OpenAICompatibleProvider | AnthropicProvider, kind: ProviderKind
) -> list[Any] | EngineError | None:
    path = "v1/models" if kind == "anthropic" else "models"
    try:
        response = await provider.endpoint.open("GET", path, None)
        try:
            payload = await response.aread()
        finally:
            await response.aclose()
    except EngineError as exc:
        return None if exc.retryable else exc
    except httpx.HTTPError:
        return None
    try:
        data = httpx.Response(200, content=payload).json().get("data")
    except (ValueError, AttributeError):
        data = None
    return data if isinstance(data, list) else []


async def _try(
    provider: OpenAICompatibleProvider | AnthropicProvider,
    request: ChatRequest,
    detail: dict[str, str],
    what: str,
) -> bool:
    try:
        await provider.complete(request)
    except EngineError as exc:
        detail[what] = exc.code
        return False
    return True


def _context_length(listing: list[Any], model: str) -> int | None:
    for entry in listing:
        if not isinstance(entry, dict) or entry.get("id") not in (model, None):
            continue
        sources = [entry, entry.get("meta") or {}]
        for source in sources:
            for key in (*CONTEXT_FIELDS, "n_ctx_train", "n_ctx"):
                value = source.get(key) if isinstance(source, dict) else None
                if isinstance(value, int) and value > 0:
                    return value
    return None
