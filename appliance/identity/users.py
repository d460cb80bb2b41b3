"""User accounts: create, change, delete, and sign in with per-account and per-address backoff.

Every refused sign-in raises the same :class:`InvalidCredentials` (same code, same message),
whether the user is unknown, disabled, locked or gave a wrong password; an unknown user still
costs one Argon2 verification so timing does not tell them apart. After ``LOCK_AFTER``
consecutive failures an account is locked for 2^(n-5) minutes, capped at an hour; the state is
in the user row, so it survives restarts and is shared by every process. While locked, even the
right password is refused. The lock's remaining time is kept in the error's server-only context
(``_lock_s``: logged, never sent), because telling the client would reveal that the account
exists; the per-address throttle, which applies to everyone alike, does send ``retry_after``.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NoReturn

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.errors import Conflict, InvalidCredentials, InvalidRequest, NotFound
from appliance.identity.ids import next_id, retire_id
from appliance.identity.models import Role, User, as_utc
from appliance.identity.passwords import (
    MAX_LENGTH,
    check_password_policy,
    default_hasher,
    needs_rehash,
    verify_password,
)
from appliance.identity.throttle import IpThrottle
from appliance.store.database import Database
from appliance.store.schema import utcnow

USERNAME_RE = re.compile(r"[A-Za-z0-9._@-]{3,64}")
DISPLAY_NAME_MAX = 200
LOCK_AFTER = 5
MAX_LOCK = timedelta(hours=1)


def lock_duration(failures: int) -> timedelta | None:
    """How long an account with ``failures`` consecutive failures stays locked (None: not)."""
    if failures < LOCK_AFTER:
        return None
    return min(timedelta(minutes=2 ** min(failures - LOCK_AFTER, 10)), MAX_LOCK)


def normalise_username(username: str) -> str:
    """The case-insensitive form the unique constraint is on."""
    return username.lower()


def check_username(username: str) -> str:
    """``username`` if valid (3–64 of letters, digits and ``. _ - @``), else InvalidRequest."""
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise InvalidRequest(
            "A username is 3–64 characters of letters, digits and . _ - @.", field="username"
        )
    return username


def check_role(role: str) -> Role:
    """``role`` as a :class:`Role`, else InvalidRequest."""
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidRequest(
            f"Unknown role {role!r}; use one of {allowed}.", field="role"
        ) from None


class UserService:
    """Accounts in ``db``. ``hasher`` sets the Argon2id parameters for new hashes; a stored
    hash made with other parameters is re-hashed at the next successful sign-in."""

    def __init__(
        self,
        db: Database,
        hasher: PasswordHasher | None = None,
        ip_throttle: IpThrottle | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.hasher = hasher or default_hasher()
        self.ip_throttle = ip_throttle or IpThrottle()
        self._clock = clock
        self._monotonic = monotonic
        self._dummy: str | None = None
        # Checks run inside the write transaction that creates or re-enables an account
        # (licensing adds its seat limit here); one raises to refuse.
        self.activation_guards: list[Callable[[Session], None]] = []
        # Run inside the write transaction that deletes a user, with its id (credits drop
        # the user's budgets here).
        self.deletion_hooks: list[Callable[[Session, int], None]] = []

    # --- reads ------------------------------------------------------------------------------

    def get_user(self, user_id: int) -> User:
        """The user with this id; NotFound otherwise."""
        with self.db.read() as session:
            user = session.get(User, user_id)
        if user is None:
            raise NotFound("There is no such user.")
        return user

    def find_user(self, username: str) -> User | None:
        """The user with this name (any case), or None."""
        with self.db.read() as session:
            return _by_name(session, username)

    def has_users(self) -> bool:
        """Whether any account exists (first-run pages ask on every visit)."""
        with self.db.read() as session:
            return session.scalar(select(User.id).limit(1)) is not None

    def list_users(self) -> list[User]:
        """Every user, by username."""
        with self.db.read() as session:
            return list(session.scalars(select(User).order_by(User.username_norm)))

    # --- changes ----------------------------------------------------------------------------

    def create_user(
        self,
        username: str,
        password: str,
        role: str,
        display_name: str | None = None,
        *,
        only_if_first: bool = False,
    ) -> User:
        """A new enabled user; Conflict when the name is taken (case-insensitively) or, with
        ``only_if_first``, when any user exists (checked in the same write transaction, so
        concurrent first-run requests cannot each create an admin)."""
        check_username(username)
        checked_role = check_role(role)
        display_name = _check_display_name(display_name)
        check_password_policy(password, username)
        encoded = self.hasher.hash(password)
        now = self._clock()
        user = User(
            username=username,
            username_norm=normalise_username(username),
            display_name=display_name,
            role=checked_role.value,
            password_hash=encoded,
            disabled=False,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
            failed_logins=0,
        )
        try:
            with self.db.write() as session:
                if only_if_first and session.scalar(select(func.count()).select_from(User)):
                    raise Conflict(
                        "Users already exist; an administrator creates further accounts."
                    )
                if _by_name(session, username) is not None:
                    raise Conflict("A user with this name already exists.", field="username")
                for guard in self.activation_guards:
                    guard(session)
                user.id = next_id(session, "user")
                session.add(user)
        except IntegrityError as exc:
            raise Conflict("A user with this name already exists.", field="username") from exc
        return user

    def set_role(self, user_id: int, role: str) -> User:
        """Change a user's role (the last enabled admin cannot be demoted)."""
        new_role = check_role(role)

        def change(session: Session) -> User:
            user = _get(session, user_id)
            if new_role is not Role.ADMIN:
                _keep_an_admin(session, user)
            user.role = new_role.value
            user.updated_at = self._clock()
            return user

        return self.db.run_write(change)

    def set_disabled(self, user_id: int, disabled: bool) -> User:
        """Disable (sign-in and API keys refused) or re-enable a user."""

        def change(session: Session) -> User:
            user = _get(session, user_id)
            if disabled:
                _keep_an_admin(session, user)
            elif user.disabled:
                for guard in self.activation_guards:
                    guard(session)
            user.disabled = disabled
            user.updated_at = self._clock()
            return user

        return self.db.run_write(change)

    def set_display_name(self, user_id: int, display_name: str | None) -> User:
        """Change the name shown for a user."""
        checked = _check_display_name(display_name)

        def change(session: Session) -> User:
            user = _get(session, user_id)
            user.display_name = checked
            user.updated_at = self._clock()
            return user

        return self.db.run_write(change)

    def delete_user(self, user_id: int) -> None:
        """Delete a user; their group memberships and API keys go with them."""

        def change(session: Session) -> None:
            user = _get(session, user_id)
            _keep_an_admin(session, user)
            for hook in self.deletion_hooks:
                hook(session, user_id)
            retire_id(session, "user", user_id)
            session.delete(user)

        self.db.run_write(change)

    def change_password(
        self, user_id: int, new_password: str, current_password: str | None = None
    ) -> User:
        """Set a new password (policy checked); with ``current_password``, verify it first
        (a user changing their own). Clears any lockout."""
        user = self.get_user(user_id)
        if current_password is not None and not verify_password(
            user.password_hash, current_password, self.hasher
        ):
            raise InvalidCredentials()
        check_password_policy(new_password, user.username)
        encoded = self.hasher.hash(new_password)

        def change(session: Session) -> User:
            row = _get(session, user_id)
            now = self._clock()
            row.password_hash = encoded
            row.password_changed_at = row.updated_at = now
            row.failed_logins = 0
            row.locked_until = None
            return row

        return self.db.run_write(change)

    def unlock(self, user_id: int) -> User:
        """Clear a user's failure count and lockout (an admin action)."""

        def change(session: Session) -> User:
            row = _get(session, user_id)
            row.failed_logins = 0
            row.locked_until = None
            return row

        return self.db.run_write(change)

    # --- sign-in ----------------------------------------------------------------------------

    def authenticate(self, username: str, password: str, source_ip: str | None = None) -> User:
        """The user when ``password`` is theirs; :class:`InvalidCredentials` otherwise."""
        wait = self.ip_throttle.retry_after(source_ip, self._monotonic())
        if wait:
            raise InvalidCredentials(retry_after=wait)
        if not isinstance(password, str) or len(password) > 4 * MAX_LENGTH:
            password = ""
        user = self.find_user(username) if isinstance(username, str) else None
        now = self._clock()
        if user is None or user.disabled:
            self._refuse_without_checking(password, source_ip)
        locked = as_utc(user.locked_until)
        if locked is not None and locked > now:
            retry = math.ceil((locked - now).total_seconds())
            self._refuse_without_checking(password, source_ip, lock_s=retry)
        if not verify_password(user.password_hash, password, self.hasher):
            self.ip_throttle.record_failure(source_ip, self._monotonic())
            lock_s = self._record_failure(user.id, now)
            if lock_s:
                raise InvalidCredentials(_lock_s=lock_s)
            raise InvalidCredentials()
        return self._record_success(user, password)

    def _refuse_without_checking(
        self, password: str, source_ip: str | None, lock_s: int | None = None
    ) -> NoReturn:
        # The same Argon2 work as a real check, so timing does not reveal the account state.
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        verify_password(self._dummy, password, self.hasher)
        self.ip_throttle.record_failure(source_ip, self._monotonic())
        if lock_s:
            raise InvalidCredentials(_lock_s=lock_s)
        raise InvalidCredentials()

    def _record_failure(self, user_id: int, now: datetime) -> int | None:
        def change(session: Session) -> int | None:
            row = session.get(User, user_id)
            if row is None:
                return None
            row.failed_logins += 1
            duration = lock_duration(row.failed_logins)
            if duration is None:
                return None
            row.locked_until = now + duration
            return math.ceil(duration.total_seconds())

        return self.db.run_write(change)

    def _record_success(self, user: User, password: str) -> User:
        rehash = needs_rehash(user.password_hash, self.hasher)
        if not rehash and user.failed_logins == 0 and user.locked_until is None:
            return user  # nothing to write: spare the single writer
        encoded = self.hasher.hash(password) if rehash else None

        def change(session: Session) -> User:
            row = _get(session, user.id)
            row.failed_logins = 0
            row.locked_until = None
            if encoded is not None:
                row.password_hash = encoded
            return row

        return self.db.run_write(change)


def _by_name(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username_norm == normalise_username(username)))


def _get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such user.")
    return user


def _keep_an_admin(session: Session, user: User) -> None:
    """Conflict if ``user`` is the last enabled admin (nobody could manage the appliance)."""
    if user.role != Role.ADMIN.value or user.disabled:
        return
    admins = session.scalar(
        select(func.count()).select_from(User).where(User.role == Role.ADMIN.value, ~User.disabled)
    )
    if (admins or 0) <= 1:
        raise Conflict("Enclave needs at least one enabled admin; make another admin first.")


def _check_display_name(display_name: str | None) -> str | None:
    if display_name is None:
        return None
    display_name = display_name.strip()
    if len(display_name) > DISPLAY_NAME_MAX:
        raise InvalidRequest(
            f"A display name is at most {DISPLAY_NAME_MAX} characters.", field="display_name"
        )
    return display_name or None
