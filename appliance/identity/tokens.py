"""Access JWTs and rotating refresh tokens with reuse detection, over server-side sessions.

* Access token: a JWT signed with HS256 under a key derived from the data key (so ``rekey``
  also invalidates every access token). The algorithm is pinned on decode: ``none`` and any
  algorithm confusion are rejected, and ``exp``/``iat``/``sub``/``sid``/``jti`` are required.
  Each access token names its session, and the session is checked on every request, so a
  logout, a password change or an admin revocation takes effect at once.
* Refresh token: ``<id>.<secret>``, single use. Exchanging it marks it used and issues the
  next one of the same session; presenting a used one again revokes the whole session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from appliance.errors import InvalidToken
from appliance.identity.models import User, as_utc
from appliance.identity.session_models import AuthSession, RefreshToken
from appliance.store.database import Database
from appliance.store.schema import utcnow

ALGORITHM = "HS256"
ISSUER = "enclave"
AUDIENCE = "enclave-api"
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenPolicy:
    """Lifetimes, from settings."""

    access_ttl: timedelta = timedelta(minutes=15)
    idle_timeout: timedelta = timedelta(hours=8)
    absolute_timeout: timedelta = timedelta(days=14)


@dataclass(frozen=True)
class TokenPair:
    """What a login or a refresh hands out."""

    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str


@dataclass(frozen=True)
class AccessClaims:
    """A verified access token: who, which session, which role at issue time."""

    user_id: int
    session_id: str
    role: str
    # When the credential stops being valid by itself (token expiry, session idle or absolute
    # timeout, whichever is first): how long a verification may be cached.
    valid_until: datetime | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    """Issues, verifies, rotates and revokes tokens for API sign-ins."""

    def __init__(
        self,
        db: Database,
        signing_key: bytes,
        policy: TokenPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self._key = signing_key
        self.policy = policy or TokenPolicy()
        self._clock = clock

    # --- issuing ----------------------------------------------------------------------------

    def login(
        self,
        user: User,
        kind: str = "api",
        source_ip: str | None = None,
        user_agent: str | None = None,
    ) -> TokenPair:
        """Open a session for an authenticated ``user`` and hand out its first tokens."""
        now = self._clock()
        session_id = secrets.token_hex(16)

        def create(session: Session) -> str:
            session.add(
                AuthSession(
                    id=session_id,
                    user_id=user.id,
                    kind=kind,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.policy.absolute_timeout,
                    source_ip=source_ip,
                    user_agent=(user_agent or "")[:255] or None,
                )
            )
            session.flush()
            return self._new_refresh(session, session_id, now)

        refresh = self.db.run_write(create)
        return TokenPair(self._access(user, session_id, now), refresh, self._ttl(), session_id)

    def refresh(self, token: str) -> TokenPair:
        """Exchange a refresh token for a new pair; a reused token revokes its session."""
        token_id, _, secret = token.partition(".")
        if not token_id or not secret or len(token) > 200:
            raise InvalidToken()
        now = self._clock()
        outcome: dict[str, Any] = {}

        def rotate(session: Session) -> None:
            row = session.get(RefreshToken, token_id)
            if row is None or not hmac.compare_digest(row.token_hash, _digest(secret)):
                raise InvalidToken()
            auth = session.get(AuthSession, row.session_id)
            if auth is None or not self._session_alive(auth, now):
                raise InvalidToken()
            if row.used_at is not None:
                # Someone holds a copy of a token that was already exchanged: end the session.
                auth.revoked_at, auth.revoke_reason = now, "refresh_reuse"
                outcome["reused"] = auth.user_id
                return
            expires = as_utc(row.expires_at)
            if expires is not None and expires <= now:
                raise InvalidToken()
            user = session.get(User, auth.user_id)
            if user is None or user.disabled:
                raise InvalidToken()
            row.used_at = now
            auth.last_seen_at = now
            outcome["refresh"] = self._new_refresh(session, auth.id, now)
            outcome["user"], outcome["session"] = user, auth.id

        self.db.run_write(rotate)
        if "reused" in outcome:
            raise InvalidToken(
                "This refresh token was already used; the session has been ended for safety. "
                "Sign in again.",
                reason="refresh_reuse",
                _user_id=outcome["reused"],
            )
        access = self._access(outcome["user"], outcome["session"], now)
        return TokenPair(access, outcome["refresh"], self._ttl(), outcome["session"])

    def open_browser_session(
        self, user: User, source_ip: str | None = None, user_agent: str | None = None
    ) -> tuple[str, str]:
        """A browser session: returns the cookie value ``<id>.<secret>`` and its CSRF token."""
        now = self._clock()
        session_id, secret = secrets.token_hex(16), secrets.token_urlsafe(32)
        self.db.run_write(
            lambda s: s.add(
                AuthSession(
                    id=session_id,
                    user_id=user.id,
                    kind="ui",
                    secret_hash=_digest(secret),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.policy.absolute_timeout,
                    source_ip=source_ip,
                    user_agent=(user_agent or "")[:255] or None,
                )
            )
        )
        return f"{session_id}.{secret}", self.csrf_token(session_id)

    def csrf_token(self, session_id: str) -> str:
        """The CSRF token bound to a browser session (an HMAC: nothing extra to store)."""
        return hmac.new(self._key, f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()

    def verify_browser_session(self, cookie: str) -> AccessClaims:
        """Check a session cookie: secret, idle and absolute timeouts, revocation."""
        session_id, _, secret = cookie.partition(".")
        if len(session_id) != 32 or not secret or len(cookie) > 200:
            raise InvalidToken()
        now = self._clock()
        with self.db.read() as session:
            auth = session.get(AuthSession, session_id)
            valid = (
                auth is not None
                and auth.kind == "ui"
                and auth.secret_hash is not None
                and hmac.compare_digest(auth.secret_hash, _digest(secret))
                and self._session_alive(auth, now)
            )
            user = session.get(User, auth.user_id) if valid and auth is not None else None
        if not valid or auth is None or user is None:
            raise InvalidToken()
        self._touch(session_id, as_utc(auth.last_seen_at), now)
        return AccessClaims(user.id, session_id, user.role, self._deadline(auth))

    # --- verifying --------------------------------------------------------------------------

    def verify_access(self, token: str) -> AccessClaims:
        """Check signature, claims and that the session is still alive."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid", "jti"]},
            )
            user_id, session_id = int(claims["sub"]), str(claims["sid"])
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken() from exc
        now = self._clock()
        with self.db.read() as session:
            auth = session.get(AuthSession, session_id)
            alive = auth is not None and auth.user_id == user_id and self._session_alive(auth, now)
            last_seen = as_utc(auth.last_seen_at) if auth is not None else None
        if not alive or auth is None:
            raise InvalidToken()
        self._touch(session_id, last_seen, now)
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        deadline = min(expires, self._deadline(auth))
        return AccessClaims(user_id, session_id, str(claims.get("role", "")), deadline)

    # --- revoking ---------------------------------------------------------------------------

    def logout(self, session_id: str) -> None:
        """End one session (its access and refresh tokens stop working at once)."""
        self._revoke(AuthSession.id == session_id, "logout")

    def revoke_user_sessions(self, user_id: int, reason: str) -> int:
        """End every session of a user (password change, disable, admin action)."""
        return self._revoke(AuthSession.user_id == user_id, reason)

    def sessions_of(self, user_id: int) -> list[AuthSession]:
        """Live and ended sessions of a user, newest first."""
        with self.db.read() as session:
            query = select(AuthSession).where(AuthSession.user_id == user_id)
            return list(session.scalars(query.order_by(AuthSession.created_at.desc())))

    # --- internals --------------------------------------------------------------------------

    def _touch(self, session_id: str, last_seen: datetime | None, now: datetime) -> None:
        """Record use for the idle timeout, at most once a minute (spares the one writer)."""
        if last_seen is None or now - last_seen > _TOUCH_EVERY:
            self.db.run_write(
                lambda s: s.execute(
                    update(AuthSession).where(AuthSession.id == session_id).values(last_seen_at=now)
                )
            )

    def _revoke(self, where: Any, reason: str) -> int:
        now = self._clock()

        def revoke(session: Session) -> int:
            result = session.execute(
                update(AuthSession)
                .where(where, AuthSession.revoked_at.is_(None))
                .values(revoked_at=now, revoke_reason=reason)
            )
            return int(getattr(result, "rowcount", 0) or 0)

        return self.db.run_write(revoke)

    def _deadline(self, auth: AuthSession) -> datetime:
        """When a live session ends unless used again: its absolute or its idle deadline."""
        expires, seen = as_utc(auth.expires_at), as_utc(auth.last_seen_at)
        if expires is None or seen is None:
            return datetime.min.replace(tzinfo=UTC)
        return min(expires, seen + self.policy.idle_timeout)

    def _session_alive(self, auth: AuthSession, now: datetime) -> bool:
        if auth.revoked_at is not None:
            return False
        expires, seen = as_utc(auth.expires_at), as_utc(auth.last_seen_at)
        if expires is None or expires <= now:
            return False
        return seen is not None and now - seen <= self.policy.idle_timeout

    def _new_refresh(self, session: Session, session_id: str, now: datetime) -> str:
        token_id = secrets.token_hex(8)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        session.add(
            RefreshToken(
                id=token_id,
                session_id=session_id,
                token_hash=_digest(secret),
                created_at=now,
                expires_at=now + self.policy.absolute_timeout,
            )
        )
        return f"{token_id}.{secret}"

    def _access(self, user: User, session_id: str, now: datetime) -> str:
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user.id),
            "sid": session_id,
            "role": user.role,
            "iat": now,
            "nbf": now,
            "exp": now + self.policy.access_ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def _ttl(self) -> int:
        return int(self.policy.access_ttl.total_seconds())
