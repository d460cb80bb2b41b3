"""API keys: bearer tokens ``enc_<id>_<secret>`` for scripts and integrations.

``id`` is 10 lower-case hex characters (public: it names the key in lists and logs); ``secret``
is 32 random bytes, URL-safe base64 without padding. Only ``HMAC-SHA256(k, "<id>.<secret>")``
is stored, so neither the database nor a backup holds a usable token, and a stored hash cannot
be moved onto another key id. ``k`` is a random 32-byte key kept in the (encrypted)
installation row — not derived from the data key, so API keys keep working after
``enclave rekey``; it is generated on first use inside a write transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.errors import InvalidCredentials, InvalidRequest, NotFound, StorageError
from appliance.identity.models import ApiKey, Role, User, as_utc
from appliance.store.database import Database
from appliance.store.schema import Installation, utcnow

SCOPES = frozenset(
    {"chat", "agents:read", "agents:write", "knowledge:read", "knowledge:write", "admin"}
)
TOKEN_PREFIX = "enc_"
TOKEN_RE = re.compile(r"enc_([0-9a-f]{10})_([A-Za-z0-9_-]{43})")
NAME_MAX = 100
# last_used_at is written at most this often per key, to spare the single writer.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, de-duplicated and sorted; InvalidRequest for an unknown or empty set."""
    if isinstance(scopes, str):
        raise InvalidRequest("Scopes are a list of scope names.", field="scopes")
    chosen = sorted(set(scopes))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise InvalidRequest(
            f"Unknown scope {unknown[0]!r}; use any of {', '.join(sorted(SCOPES))}.",
            field="scopes",
        )
    if not chosen:
        raise InvalidRequest("An API key needs at least one scope.", field="scopes")
    return chosen


class ApiKeyService:
    """API keys in ``db``."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self._clock = clock
        self._key: bytes | None = None
        self._key_lock = threading.Lock()

    # --- the HMAC key -----------------------------------------------------------------------

    def _hmac_key(self) -> bytes:
        if self._key is None:
            with self._key_lock:
                if self._key is None:
                    with self.db.read() as session:
                        inst = session.get(Installation, 1)
                        stored = inst.api_key_hmac_key if inst is not None else None
                    self._key = stored or self.db.run_write(_load_or_create_key)
        return self._key

    # --- create / list / revoke -------------------------------------------------------------

    def create(
        self,
        user_id: int,
        name: str,
        scopes: Iterable[str],
        expires_at: datetime | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its token. The token is shown once and cannot be recovered."""
        name = name.strip() if isinstance(name, str) else ""
        if not 1 <= len(name) <= NAME_MAX:
            raise InvalidRequest(f"A key name is 1–{NAME_MAX} characters.", field="name")
        chosen = check_scopes(scopes)
        now = self._clock()
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidRequest("expires_at needs a time zone.", field="expires_at")
            expires_at = as_utc(expires_at)
            if expires_at is None or expires_at <= now:
                raise InvalidRequest("expires_at must be in the future.", field="expires_at")
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
        hmac_key = self._hmac_key()

        def add(session: Session) -> ApiKey:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound("There is no such user.")
            key_id = secrets.token_hex(5)
            while session.get(ApiKey, key_id) is not None:
                key_id = secrets.token_hex(5)
            row = ApiKey(
                id=key_id,
                user_id=user_id,
                name=name,
                key_hash=_digest(hmac_key, key_id, secret),
                scopes=json.dumps(chosen),
                created_at=now,
                expires_at=expires_at,
            )
            session.add(row)
            return row

        row = self.db.run_write(add)
        return row, f"{TOKEN_PREFIX}{row.id}_{secret}"

    def get(self, key_id: str) -> ApiKey:
        """The key with this id; NotFound otherwise."""
        with self.db.read() as session:
            row = session.get(ApiKey, key_id)
        if row is None:
            raise NotFound("There is no such API key.")
        return row

    def list_for_user(self, user_id: int) -> list[ApiKey]:
        """A user's keys (revoked and expired ones included), newest first."""
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(ApiKey)
                    .where(ApiKey.user_id == user_id)
                    .order_by(ApiKey.created_at.desc(), ApiKey.id)
                )
            )

    def list_all(self) -> list[ApiKey]:
        """Every key, newest first (for admins)."""
        with self.db.read() as session:
            return list(
                session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id))
            )

    def revoke(self, key_id: str, by_user: User) -> ApiKey:
        """Revoke a key now (its owner or an admin; others get NotFound). Idempotent."""

        def change(session: Session) -> ApiKey:
            row = session.get(ApiKey, key_id)
            if row is None or (row.user_id != by_user.id and by_user.role != Role.ADMIN.value):
                raise NotFound("There is no such API key.")
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            return row

        return self.db.run_write(change)

    # --- authenticate -----------------------------------------------------------------------

    def authenticate(self, token: str) -> tuple[ApiKey, User]:
        """The key and its user for a valid token; :class:`InvalidCredentials` otherwise
        (malformed, unknown, revoked, expired, or the user is disabled)."""
        match = TOKEN_RE.fullmatch(token) if isinstance(token, str) else None
        if match is None:
            raise InvalidCredentials()
        key_id, secret = match.groups()
        digest = _digest(self._hmac_key(), key_id, secret)
        with self.db.read() as session:
            row = session.get(ApiKey, key_id)
            user = session.get(User, row.user_id) if row is not None else None
        stored = row.key_hash if row is not None else "0" * 64
        if not hmac.compare_digest(digest, stored) or row is None or user is None:
            raise InvalidCredentials()
        now = self._clock()
        expires = as_utc(row.expires_at)
        if row.revoked_at is not None or (expires is not None and expires <= now):
            raise InvalidCredentials()
        if user.disabled:
            raise InvalidCredentials()
        last = as_utc(row.last_used_at)
        if last is None or now - last >= LAST_USED_GRANULARITY:
            row = self.db.run_write(lambda s: _touch(s, key_id, now)) or row
        return row, user


def _digest(hmac_key: bytes, key_id: str, secret: str) -> str:
    message = f"{key_id}.{secret}".encode("ascii")
    return hmac.new(hmac_key, message, hashlib.sha256).hexdigest()


def _touch(session: Session, key_id: str, now: datetime) -> ApiKey | None:
    row = session.get(ApiKey, key_id)
    if row is not None:
        row.last_used_at = now
    return row


def _load_or_create_key(session: Session) -> bytes:
    inst = session.get(Installation, 1)
    if inst is None:
        raise StorageError("The database has no installation record.")
    if inst.api_key_hmac_key is None:
        inst.api_key_hmac_key = secrets.token_bytes(32)
    return inst.api_key_hmac_key
