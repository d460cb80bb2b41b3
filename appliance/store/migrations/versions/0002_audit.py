"""Audit log: the hash-chained ``audit_entry`` table and the installation's audit key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: homes created before this revision get their key at the next unseal.
    op.add_column("installation", sa.Column("audit_key", sa.LargeBinary(length=32), nullable=True))
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_entry_action", "audit_entry", ["action"], unique=False)
    op.create_index("ix_audit_entry_created_at", "audit_entry", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_entry_created_at", table_name="audit_entry")
    op.drop_index("ix_audit_entry_action", table_name="audit_entry")
    op.drop_table("audit_entry")
    with op.batch_alter_table("installation") as batch:
        batch.drop_column("audit_key")
