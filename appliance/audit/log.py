"""The tamper-evident audit log: an append-only table whose rows form an HMAC hash chain.

Each entry's ``entry_hash`` is ``HMAC-SHA256(key, prev_hash || canonical JSON)`` where the JSON
holds every field of the entry, its position (``id``) and its UTC timestamp, and ``prev_hash``
is the previous entry's ``entry_hash`` (64 zeros for the first). Changing one byte of a row,
reordering rows or deleting a row breaks the chain, and so does a hash recomputed without the
key; :meth:`AuditLog.verify` finds the first broken entry.

The key is a random 32 bytes kept in the installation record (``installation.audit_key``),
like the blob address key, so it survives a rekey of the data key. It lives in the same
encrypted database: the chain detects edits made by anyone or anything that does not hold the
key (raw SQL, a damaged or hand-edited copy, a restored partial backup), not a forger who
already holds the unsealed database and reads the key from it.

Appends are race-free because every write goes through :meth:`Database.write`, which
serialises writers (a process lock plus SQLite's ``BEGIN IMMEDIATE``): reading the last entry
inside the caller's write transaction sees the true tail, and nothing else can append before it
commits. On an external database a concurrent writer in another process would collide on the
primary key and fail its transaction instead of forking the chain.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, String, select, text, type_coerce, update
from sqlalchemy.orm import Session

from appliance.audit.models import AuditEntry
from appliance.errors import DatabaseCorrupt, InvalidRequest
from appliance.store.database import Database
from appliance.store.schema import Installation

GENESIS = "0" * 64
OUTCOMES = frozenset({"success", "failure", "denied"})
PAGE = 500
COLUMNS = (
    "id",
    "created_at",
    "actor",
    "action",
    "target",
    "outcome",
    "source_ip",
    "request_id",
    "details",
    "prev_hash",
    "entry_hash",
)


@dataclass(frozen=True)
class VerifyResult:
    """What :meth:`AuditLog.verify` found: ``count`` entries checked good, then ``first_bad``
    (the first broken or missing position) and why."""

    ok: bool
    count: int
    first_bad: int | None = None
    reason: str | None = None


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive value (SQLite returns them) is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _canonical(entry: AuditEntry) -> bytes:
    fields = {
        "id": entry.id,
        "created_at": _utc(entry.created_at).isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "source_ip": entry.source_ip,
        "request_id": entry.request_id,
        "details": entry.details,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(key: bytes, prev_hash: str, entry: AuditEntry) -> str:
    """The entry hash of ``entry`` linked after ``prev_hash``."""
    return hmac.new(key, prev_hash.encode() + _canonical(entry), hashlib.sha256).hexdigest()


def ensure_audit_key(db: Database) -> bytes:
    """The installation's audit key, created now for homes initialised before the audit log."""
    with db.write() as session:
        inst = session.get(Installation, 1)
        if inst is None:
            raise DatabaseCorrupt("The database has no installation record.")
        if inst.audit_key is None:
            key = secrets.token_bytes(32)
            session.execute(update(Installation).where(Installation.id == 1).values(audit_key=key))
            return key
        return inst.audit_key


def as_dict(entry: AuditEntry) -> dict[str, Any]:
    """One entry as plain data (``details`` decoded, ``created_at`` ISO 8601 UTC)."""
    row = {name: getattr(entry, name) for name in COLUMNS}
    row["created_at"] = _utc(entry.created_at).isoformat()
    row["details"] = json.loads(entry.details) if entry.details is not None else None
    return row


