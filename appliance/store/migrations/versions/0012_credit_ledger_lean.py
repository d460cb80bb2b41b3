"""Lean credit tables: fewer pages written per reserve and settle.

Revision ID: 0012_credit_ledger_lean
Revises: 0011_knowledge_fts_kb
Create Date: 2026-12-07

SQLCipher encrypts and signs every page a transaction changes, so the metering hot path costs
about what its pages cost (docs/DESIGN.md, D-credits-lean). This revision:

* ``credit_ledger``: the four full indexes (``kind``, ``created_at``, ``reservation_id``,
  ``user_id, created_at``) become partial ones — settle times, settle times per user (the only
  queries that read by time: analytics and budgets) and the grants/vouchers (the low-balance
  reference) — and the unique ``reference`` covers only rows that have one. Reserve and release
  entries touch no index. A new nullable ``released`` column lets one settle entry also give
  back the rest of its hold (older entries keep ``NULL`` and their hashes).
* ``credit_reservation``: keyed by its id alone (``WITHOUT ROWID``) and one partial index over
  the open reservations replaces the ``expires_at``, ``state`` and ``user_id`` indexes.

On SQLite both tables are rebuilt (a unique constraint and a rowid table cannot be altered in
place): every row is copied as it is — ids, hashes, times — so the hash chain verifies as
before, and the ``sqlite_sequence`` high-water mark of the ledger (what tells a cut-off end) is
carried over, not recomputed from the rows that are left.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "0012_credit_ledger_lean"
down_revision = "0011_knowledge_fts_kb"
branch_labels = None
depends_on = None

# Every column, copied as it is (the hash chain covers them). Literal SQL: nothing is bound.
COPY_LEDGER = (
    "INSERT INTO credit_ledger_new (id, created_at, kind, amount, balance_after, "
    "reserved_after, reservation_id, reference, principal, user_id, agent_id, provider, model, "
    "prompt_tokens, completion_tokens, details, prev_hash, entry_hash) "
    "SELECT id, created_at, kind, amount, balance_after, reserved_after, reservation_id, "
    "reference, principal, user_id, agent_id, provider, model, prompt_tokens, "
    "completion_tokens, details, prev_hash, entry_hash FROM credit_ledger ORDER BY id"
)
COPY_RESERVATION = (
    "INSERT INTO credit_reservation_new (id, created_at, expires_at, amount, state, principal, "
    "user_id, agent_id, provider, model, run_id, step) "
    "SELECT id, created_at, expires_at, amount, state, principal, user_id, agent_id, provider, "
    "model, run_id, step FROM credit_reservation"
)
SETTLE = sa.text("kind = 'settle'")
TOPUP = sa.text("kind IN ('grant', 'voucher')")
HAS_REFERENCE = sa.text("reference IS NOT NULL")
OPEN = sa.text("state = 'open'")
OLD_LEDGER_INDEXES = (
    ("ix_credit_ledger_created_at", ["created_at"]),
    ("ix_credit_ledger_kind", ["kind"]),
    ("ix_credit_ledger_reservation_id", ["reservation_id"]),
    ("ix_credit_ledger_user_time", ["user_id", "created_at"]),
)
OLD_RESERVATION_INDEXES = (
    ("ix_credit_reservation_expires_at", ["expires_at"]),
    ("ix_credit_reservation_state", ["state"]),
    ("ix_credit_reservation_user_id", ["user_id"]),
)


def _ledger_columns(lean: bool) -> list[SchemaItem]:
    items: list[SchemaItem] = [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("reserved_after", sa.BigInteger(), nullable=False),
        sa.Column("reservation_id", sa.String(length=32), nullable=True),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("principal", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("balance_after >= 0", name="ck_credit_ledger_balance"),
        sa.CheckConstraint(
            "reserved_after >= 0 AND reserved_after <= balance_after",
            name="ck_credit_ledger_reserved",
        ),
        sa.PrimaryKeyConstraint("id"),
    ]
    if lean:
        items.append(sa.Column("released", sa.BigInteger(), nullable=True))
    else:
        items.append(sa.UniqueConstraint("reference"))
    return items


def _reservation_columns() -> list[SchemaItem]:
    return [
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("principal", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    ]


def _partial_index(name: str, table: str, columns: list[str], where: sa.TextClause) -> None:
    op.create_index(name, table, columns, sqlite_where=where, postgresql_where=where)


def _lean_indexes() -> None:
    _partial_index("ix_credit_ledger_settle_time", "credit_ledger", ["created_at"], SETTLE)
    _partial_index(
        "ix_credit_ledger_settle_user", "credit_ledger", ["user_id", "created_at"], SETTLE
    )
    _partial_index("ix_credit_ledger_topup", "credit_ledger", ["id"], TOPUP)
    op.create_index(
        "uq_credit_ledger_reference",
        "credit_ledger",
        ["reference"],
        unique=True,
        sqlite_where=HAS_REFERENCE,
        postgresql_where=HAS_REFERENCE,
    )
    _partial_index(
        "ix_credit_reservation_open",
        "credit_reservation",
        ["expires_at", "user_id", "amount"],
        OPEN,
    )


def _old_indexes() -> None:
    for name, columns in OLD_LEDGER_INDEXES:
        op.create_index(name, "credit_ledger", columns)
    for name, columns in OLD_RESERVATION_INDEXES:
        op.create_index(name, "credit_reservation", columns)


def _rebuild_sqlite(lean: bool) -> None:
    """Copy both tables into their new shape (ids, hashes and the ledger's sequence kept)."""
    bind = op.get_bind()
    seq = bind.execute(
        sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'credit_ledger'")
    ).scalar()
    op.create_table("credit_ledger_new", *_ledger_columns(lean), sqlite_autoincrement=True)
    op.execute(COPY_LEDGER)
    op.drop_table("credit_ledger")
    op.rename_table("credit_ledger_new", "credit_ledger")
    # The copy set the sequence to the highest id left; a ledger cut off at its end had a
    # higher one, and `enclave credits verify` must still see that.
    highest = bind.execute(sa.text("SELECT max(id) FROM credit_ledger")).scalar()
    mark = max(int(seq or 0), int(highest or 0))
    op.execute("DELETE FROM sqlite_sequence WHERE name IN ('credit_ledger', 'credit_ledger_new')")
    if mark:
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('credit_ledger', :seq)"),
            {"seq": mark},
        )
    op.create_table("credit_reservation_new", *_reservation_columns(), sqlite_with_rowid=not lean)
    op.execute(COPY_RESERVATION)
    op.drop_table("credit_reservation")
    op.rename_table("credit_reservation_new", "credit_reservation")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(lean=True)
    else:
        for name, _ in OLD_LEDGER_INDEXES:
            op.drop_index(name, table_name="credit_ledger")
        for name, _ in OLD_RESERVATION_INDEXES:
            op.drop_index(name, table_name="credit_reservation")
        op.drop_constraint("credit_ledger_reference_key", "credit_ledger", type_="unique")
        op.add_column("credit_ledger", sa.Column("released", sa.BigInteger(), nullable=True))
    _lean_indexes()


def downgrade() -> None:
    bind = op.get_bind()
    merged = bind.execute(
        sa.text("SELECT count(*) FROM credit_ledger WHERE released IS NOT NULL")
    ).scalar()
    if merged:
        # The old format closes a hold with a separate release entry; rewriting these entries
        # would change ids and hashes of a signed chain. Restore the pre-upgrade backup instead.
        raise RuntimeError(
            f"{merged} ledger entries use the settle-and-release form of revision "
            "0012_credit_ledger_lean; restore the backup taken before the upgrade instead."
        )
    for name in (
        "ix_credit_ledger_settle_time",
        "ix_credit_ledger_settle_user",
        "ix_credit_ledger_topup",
        "uq_credit_ledger_reference",
    ):
        op.drop_index(name, table_name="credit_ledger")
    op.drop_index("ix_credit_reservation_open", table_name="credit_reservation")
    if bind.dialect.name == "sqlite":
        _rebuild_sqlite(lean=False)
    else:
        op.drop_column("credit_ledger", "released")
        op.create_unique_constraint("credit_ledger_reference_key", "credit_ledger", ["reference"])
    _old_indexes()
