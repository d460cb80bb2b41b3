"""Per-address backoff for sign-ins: a token bucket of failures, kept in memory.

Each source address has a bucket of ``burst`` tokens that refills at ``per_minute`` tokens a
minute; every failed sign-in from the address takes one, and an empty bucket refuses further
attempts (with the seconds until the next token) before any password is checked. Successful
sign-ins take nothing and do not refill, so one valid account cannot launder guesses against
others. The state is per process and lost on restart, which is acceptable: the per-account
lockout in the user row is the durable limit; this one only slows one address spraying many
accounts. Buckets that are full again are dropped, so memory stays bounded by active attackers
(and capped at ``max_entries``, oldest dropped first).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class IpThrottle:
    """Failure budget per source address (monotonic seconds supplied by the caller)."""

    def __init__(self, burst: int = 10, per_minute: float = 10.0, max_entries: int = 10000):
        self.burst = burst
        self.rate = per_minute / 60.0
        self.max_entries = max_entries
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _refill(self, key: str, now: float) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= self.burst:
            del self._buckets[key]
            return None
        return bucket

    def retry_after(self, address: str | None, now: float) -> int:
        """Seconds this address must wait before its next attempt (0: go ahead)."""
        if not address:
            return 0
        with self._lock:
            bucket = self._refill(address, now)
            if bucket is None or bucket.tokens >= 1:
                return 0
            return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def record_failure(self, address: str | None, now: float) -> None:
        """Take one token from the address's bucket."""
        if not address:
            return
        with self._lock:
            bucket = self._refill(address, now) or _Bucket(float(self.burst), now)
            bucket.tokens = max(0.0, bucket.tokens - 1)
            self._buckets[address] = bucket
            self._buckets.move_to_end(address)
            while len(self._buckets) > self.max_entries:
                self._buckets.popitem(last=False)
            # Drop the oldest buckets that have refilled (amortised: stops at the first one not).
            while self._buckets:
                oldest = next(iter(self._buckets))
                if oldest == address or self._refill(oldest, now) is not None:
                    break
