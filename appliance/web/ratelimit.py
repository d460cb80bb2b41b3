"""Token-bucket rate limiting per client address and per credential, by route class.

Single node: buckets live in memory (bounded, least-recently-used keys are dropped). Classes:
``auth`` (the routes that try a secret: login, refresh, unseal, first-run — much stricter) and ``api`` (every other
``/api/`` route). Pages and static assets are not limited. A request must pass the bucket of
its client address *and*, when it carries a bearer credential, the bucket of that credential,
so one noisy API key cannot starve another, and rotating bogus tokens does not escape the
per-address limit. Answers 429 with ``Retry-After`` and ``RateLimit-*`` headers.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.errors import RateLimited
from appliance.web.problems import problem_response

# Where a password, passphrase or refresh token is tried: the routes brute force would target.
AUTH_PATHS = frozenset(
    {
        "/api/v1/unseal",
        "/api/v1/init",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/session",
        "/api/v1/auth/first-admin",
        "/api/v1/auth/password",
    }
)


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Decision:
    """The outcome of taking one token."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int


class TokenBuckets:
    """``capacity`` tokens per key, refilled continuously at ``capacity`` per ``period_s``."""

    def __init__(self, capacity: int, period_s: float = 60.0, max_keys: int = 100_000) -> None:
        self.capacity = capacity
        self.rate = capacity / period_s
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> Decision:
        """Take one token for ``key`` if there is one."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.capacity), now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        allowed = bucket.tokens >= 1
        if allowed:
            bucket.tokens -= 1
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        missing = self.capacity - bucket.tokens
        return Decision(
            allowed=allowed,
            limit=self.capacity,
            remaining=int(bucket.tokens),
            reset_s=math.ceil(missing / self.rate),
            retry_after_s=0 if allowed else max(1, math.ceil((1 - bucket.tokens) / self.rate)),
        )


def route_class(path: str) -> str | None:
    """``auth``, ``api``, or None for routes that are not limited."""
    if path in AUTH_PATHS:
        return "auth"
    if path.startswith("/api/"):
        return "api"
    return None


def credential_key(headers: Headers) -> str | None:
    """A stable, non-secret key for the bearer credential of a request (a hash of it)."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return hashlib.sha256(token.encode()).hexdigest()[:32]


class RateLimitMiddleware:
    """Apply the per-address and per-credential buckets of the request's route class."""

    def __init__(self, app: ASGIApp, api_per_minute: int, auth_per_minute: int) -> None:
        self.app = app
        self.buckets = {"api": TokenBuckets(api_per_minute), "auth": TokenBuckets(auth_per_minute)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cls = route_class(scope.get("path", "")) if scope["type"] == "http" else None
        if cls is None:
            await self.app(scope, receive, send)
            return
        buckets = self.buckets[cls]
        client = scope.get("client")
        keys = [f"ip:{client[0] if client else 'unknown'}"]
        credential = credential_key(Headers(scope=scope))
        if credential:
            keys.append(f"cred:{credential}")
        decisions = [buckets.take(f"{cls}:{key}") for key in keys]
        tightest = min(decisions, key=lambda d: (d.allowed, d.remaining))
        headers = {
            "RateLimit-Limit": str(tightest.limit),
            "RateLimit-Remaining": str(tightest.remaining),
            "RateLimit-Reset": str(tightest.reset_s),
        }
        if not tightest.allowed:
            error = RateLimited(
                f"Too many requests; retry in {tightest.retry_after_s} s.",
                retry_after=tightest.retry_after_s,
            )
            response = problem_response(error, Request(scope))
            response.headers.update(headers)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"].extend(
                    (k.lower().encode(), v.encode()) for k, v in headers.items()
                )
            await send(message)

        await self.app(scope, receive, send_with_headers)
