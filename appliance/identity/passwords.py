"""Password hashing (Argon2id, argon2-cffi) and the password policy.

The policy follows NIST SP 800-63B: length, a blocklist of common and breached passwords, and
no composition rules ("one digit, one symbol") nor forced expiry. A password must be 12–256
characters, must not contain the username, must not be a listed common password, and must not
be one character repeated. Comparisons with the blocklist ignore case.
"""

from __future__ import annotations

import functools
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.errors import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 256
BLOCKLIST_FILE = "common_passwords.txt"


def default_hasher() -> PasswordHasher:
    """Argon2id with argon2-cffi's defaults (RFC 9106 "low memory": t=3, m=64 MiB, p=4)."""
    return PasswordHasher()


def make_hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    """Argon2id with explicit parameters (tests use small ones to stay fast)."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """The encoded Argon2id hash (parameters and salt included) of ``password``."""
    return (hasher or default_hasher()).hash(password)


def verify_password(encoded: str, password: str, hasher: PasswordHasher | None = None) -> bool:
    """True when ``password`` matches ``encoded``; False on mismatch or an unreadable hash."""
    try:
        return (hasher or default_hasher()).verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(encoded: str, hasher: PasswordHasher | None = None) -> bool:
    """True when ``encoded`` was made with other parameters than ``hasher``'s."""
    try:
        return (hasher or default_hasher()).check_needs_rehash(encoded)
    except InvalidHashError:
        return True


@functools.lru_cache(maxsize=1)
def blocklist() -> frozenset[str]:
    """The bundled common passwords, lower-cased."""
    text = resources.files("appliance.identity").joinpath(BLOCKLIST_FILE).read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def check_password_policy(password: str, username: str | None = None) -> None:
    """Raise :class:`WeakPassword` naming the first rule ``password`` breaks."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"The password must be at least {MIN_LENGTH} characters long.")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"The password must be at most {MAX_LENGTH} characters long.")
    if len(set(password)) == 1:
        raise WeakPassword("The password must not be one character repeated.")
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise WeakPassword("The password must not contain the username.")
    if lowered in blocklist() or lowered.strip() in blocklist():
        raise WeakPassword(
            "The password is too common; choose one that is not on lists of leaked passwords."
        )
