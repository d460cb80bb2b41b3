"""Who is calling, and may they: typed FastAPI dependencies (``CurrentUser``, ``Authorize``).

Credentials arrive as ``Authorization: Bearer <token>``: an API key (``enc_...``) or an access
JWT. Deny by default: every route of the API declares what it needs through :func:`authorize`;
the authorization-matrix test fails on a route without a rule.

A JWT acts with the full rights of its user's role. An API key acts with its user's role *and*
only within its scopes (``admin`` scope for administration, ``agents:*``/``knowledge:*``/``chat``
for the product APIs).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from appliance.errors import (
    AuthenticationRequired,
    CsrfFailed,
    Forbidden,
    InvalidCredentials,
    InvalidToken,
    NotFound,
)
from appliance.identity.models import Role, User, as_utc
from appliance.lifecycle import Appliance
from appliance.services import Services


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user: User
    role: Role
    via: str  # "jwt", "cookie" or "api_key"
    session_id: str | None = None
    api_key_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"user:{self.user.id}"

    def has_scope(self, scope: str | None) -> bool:
        """Sessions (JWT or browser) carry every scope of the role; API keys only their own."""
        return scope is None or self.via != "api_key" or scope in self.scopes


async def get_services(request: Request) -> Services:
    """The unsealed appliance's services (the seal gate has already answered if sealed).
    Built in a worker thread the first time (they read the database), then handed out without
    leaving the event loop."""
    appliance: Appliance = request.app.state.appliance
    cached = appliance.cached_services()
    if cached is not None:
        return cached
    return await run_in_threadpool(lambda: appliance.services)


ServicesDep = Annotated[Services, Depends(get_services)]


def client_ip(request: Request) -> str | None:
    """The peer address (a reverse proxy's address when behind one)."""
    return request.client.host if request.client else None


Verified = tuple[Principal, datetime | None]  # the caller, and when the credential lapses


def _authenticate(services: Services, token: str) -> Verified:
    if token.startswith("enc_"):
        try:
            key, user = services.api_keys.authenticate(token)
        except InvalidCredentials as exc:
            raise InvalidToken("The API key is invalid, expired or revoked.") from exc
        principal = Principal(
            user, Role(user.role), "api_key", api_key_id=key.id, scopes=frozenset(key.scope_list)
        )
        return principal, as_utc(key.expires_at)
    claims = services.tokens.verify_access(token)
    try:
        user = services.users.get_user(claims.user_id)
    except NotFound as exc:  # deleted since the token was issued
        raise InvalidToken() from exc
    if user.disabled:
        raise InvalidToken()
    principal = Principal(user, Role(user.role), "jwt", session_id=claims.session_id)
    return principal, claims.valid_until


SESSION_COOKIE = "enclave_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_COOKIE_KEY = "cookie:"  # the cache keeps cookies and bearer tokens apart


def _from_cookie(services: Services, cookie: str) -> Verified:
    claims = services.tokens.verify_browser_session(cookie)
    user = services.users.get_user(claims.user_id)
    if user.disabled:
        raise InvalidToken()
    return Principal(user, Role(user.role), "cookie", session_id=claims.session_id), (
        claims.valid_until
    )


def _check_csrf(services: Services, principal: Principal, method: str, csrf: str | None) -> None:
    """State-changing requests that ride on the session cookie must echo its CSRF token."""
    if method in SAFE_METHODS or principal.session_id is None:
        return
    expected = services.tokens.csrf_token(principal.session_id)
    if not csrf or not hmac.compare_digest(csrf, expected):
        raise CsrfFailed()


async def _verified(services: Services, key: str, verify: Callable[[], Verified]) -> Principal:
    """The principal for credential ``key``: from the cache, else verified in a worker thread
    (it reads the database) and cached until the earlier of the cache TTL and its expiry."""
    cache = services.credentials
    cached: Principal | None = cache.get(key)
    if cached is not None:
        return cached
    generation = cache.generation
    principal, lapses = await run_in_threadpool(verify)
    remaining = None if lapses is None else (lapses - datetime.now(UTC)).total_seconds()
    cache.put(key, principal, generation, remaining)
    return principal


async def optional_principal(request: Request, services: ServicesDep) -> Principal | None:
    """The caller if a credential was sent (and is valid), else None: a bearer token, or the
    browser session cookie (state-changing requests then need the ``X-CSRF-Token`` header)."""
    header = request.headers.get("authorization", "")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("Use `Authorization: Bearer <token>`.")
        principal = await _verified(services, token, lambda: _authenticate(services, token))
    elif cookie:
        principal = await _verified(
            services, _COOKIE_KEY + cookie, lambda: _from_cookie(services, cookie)
        )
        _check_csrf(services, principal, request.method, request.headers.get(CSRF_HEADER))
    else:
        return None
    request.state.principal = principal
    return principal


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    """The caller; 401 ``authentication_required`` when anonymous."""
    if principal is None:
        raise AuthenticationRequired()
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]


def authorize(
    roles: Iterable[Role], scope: str | None = None
) -> Callable[[Request, Services], Awaitable[Principal]]:
    """A dependency that admits callers whose role is in ``roles`` and whose credential
    carries ``scope`` (403 ``forbidden`` otherwise)."""
    allowed = frozenset(roles)

    # One dependency level instead of three (principal → current → check): FastAPI's dependency
    # solving is a measurable share of a small request.
    async def check(request: Request, services: ServicesDep) -> Principal:
        principal = await optional_principal(request, services)
        if principal is None:
            raise AuthenticationRequired()
        if principal.role not in allowed:
            raise Forbidden()
        if not principal.has_scope(scope):
            raise Forbidden(f"This API key lacks the `{scope}` scope.")
        return principal

    return check


ANY_ROLE = tuple(Role)
Admin = Annotated[Principal, Depends(authorize([Role.ADMIN], "admin"))]
AuditReader = Annotated[Principal, Depends(authorize([Role.ADMIN, Role.AUDITOR], "admin"))]
AnyUser = Annotated[Principal, Depends(authorize(ANY_ROLE))]
