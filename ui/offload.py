"""Blocking appliance calls (database, Argon2) run in a worker thread, never on the event loop
that serves every open page."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread; its result or its exception."""
    return await asyncio.to_thread(fn, *args)
