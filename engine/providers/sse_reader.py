"""Reading a remote provider's open SSE response: cancel, total deadline, mid-stream failures.

Both remote providers read their answers through :class:`EventReader`: it maps a body that
stalls (read timeout) or drops to engine errors and counts it against the endpoint's circuit,
enforces the endpoint's total timeout, and stops promptly when the caller's ``cancel`` event is
set, even while the endpoint is silent.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator

import httpx

from engine.errors import ProviderTimeout, ProviderUnavailable
from engine.providers.remote import RemoteEndpoint
from engine.providers.sse import ServerSentEvent, iter_events


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (about four characters a token, at least one for any text),
    for endpoints that report no usage and offer no tokenize call."""
    return math.ceil(len(text) / 4) if text else 0


class EventReader:
    """Iterate the events of an open response; ``cancelled`` says whether ``cancel`` ended it."""

    def __init__(
        self,
        endpoint: RemoteEndpoint,
        response: httpx.Response,
        cancel: asyncio.Event | None,
    ) -> None:
        self.endpoint = endpoint
        self.response = response
        self.cancel = cancel
        self.cancelled = False
        self.deadline = time.monotonic() + endpoint.config.total_timeout

    async def events(self) -> AsyncGenerator[ServerSentEvent, None]:
        """The events, until the body ends or ``cancel`` is set. Closes the response."""
        name = self.endpoint.config.name
        source = iter_events(self.response.aiter_bytes(), self.endpoint.config.max_response_bytes)
        try:
            while True:
                if time.monotonic() > self.deadline:
                    self.endpoint.record_stream_failure()
                    raise ProviderTimeout(
                        f"Endpoint {name!r} did not finish within "
                        f"{self.endpoint.config.total_timeout:g} s.",
                        endpoint=name,
                    )
                try:
                    event = await self._next(source)
                except StopAsyncIteration:
                    return
                except httpx.TimeoutException as exc:
                    self.endpoint.record_stream_failure()
                    raise ProviderTimeout(
                        f"Endpoint {name!r} stopped sending for "
                        f"{self.endpoint.config.read_timeout:g} s.",
                        endpoint=name,
                    ) from exc
                except httpx.TransportError as exc:
                    self.endpoint.record_stream_failure()
                    raise ProviderUnavailable(
                        f"The connection to endpoint {name!r} broke off mid-answer "
                        f"({type(exc).__name__}).",
                        endpoint=name,
                    ) from exc
                if event is None:
                    self.cancelled = True
                    return
                yield event
        finally:
            await self.response.aclose()

    async def _next(self, source: AsyncIterator[ServerSentEvent]) -> ServerSentEvent | None:
        """The next event, or None as soon as ``cancel`` is set."""
        if self.cancel is None:
            return await anext(source)
        if self.cancel.is_set():
            return None
        reading = asyncio.ensure_future(anext(source))
        waiting = asyncio.ensure_future(self.cancel.wait())
        try:
            await asyncio.wait({reading, waiting}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            reading.cancel()
            waiting.cancel()
            raise
        if reading.done():
            waiting.cancel()
            return reading.result()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        return None
