"""Server-sent events read from an HTTP body, with a cap on the bytes an answer may take.

Only what the model APIs use is implemented: ``event:`` and ``data:`` fields (several ``data``
lines join with newlines), comments (``:``) ignored, an event dispatched on a blank line. A body
over ``max_bytes`` raises :class:`~engine.errors.ResponseTooLarge`; a body that ends inside an
event raises :class:`~engine.errors.ProviderProtocolError`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from engine.errors import ProviderProtocolError, ResponseTooLarge


@dataclass(frozen=True)
class ServerSentEvent:
    """One event: its type (``message`` when unnamed) and its data text."""

    event: str
    data: str

    def json(self) -> dict[str, Any]:
        """The data parsed as a JSON object, or :class:`ProviderProtocolError`."""
        try:
            value = json.loads(self.data)
        except json.JSONDecodeError as exc:
            raise ProviderProtocolError(
                f"The endpoint sent an event whose data is not valid JSON ({exc.msg}).",
                data=self.data[:200],
            ) from exc
        if not isinstance(value, dict):
            raise ProviderProtocolError("The endpoint sent an event whose data is not an object.")
        return value


async def iter_events(
    chunks: AsyncIterator[bytes], max_bytes: int
) -> AsyncIterator[ServerSentEvent]:
    """Parse ``chunks`` (an HTTP body) into events, enforcing ``max_bytes`` over the whole body."""
    buffer = b""
    total = 0
    event = ""
    data: list[str] = []
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise ResponseTooLarge(
                f"The endpoint's answer exceeded {max_bytes} bytes.", max_bytes=max_bytes
            )
        buffer += chunk
        if b"\n" not in chunk:
            continue
        # Split every complete line at once: slicing line by line would copy the rest of a
        # large read again for each line.
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if not raw:
                if data:
                    yield ServerSentEvent(event or "message", "\n".join(data))
                event, data = "", []
            elif raw.startswith(b"data:"):
                value = raw[5:]
                data.append(_decode(value[1:] if value.startswith(b" ") else value))
            elif raw.startswith(b"event:"):
                event = _decode(raw[6:]).strip()
            # Comments (":...") and fields the model APIs do not use (id, retry) are skipped.
    tail = _decode(buffer.rstrip(b"\r\n"))
    if tail.startswith("data:"):
        data.append(tail[5:].removeprefix(" "))
    if data:
        # A final event without its blank line is still complete when its data is; the caller's
        # JSON parse reports a truncated one.
        yield ServerSentEvent(event or "message", "\n".join(data))


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProviderProtocolError("The endpoint sent an event that is not UTF-8.") from exc
