"""Per-resource ownership and grants (agents, knowledge bases).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_owner",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("kind", "resource_id"),
    )
    op.create_index("ix_resource_owner_owner_id", "resource_owner", ["owner_id"])
    op.create_table(
        "resource_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["group.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "resource_id", "user_id", "group_id", name="uq_resource_grant"),
    )
    op.create_index("ix_resource_grant_resource_id", "resource_grant", ["resource_id"])
    op.create_index("ix_resource_grant_user_id", "resource_grant", ["user_id"])
    op.create_index("ix_resource_grant_group_id", "resource_grant", ["group_id"])


def downgrade() -> None:
    op.drop_table("resource_grant")
    op.drop_table("resource_owner")
