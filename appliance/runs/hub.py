"""The models a running appliance serves: one shared, queued instance per local model.

Local models load on first use (after a memory check), are shared by every run through a fair
queue (round-robin across users, bounded), and are unloaded after an idle period. Remote
endpoints come from the provider configuration. An agent's model and its fallbacks become one
provider (a fallback chain) for the run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from appliance.errors import ModelMemoryInsufficient, ModelUnknown
from appliance.home import Home
from appliance.licensing.errors import FeatureNotLicensed
from appliance.model_files import catalog_for, resolve_model_file
from appliance.settings import EnclaveSettings
from engine.agents import AgentDefinition, ModelChoice
from engine.providers import FairQueue, LocalProvider
from engine.providers.base import (
    Capabilities,
    ChatRequest,
    Provider,
    StreamEvent,
    Usage,
    collect,
)
from engine.providers.fallback import FallbackChain

log = structlog.get_logger(__name__)

# Headroom besides the file itself: llama.cpp's context, buffers and the worker's Python.
LOAD_OVERHEAD_BYTES = 256 * 1024 * 1024
RemoteFactory = Callable[[ModelChoice], Provider]


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where the kernel does not say)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class KeyedProvider:
    """A fair queue seen as a plain provider for one user: its requests queue under ``key``."""

    def __init__(self, queue: FairQueue, key: str, touch: Callable[[], None]) -> None:
        self.queue = queue
        self.key = key
        self._touch = touch

    def capabilities(self) -> Capabilities:
        return self.queue.capabilities()

    async def health(self) -> dict[str, Any]:
        return await self.queue.health()

    async def count_tokens(self, text: str) -> int:
        return await self.queue.count_tokens(text)

    async def complete(self, request: ChatRequest) -> tuple[str, Usage, str]:
        return await collect(self.stream(request))

    async def stream(
        self, request: ChatRequest, cancel: asyncio.Event | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        self._touch()
        inner = self.queue.stream(request, cancel, key=self.key)
        try:
            async for event in inner:
                yield event
        finally:
            await inner.aclose()
            self._touch()


@dataclass
class _Loaded:
    provider: LocalProvider
    queue: FairQueue
    last_used: float


@dataclass(frozen=True)
class Resolved:
    """The provider a run uses and how it is labelled in usage, credits and audit."""

    provider: Provider
    provider_label: str
    model_label: str
    # A chain's fallbacks as (provider, model), in order: credits reserve at the dearest of
    # the chain and settle at the price of the member that answered.
    fallback_labels: tuple[tuple[str, str], ...] = ()


class ModelHub:
    """Resolves agents' model choices to providers; owns the local model instances."""

    def __init__(
        self,
        settings: EnclaveSettings,
        home: Home,
        remote: RemoteFactory | None = None,
        memory: Callable[[], int | None] = available_memory_bytes,
    ) -> None:
        self.settings = settings
        self.home = home
        self.remote = remote
        self.memory = memory
        self._local: dict[str, _Loaded] = {}
        # resolve() runs in worker threads: one model must not be registered twice.
        self._loading = threading.Lock()
        self._reaper: asyncio.Task[None] | None = None

    # --- resolving ---------------------------------------------------------------------------

    def resolve(self, definition: AgentDefinition, key: str, allow_remote: bool = True) -> Resolved:
        """The agent's model, with its fallbacks as a chain, queued under ``key`` when local.
        Without ``allow_remote`` (the license lacks remote providers) the chain keeps its local
        models only; FeatureNotLicensed when none is left."""
        choices = [definition.model, *definition.fallbacks]
        if not allow_remote:
            choices = [c for c in choices if c.provider == "local"]
            if not choices:
                raise FeatureNotLicensed(
                    f"This agent runs on the remote model {self.label(definition.model)}, and "
                    "the license in force does not include `remote_providers`: choose a local "
                    "model for it, or import a license that includes remote providers."
                )
        providers = [(self.label(c), self.provider(c, key)) for c in choices]
        first, rest_choices = choices[0], choices[1:]
        if len(providers) == 1:
            return Resolved(providers[0][1], first.provider, first.model)
        rest = tuple((c.provider, c.model) for c in rest_choices)
        return Resolved(FallbackChain(providers), first.provider, first.model, rest)

    @staticmethod
    def label(choice: ModelChoice) -> str:
        """``provider/model``, as fallback events name them."""
        return f"{choice.provider}/{choice.model}"

    def provider(self, choice: ModelChoice, key: str) -> Provider:
        """One model choice as a provider (local ones shared and queued)."""
        if choice.provider == "local":
            return self._local_for(choice.model, key)
        if self.remote is None:
            raise ModelUnknown(
                f"Provider {choice.provider!r} is not configured; add the endpoint under "
                "Admin → Providers or choose a local model."
            )
        return self.remote(choice)

    def _local_for(self, model_id: str, key: str) -> KeyedProvider:
        with self._loading:
            loaded = self._local.get(model_id)
            if loaded is None:
                loaded = self._load(model_id)
        loaded.last_used = time.monotonic()

        def touch() -> None:
            loaded.last_used = time.monotonic()

        return KeyedProvider(loaded.queue, key, touch)

    def _load(self, model_id: str) -> _Loaded:
        catalog = catalog_for(self.home)
        entry = catalog.entries.get(model_id)
        if entry is None:
            raise ModelUnknown(
                f"No local model {model_id!r}; known models: {', '.join(sorted(catalog.entries))}."
            )
        path: Path = resolve_model_file(entry, self.home)
        needed = entry.size_bytes + LOAD_OVERHEAD_BYTES
        free = self.memory()
        if free is not None and free < needed:
            raise ModelMemoryInsufficient(
                f"Model {model_id} needs about {needed // 2**20} MB of free memory and "
                f"{free // 2**20} MB are available; close other models or add memory.",
                needed_mb=needed // 2**20,
                available_mb=free // 2**20,
            )
        context = min(entry.context_length, self.settings.model_context_length)
        provider = LocalProvider(
            path, context_length=context, n_threads=self.settings.model_threads
        )
        queue = FairQueue(provider, max_waiting=self.settings.model_queue_max_waiting)
        loaded = _Loaded(provider, queue, time.monotonic())
        self._local[model_id] = loaded
        log.info("model.registered", model=model_id, context_length=context)
        return loaded

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start unloading idle models in the background (needs a running event loop)."""
        if self._reaper is None and self.settings.model_idle_unload_s > 0:
            self._reaper = asyncio.create_task(self._reap(), name="model-idle-unload")

    async def _reap(self) -> None:
        interval = max(1.0, min(60.0, self.settings.model_idle_unload_s / 4))
        while True:
            await asyncio.sleep(interval)
            await self.unload_idle()

    async def unload_idle(self, now: float | None = None) -> list[str]:
        """Stop the worker of every local model idle longer than the setting; returns their ids.
        An unloaded model loads again on its next request."""
        now = time.monotonic() if now is None else now
        unloaded = []
        for model_id, loaded in list(self._local.items()):
            stats = loaded.queue.stats()
            idle = now - loaded.last_used
            if stats["in_flight"] or stats["waiting"] or idle < self.settings.model_idle_unload_s:
                continue
            health = await loaded.provider.health()
            if health["up"]:
                await loaded.provider.close()
                unloaded.append(model_id)
                log.info("model.unloaded", model=model_id, idle_s=round(idle))
        return unloaded

    async def status(self) -> list[dict[str, Any]]:
        """Each local model this appliance has served: loaded or not, queue depth."""
        out = []
        for model_id, loaded in sorted(self._local.items()):
            health = await loaded.provider.health()
            out.append({"model": model_id, "loaded": health["up"], "queue": loaded.queue.stats()})
        return out

    async def close(self) -> None:
        """Stop the reaper and every model worker (at seal and shutdown)."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for loaded in self._local.values():
            await loaded.provider.close()
        self._local.clear()

    def terminate(self) -> None:
        """Stop every model worker from synchronous code (sealing)."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for loaded in self._local.values():
            loaded.provider.terminate()
        self._local.clear()

    def loaded_models(self) -> list[str]:
        """Ids of the local models registered so far."""
        return sorted(self._local)