class AuditLog:
    """Append, verify, query and export the audit chain of one database."""

    def __init__(self, db: Database, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the audit key is 32 bytes")
        self.db = db
        self._key = key

    def append(
        self,
        session: Session,
        *,
        action: str,
        actor: str | None = None,
        target: str | None = None,
        outcome: str = "success",
        source_ip: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append one entry inside the caller's write transaction (a :meth:`Database.write`
        session), so the action and its record commit or roll back together. Returns the
        entry's position."""
        if outcome not in OUTCOMES:
            raise InvalidRequest(f"Unknown audit outcome {outcome!r}.")
        last = session.execute(
            select(AuditEntry.id, AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1)
        ).first()
        position, prev_hash = (last[0] + 1, last[1]) if last is not None else (1, GENESIS)
        entry = AuditEntry(
            id=position,
            created_at=datetime.now(UTC),
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            source_ip=source_ip,
            request_id=request_id,
            details=None if details is None else json.dumps(details, sort_keys=True),
            prev_hash=prev_hash,
        )
        entry.entry_hash = compute_hash(self._key, prev_hash, entry)
        session.add(entry)
        session.flush()
        return position

    def record(
        self,
        *,
        action: str,
        actor: str | None = None,
        target: str | None = None,
        outcome: str = "success",
        source_ip: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append one entry in a write transaction of its own."""
        with self.db.write() as session:
            return self.append(
                session,
                action=action,
                actor=actor,
                target=target,
                outcome=outcome,
                source_ip=source_ip,
                request_id=request_id,
                details=details,
            )

    def verify(self) -> VerifyResult:
        """Check every entry's hash, the chain links and that positions run 1, 2, 3, … with no
        gap. Streams the table in one read transaction (constant memory)."""
        expected, prev_hash = 1, GENESIS
        # The timestamp is read raw (text on SQLite), so a mangled one is a finding, not a crash.
        raw_time = type_coerce(AuditEntry.created_at, String).label("created_at")
        columns = [
            raw_time if name == "created_at" else getattr(AuditEntry, name) for name in COLUMNS
        ]
        stmt = select(*columns).order_by(AuditEntry.id).execution_options(yield_per=PAGE)
        with self.db.read() as session:
            for row in session.execute(stmt):
                problem = self._check(row._asdict(), expected, prev_hash)
                if problem is not None:
                    return VerifyResult(False, expected - 1, expected, problem)
                expected, prev_hash = expected + 1, row.entry_hash
            highest = self._highest_issued(session)
        count = expected - 1
        if highest > count:
            reason = f"missing: the log ends at entry {count} but entries up to {highest} existed"
            return VerifyResult(False, count, count + 1, reason)
        return VerifyResult(True, count)

    def _check(self, fields: dict[str, Any], expected: int, prev_hash: str) -> str | None:
        """Why the stored row ``fields`` is not a valid entry at ``expected`` (None if it is)."""
        if fields["id"] != expected:
            return f"missing (the next entry present is {fields['id']})"
        if fields["prev_hash"] != prev_hash:
            return "does not link to the previous entry"
        created = fields["created_at"]
        if isinstance(created, str):
            try:
                fields["created_at"] = datetime.fromisoformat(created)
            except ValueError:
                return "altered (its timestamp is not a valid time)"
        entry = AuditEntry(**fields)
        if not hmac.compare_digest(
            str(entry.entry_hash), compute_hash(self._key, prev_hash, entry)
        ):
            return "altered (its hash does not match its contents)"
        return None

    def _highest_issued(self, session: Session) -> int:
        """The largest position SQLite's AUTOINCREMENT ever handed out (catches a truncated
        tail); 0 elsewhere."""
        if not self.db.is_sqlite:
            return 0
        seq = session.execute(
            text("SELECT seq FROM sqlite_sequence WHERE name = :name"),
            {"name": AuditEntry.__tablename__},
        ).scalar()
        return int(seq or 0)

    def query(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Entries matching the filters, oldest first (``until`` is exclusive)."""
        if limit < 0 or offset < 0:
            raise InvalidRequest("limit and offset must not be negative.")
        stmt = _filtered(select(AuditEntry), since, until, actor, action)
        with self.db.read() as session:
            rows = session.scalars(stmt.order_by(AuditEntry.id).limit(limit).offset(offset))
            return [as_dict(entry) for entry in rows]

    def export(
        self,
        fmt: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> Iterator[str]:
        """The matching entries as CSV or a JSON array, in chunks of one page each."""
        if fmt not in ("csv", "json"):
            raise InvalidRequest(f"Unknown export format {fmt!r}: use csv or json.")
        pages = self._pages(since, until, actor, action)
        return _csv_chunks(pages) if fmt == "csv" else _json_chunks(pages)

    def _pages(
        self,
        since: datetime | None,
        until: datetime | None,
        actor: str | None,
        action: str | None,
    ) -> Iterator[list[dict[str, Any]]]:
        after = 0
        while True:
            stmt = _filtered(select(AuditEntry), since, until, actor, action)
            stmt = stmt.where(AuditEntry.id > after).order_by(AuditEntry.id).limit(PAGE)
            with self.db.read() as session:
                page = [as_dict(entry) for entry in session.scalars(stmt)]
            if not page:
                return
            yield page
            after = page[-1]["id"]


def _filtered(
    stmt: Select[AuditEntry],
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    action: str | None,
) -> Select[AuditEntry]:
    if since is not None:
        stmt = stmt.where(AuditEntry.created_at >= _utc(since))
    if until is not None:
        stmt = stmt.where(AuditEntry.created_at < _utc(until))
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    return stmt


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    cell = json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)
    # A cell a spreadsheet would run as a formula is quoted (OWASP CSV injection).
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _csv_chunks(pages: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    for page in pages:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([_csv_cell(row[name]) for name in COLUMNS] for row in page)
        yield buffer.getvalue()


def _json_chunks(pages: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    first = True
    yield "["
    for page in pages:
        body = ",\n".join(json.dumps(row, sort_keys=True) for row in page)
        yield ("\n" if first else ",\n") + body
        first = False
    yield "\n]\n" if not first else "]\n"
