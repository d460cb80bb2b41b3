"""Blocking appliance calls (database, Argon2) run in a worker thread, never on the event loop
that serves every open page. The thread speaks the page's language (texts it makes are
translated like the page's own)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from ui.i18n import current_language, use_language

T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread; its result or its exception."""
    language = current_language()

    def call() -> T:
        with use_language(language):
            return fn(*args)

    return await asyncio.to_thread(call)
