"""Migration 0012_credit_ledger_lean: the credit tables are rebuilt with partial indexes, a
``WITHOUT ROWID`` reservation table and the ``released`` column — every existing row, hash and
the ledger's sequence mark survive, the old chain still verifies and grows on, the queries that
read the ledger still find an index (the reservation table, open holds only since 0014, is read
whole), and a downgrade restores the old shape (or refuses when entries of the new form
exist)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from appliance.credits import ledger
from appliance.credits.budgets import HELD_SQL, SETTLED_SQL
from appliance.credits.meter import STALE_SQL, TOPUP_SQL
from appliance.credits.tx import in_clause, sqlite_time, write_tx
from appliance.keys.secret import DataKey
from appliance.store.database import Database
from appliance.store.migrate import (
    SCRIPT_LOCATION,
    alembic_config,
    current_revision,
    head_revision,
    migrate,
)
from tests.appliance.migration_copies import migrations_before

KEY = b"k" * 32
T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
HOLD_A, HOLD_B = "a" * 32, "b" * 32
LEDGER_ROWS = "SELECT * FROM credit_ledger ORDER BY id"
RESERVATION_ROWS = "SELECT * FROM credit_reservation ORDER BY id"
SEQ = "SELECT seq FROM sqlite_sequence WHERE name = 'credit_ledger'"


def _before_lean(tmp_path: Path) -> Path:
    """The migrations as the previous release shipped them (up to 0011)."""
    return migrations_before(tmp_path, "0012")


@pytest.fixture
def old_db(tmp_path: Path) -> Iterator[tuple[Database, DataKey]]:
    """A database at 0011 holding a ledger written the old way: a grant, a reservation settled
    with a separate release entry, and one still open."""
    dek = DataKey.generate()
    db = Database(path=tmp_path / "enclave.db", dek=dek)
    migrate(db, dek, None, _before_lean(tmp_path))
    assert current_revision(db) == "0011_knowledge_fts_kb"
    entries: list[tuple[str, int, dict[str, Any]]] = [
        ("grant", 10_000_000, {"reference": "license:L1:once"}),
        ("reserve", 3_000, {"reservation_id": HOLD_A, "user_id": 1, "model": "m"}),
        ("settle", 1_000, {"reservation_id": HOLD_A, "user_id": 1, "prompt_tokens": 5}),
        ("release", 2_000, {"reservation_id": HOLD_A, "user_id": 1}),
        ("reserve", 4_000, {"reservation_id": HOLD_B, "user_id": 1}),
    ]
    columns = ", ".join((*ledger.HASHED, "entry_hash"))
    values = ", ".join(f":{name}" for name in (*ledger.HASHED, "entry_hash"))
    tail = ledger.EMPTY
    with db.write() as session:
        for position, (kind, amount, fields) in enumerate(entries, start=1):
            d_balance, d_reserved = ledger.effect(kind, amount, fields.get("reservation_id"))
            row: dict[str, Any] = dict.fromkeys(ledger.HASHED)
            row.update(fields)
            row.update(
                id=position,
                created_at=T0 + timedelta(minutes=position),
                kind=kind,
                amount=amount,
                balance_after=tail.balance + d_balance,
                reserved_after=tail.reserved + d_reserved,
                prev_hash=tail.entry_hash,
            )
            row["entry_hash"] = ledger.compute_hash(KEY, row)
            row["created_at"] = sqlite_time(row["created_at"])
            session.execute(text(f"INSERT INTO credit_ledger ({columns}) VALUES ({values})"), row)
            tail = ledger.Tail(
                position, row["entry_hash"], row["balance_after"], row["reserved_after"]
            )
        for hold, state in ((HOLD_A, "settled"), (HOLD_B, "open")):
            session.execute(
                text(
                    "INSERT INTO credit_reservation (id, created_at, expires_at, amount, state, "
                    "principal, user_id, provider, model) VALUES (:id, :t, :e, 4000, :state, "
                    "'user:1', 1, 'local', 'm')"
                ),
                {
                    "id": hold,
                    "t": sqlite_time(T0),
                    "e": sqlite_time(T0 + timedelta(hours=1)),
                    "state": state,
                },
            )
    try:
        yield db, dek
    finally:
        db.dispose()


def _rows(db: Database, sql: str) -> list[tuple[Any, ...]]:
    with db.read() as session:
        return [tuple(r) for r in session.execute(text(sql))]


def _schema(db: Database, table: str) -> tuple[str, set[str]]:
    with db.read() as session:
        create = session.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
        ).scalar_one()
        indexes = set(
            session.scalars(
                text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"),
                {"t": table},
            )
        )
    return create, indexes


def test_upgrade_keeps_every_row_hash_and_the_sequence(old_db: tuple[Database, DataKey]) -> None:
    db, dek = old_db
    ledger_before, held_before = _rows(db, LEDGER_ROWS), _rows(db, RESERVATION_ROWS)
    assert len(ledger_before) == 5

    migrate(db, dek, None)

    assert current_revision(db) == head_revision()
    # The same rows (plus an empty ``released``), the same hashes: the old chain verifies.
    assert _rows(db, LEDGER_ROWS) == [(*row, None) for row in ledger_before]
    # 0014 keeps the open holds only: the settled one is in the ledger (0016: no owner).
    open_holds = [(*row, None) for row in held_before if row[4] == "open"]
    assert _rows(db, RESERVATION_ROWS) == open_holds
    assert ledger.verify(db, KEY) == ledger.VerifyResult(True, 5)
    assert _rows(db, SEQ) == [(5,)]
    create, indexes = _schema(db, "credit_ledger")
    assert "UNIQUE" not in create and "released" in create
    assert indexes == {
        "ix_credit_ledger_settle_time",
        "ix_credit_ledger_settle_user",
        "ix_credit_ledger_topup",
        "uq_credit_ledger_reference",
    }
    create, indexes = _schema(db, "credit_reservation")
    assert create.rstrip().endswith("WITHOUT ROWID")
    assert indexes == set()

    # The chain grows on in the new form, and a reference still applies once.
    with write_tx(db) as tx:
        tail = ledger.read_tail(tx)
        assert tail.id == 5
        ledger.append(
            tx, KEY, tail, "settle", 1_500, T0, reservation_id=HOLD_B, released=2_500, user_id=1
        )
    assert ledger.verify(db, KEY) == ledger.VerifyResult(True, 6)
    assert _rows(db, "SELECT balance_after, reserved_after FROM credit_ledger WHERE id = 6") == [
        (10_000_000 - 1_000 - 1_500, 0)
    ]
    with pytest.raises(Exception, match="UNIQUE"), db.write() as session:
        session.execute(
            text(
                "INSERT INTO credit_ledger (id, created_at, kind, amount, balance_after, "
                "reserved_after, reference, prev_hash, entry_hash) VALUES (7, :t, 'grant', 1, 1, "
                "0, 'license:L1:once', '', '')"
            ),
            {"t": sqlite_time(T0)},
        )


def test_a_ledger_cut_off_before_the_upgrade_is_still_found(
    old_db: tuple[Database, DataKey],
) -> None:
    db, dek = old_db
    with db.write() as session:
        session.execute(text("DELETE FROM credit_ledger WHERE id >= 4"))
    migrate(db, dek, None)
    assert _rows(db, SEQ) == [(5,)]
    result = ledger.verify(db, KEY)
    assert (result.ok, result.count, result.first_bad) == (False, 3, 4)
    assert "missing" in (result.reason or "")


def test_every_ledger_query_uses_an_index_and_the_holds_are_read_whole(
    old_db: tuple[Database, DataKey],
) -> None:
    db, dek = old_db
    migrate(db, dek, None)
    users, params = in_clause("u", [1, 2])
    since = {"since": sqlite_time(T0)}
    plans = {
        "ix_credit_ledger_settle_user": (SETTLED_SQL.format(users=users), {**params, **since}),
        "ix_credit_ledger_topup": (TOPUP_SQL, {}),
        "uq_credit_ledger_reference": (
            "SELECT id FROM credit_ledger WHERE reference = :r",
            {"r": "license:L1:once"},
        ),
        # Analytics binds the kind (SQLAlchemy): SQLite still matches the partial index.
        "ix_credit_ledger_settle_time": (
            "SELECT amount FROM credit_ledger WHERE kind = :kind AND created_at >= :since",
            {**since, "kind": "settle"},
        ),
    }
    with db.read() as session:
        for index, (sql, bound) in plans.items():
            plan = " ".join(
                str(r[-1]) for r in session.execute(text(f"EXPLAIN QUERY PLAN {sql}"), bound)
            )
            assert index in plan, (sql, plan)
        # The reservation table holds only the calls in flight (0014): read whole, no index.
        for sql, bound in ((HELD_SQL.format(users=users), params), (STALE_SQL, {"now": "x"})):
            plan = " ".join(
                str(r[-1]) for r in session.execute(text(f"EXPLAIN QUERY PLAN {sql}"), bound)
            )
            assert plan.startswith("SCAN credit_reservation"), (sql, plan)


def _downgrade(db: Database) -> None:
    config = alembic_config(SCRIPT_LOCATION)
    with db.write() as session:
        config.attributes["connection"] = session.connection()
        command.downgrade(config, "0011_knowledge_fts_kb")


def test_downgrade_restores_the_old_shape(old_db: tuple[Database, DataKey]) -> None:
    db, dek = old_db
    before = _rows(db, LEDGER_ROWS)
    migrate(db, dek, None)
    _downgrade(db)
    assert current_revision(db) == "0011_knowledge_fts_kb"
    assert _rows(db, LEDGER_ROWS) == before
    assert _rows(db, SEQ) == [(5,)]
    create, indexes = _schema(db, "credit_ledger")
    assert "UNIQUE" in create and "released" not in create
    assert "ix_credit_ledger_kind" in indexes
    create, indexes = _schema(db, "credit_reservation")
    assert "WITHOUT ROWID" not in create and "ix_credit_reservation_state" in indexes


def test_downgrade_refuses_once_a_settle_released_its_hold(
    old_db: tuple[Database, DataKey],
) -> None:
    db, dek = old_db
    migrate(db, dek, None)
    with write_tx(db) as tx:
        ledger.append(
            tx, KEY, ledger.read_tail(tx), "settle", 1, T0, reservation_id=HOLD_B, released=3_999
        )
    with pytest.raises(RuntimeError, match="restore the backup"):
        _downgrade(db)
    assert current_revision(db) == head_revision()  # rolled back as a whole
    assert ledger.verify(db, KEY) == ledger.VerifyResult(True, 6)
