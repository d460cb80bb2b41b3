"""A short-lived, in-process cache of verified credentials (API keys, access JWTs, cookies).

Verifying a credential reads the database (key row, session row, user) in a worker thread; for
a program calling the API many times a second that read is most of a request's cost. A verified
credential is cached under the SHA-256 of the token for at most ``ttl_s`` seconds and never past
the credential's own expiry (key expiry, JWT ``exp``, session idle and absolute deadlines).

Revocation stays immediate: the cache subscribes to the database's commit feed and any committed
change to users, API keys, sessions or groups empties it (a new *generation*). An entry is
stored with the generation read *before* the credential was checked, so a check that raced a
revocation is never kept. Writes the feed cannot see (another process) are bounded by ``ttl_s``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from appliance.identity.models import ApiKey, Group, GroupMember, User
from appliance.identity.session_models import AuthSession, RefreshToken

T = TypeVar("T")

# Tables whose changes can make a cached credential wrong (revoked key or session, disabled or
# deleted user, changed role, group membership).
WATCHED_TABLES = frozenset(
    str(model.__tablename__)
    for model in (User, ApiKey, AuthSession, RefreshToken, Group, GroupMember)
)


@dataclass(frozen=True)
class _Entry(Generic[T]):
    value: T
    generation: int
    expires: float  # monotonic seconds


class CredentialCache(Generic[T]):
    """Token digest → verified value, bounded in size and time; thread-safe."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[bytes, _Entry[T]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    @property
    def generation(self) -> int:
        """Read this before verifying a credential; pass it to :meth:`put`."""
        return self._generation

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, token: str) -> T | None:
        """The cached value for ``token`` if it is still valid, else None."""
        if not self.enabled:
            return None
        digest = self.key(token)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry.generation != self._generation or entry.expires <= self._monotonic():
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return entry.value

    def put(self, token: str, value: T, generation: int, valid_for_s: float | None) -> None:
        """Keep ``value`` for ``token`` (``valid_for_s``: the credential's own remaining life)."""
        if not self.enabled:
            return
        life = self.ttl_s if valid_for_s is None else min(self.ttl_s, valid_for_s)
        if life <= 0:
            return
        digest = self.key(token)
        with self._lock:
            if generation != self._generation:
                return  # something changed while the credential was being checked
            self._entries[digest] = _Entry(value, generation, self._monotonic() + life)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def invalidate(self) -> None:
        """Forget every entry (a new generation)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def on_commit(self, tables: frozenset[str]) -> None:
        """The commit-feed subscriber: any change to an identity table empties the cache."""
        if tables & WATCHED_TABLES:
            self.invalidate()

    def __len__(self) -> int:
        return len(self._entries)
