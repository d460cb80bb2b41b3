"""Licensing and credits: licenses, the clock mark, the credit ledger, reservations, prices,
budgets and notifications.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "license_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("license_id", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_license_record_license_id", "license_record", ["license_id"])
    op.create_table(
        "license_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("high_water", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rollback_detected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rollback_clock", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "credit_ledger",
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
        sa.UniqueConstraint("reference"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_credit_ledger_created_at", "credit_ledger", ["created_at"])
    op.create_index("ix_credit_ledger_kind", "credit_ledger", ["kind"])
    op.create_index("ix_credit_ledger_reservation_id", "credit_ledger", ["reservation_id"])
    op.create_index("ix_credit_ledger_user_time", "credit_ledger", ["user_id", "created_at"])
    op.create_table(
        "credit_reservation",
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
    )
    op.create_index("ix_credit_reservation_expires_at", "credit_reservation", ["expires_at"])
    op.create_index("ix_credit_reservation_state", "credit_reservation", ["state"])
    op.create_index("ix_credit_reservation_user_id", "credit_reservation", ["user_id"])
    op.create_table(
        "credit_price",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("input_per_1k", sa.BigInteger(), nullable=False),
        sa.Column("output_per_1k", sa.BigInteger(), nullable=False),
        sa.Column("per_second", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "credit_budget",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("limit", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "subject_id", "period", "mode", name="uq_credit_budget"),
    )
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("audience", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=160), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_notification_created_at", "notification", ["created_at"])
    op.create_index("ix_notification_audience", "notification", ["audience"])


def downgrade() -> None:
    for table in (
        "notification",
        "credit_budget",
        "credit_price",
        "credit_reservation",
        "credit_ledger",
        "license_clock",
        "license_record",
    ):
        op.drop_table(table)
