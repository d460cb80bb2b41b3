"""The credit ledger's hash chain: append inside a write transaction, verify end to end.

Built like the audit log (:mod:`appliance.audit.log`): each entry's ``entry_hash`` is
``HMAC-SHA256(key, prev_hash || canonical JSON of every other field)``; the key is derived
from the installation's audit key, so it survives a rekey of the data key. ``released`` (the
rest of a hold a settle gives back, migration 0012) is part of that JSON only when set, so the
entries written before it keep their hashes. Verification also
replays the balances: every entry's ``balance_after``/``reserved_after`` must follow from the
previous entry and its kind and amount, so an edited amount is found even where a forger
recomputed nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, bindparam, insert, select, text, type_coerce
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from appliance.credits.models import CreditLedgerEntry
from appliance.credits.tx import Tx, as_tx
from appliance.store.database import Database

GENESIS = "0" * 64
KINDS = frozenset({"grant", "voucher", "reserve", "settle", "release", "adjustment"})
PAGE = 1000
HASHED = (
    "id",
    "created_at",
    "kind",
    "amount",
    "balance_after",
    "reserved_after",
    "reservation_id",
    "reference",
    "principal",
    "user_id",
    "agent_id",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "details",
    "prev_hash",
)
# Hashed only when not None (entries before migration 0012 have no such field).
OPTIONAL = "released"


def ledger_key(audit_key: bytes) -> bytes:
    """The ledger's HMAC key, derived from the installation's audit key."""
    return hmac.new(audit_key, b"enclave-credit-ledger", hashlib.sha256).digest()


def _utc_iso(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat()


# What ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` builds on
# every call, built once (this runs for every entry appended and verified).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_hash(key: bytes, fields: dict[str, Any]) -> str:
    """The entry hash of one entry's fields (``prev_hash`` included)."""
    data = {name: fields.get(name) for name in HASHED}
    data["created_at"] = _utc_iso(fields["created_at"])
    released = fields.get(OPTIONAL)
    if released is not None:
        data[OPTIONAL] = released
    body = _CANONICAL.encode(data)
    return hmac.digest(key, body.encode(), "sha256").hex()


def effect(
    kind: str, amount: int, reservation_id: str | None, released: int | None = None
) -> tuple[int, int]:
    """How an entry moves (balance, reserved)."""
    if kind in ("grant", "voucher", "adjustment"):
        return amount, 0
    if kind == "reserve":
        return 0, amount
    if kind == "settle":
        return -amount, (-amount - (released or 0) if reservation_id else 0)
    if kind == "release":
        return 0, -amount
    raise ValueError(f"unknown ledger kind {kind!r}")


@dataclass(frozen=True)
class Tail:
    """The last entry: its position and hash, and the account after it."""

    id: int
    entry_hash: str
    balance: int
    reserved: int

    @property
    def available(self) -> int:
        return self.balance - self.reserved


EMPTY = Tail(0, GENESIS, 0, 0)
TAIL_SQL = (
    "SELECT id, entry_hash, balance_after, reserved_after FROM credit_ledger "
    "ORDER BY id DESC LIMIT 1"
)
COLUMNS = (*HASHED, OPTIONAL, "entry_hash")
# SQLAlchemy compiles it once from the mapped table, with ``:name`` parameters (what both
# :class:`Tx` kinds take); every value is bound.
INSERT_SQL = str(
    insert(CreditLedgerEntry)
    .values({name: bindparam(name) for name in COLUMNS})
    .compile(dialect=sqlite.dialect(paramstyle="named"))
)


def read_tail(unit: Tx | Session) -> Tail:
    """The chain's last entry (inside a write transaction: the true tail, whatever another
    thread or process appended before)."""
    row = as_tx(unit).one(TAIL_SQL)
    return EMPTY if row is None else Tail(row[0], row[1], row[2], row[3])


def append(
    unit: Tx | Session,
    key: bytes,
    tail: Tail,
    kind: str,
    amount: int,
    now: datetime,
    **fields: Any,
) -> Tail:
    """Append one entry after ``tail`` (the caller read it in this write transaction) and
    return the new tail. The database's CHECK constraints refuse a negative balance."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    tx = as_tx(unit)
    d_balance, d_reserved = effect(kind, amount, fields.get("reservation_id"), fields.get(OPTIONAL))
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(fields)
    row.update(
        id=tail.id + 1,
        created_at=now,
        kind=kind,
        amount=amount,
        balance_after=tail.balance + d_balance,
        reserved_after=tail.reserved + d_reserved,
        prev_hash=tail.entry_hash,
    )
    row["entry_hash"] = compute_hash(key, row)
    row["created_at"] = tx.time(now)
    tx.run(INSERT_SQL, row)
    return Tail(row["id"], row["entry_hash"], row["balance_after"], row["reserved_after"])


@dataclass(frozen=True)
class VerifyResult:
    """``count`` entries checked good, then the first bad position and why."""

    ok: bool
    count: int
    first_bad: int | None = None
    reason: str | None = None


def verify(db: Database, key: bytes) -> VerifyResult:
    """Check hashes, links, positions (1, 2, 3, … no gap, none cut off the end) and the
    replayed balances, streaming the table in one read transaction."""
    raw_time = type_coerce(CreditLedgerEntry.created_at, String).label("created_at")
    columns = [
        raw_time if name == "created_at" else getattr(CreditLedgerEntry, name) for name in COLUMNS
    ]
    stmt = select(*columns).order_by(CreditLedgerEntry.id).execution_options(yield_per=PAGE)
    expected, prev = 1, EMPTY
    with db.read() as session:
        for row in session.execute(stmt):
            fields = row._asdict()
            problem = _check(key, fields, expected, prev)
            if problem is not None:
                return VerifyResult(False, expected - 1, expected, problem)
            prev = Tail(
                expected, fields["entry_hash"], fields["balance_after"], fields["reserved_after"]
            )
            expected += 1
        highest = 0
        if db.is_sqlite:
            seq = session.execute(
                text("SELECT seq FROM sqlite_sequence WHERE name = :name"),
                {"name": CreditLedgerEntry.__tablename__},
            ).scalar()
            highest = int(seq or 0)
    count = expected - 1
    if highest > count:
        reason = f"missing: the ledger ends at entry {count} but entries up to {highest} existed"
        return VerifyResult(False, count, count + 1, reason)
    return VerifyResult(True, count)


def _check(key: bytes, fields: dict[str, Any], expected: int, prev: Tail) -> str | None:
    if fields["id"] != expected:
        return f"missing (the next entry present is {fields['id']})"
    if fields["prev_hash"] != prev.entry_hash:
        return "does not link to the previous entry"
    created = fields["created_at"]
    if isinstance(created, str):
        try:
            fields["created_at"] = datetime.fromisoformat(created)
        except ValueError:
            return "altered (its timestamp is not a valid time)"
    stored = fields["entry_hash"]
    if not hmac.compare_digest(str(stored), compute_hash(key, fields)):
        return "altered (its hash does not match its contents)"
    try:
        d_balance, d_reserved = effect(
            fields["kind"], fields["amount"], fields["reservation_id"], fields[OPTIONAL]
        )
    except ValueError:
        return f"altered (unknown kind {fields['kind']!r})"
    if (fields["balance_after"], fields["reserved_after"]) != (
        prev.balance + d_balance,
        prev.reserved + d_reserved,
    ):
        return "altered (its balance does not follow from the previous entry)"
    return None
