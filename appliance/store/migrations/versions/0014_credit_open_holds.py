"""Credit reservations: the table holds open (and expired) holds only, with no index.

Revision ID: 0014_credit_open_holds
Revises: 0013_agent_tool_network
Create Date: 2026-12-07

A settle or a release now deletes its hold (the ledger's settle entry records the charge and
the rest given back, ``released``; a release entry the whole hold), so the table keeps only
the holds still open and those the expiry sweep closed (kept 30 days, so a settle arriving
after its hold expired is still charged). It stays as small as the number of calls in
flight, and the partial index over open holds (``ix_credit_reservation_open``), which every
reserve and every settle wrote a page of, is gone: the expiry sweep and the budgets' held sum
read the small table itself (docs/DESIGN.md, D-credits-open-holds).

The upgrade deletes the settled and released holds: what they held is in the ledger (each has
its reserve entry; ``run_id`` and ``step`` were never read). Downgrade recreates the index;
the deleted rows are not recreated (restore the pre-upgrade backup to get them back).
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_credit_open_holds"
down_revision = "0013_agent_tool_network"
branch_labels = None
depends_on = None

OPEN = sa.text("state = 'open'")


def upgrade() -> None:
    op.drop_index("ix_credit_reservation_open", table_name="credit_reservation")
    op.execute("DELETE FROM credit_reservation WHERE state IN ('settled', 'released')")


def downgrade() -> None:
    op.create_index(
        "ix_credit_reservation_open",
        "credit_reservation",
        ["expires_at", "user_id", "amount"],
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
