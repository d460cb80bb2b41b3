"""Agents: an administrator's network allowlist for the agent's code tools.

Revision ID: 0013_agent_tool_network
Revises: 0012_credit_ledger_lean
Create Date: 2026-12-07

``agent.tool_network_allowlist`` holds the ``host:port`` destinations (a JSON list) that the
agent's ``python`` and ``shell`` tools may open TCP connections to (sandbox
``network=allowlist``). NULL, as for every existing agent, means no network. It lives on the
agent's head row, outside the versioned definition, because only an administrator may set it
(docs/sandbox.md, "Code tools with network").
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_agent_tool_network"
down_revision = "0012_credit_ledger_lean"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent") as batch:
        batch.add_column(sa.Column("tool_network_allowlist", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agent") as batch:
        batch.drop_column("tool_network_allowlist")
