"""Credit reservations record the process that made them.

Revision ID: 0016_credit_hold_owner
Revises: 0015_identity_id_high_water
Create Date: 2026-12-07

``credit_reservation.owner`` names the process that reserved (``host/boot id/pid namespace/
pid/start time``, appliance/credits/owners.py). At the next start, and at every poll of the
schedule, the holds whose process has ended (a crash, kill -9) are released at once instead of
after ``reservation_expiry_seconds``; a live process's holds (a server's while a CLI command
unseals the same home) are left alone. Holds made before this revision have no owner and only
expire, as before. Downgrade drops the column.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_credit_hold_owner"
down_revision = "0015_identity_id_high_water"
branch_labels = None
depends_on = None


# Plain ALTER TABLE both ways (SQLite >= 3.35 drops a column in place): a batch rebuild would
# lose the table's WITHOUT ROWID.


def upgrade() -> None:
    op.add_column("credit_reservation", sa.Column("owner", sa.String(160), nullable=True))


def downgrade() -> None:
    op.drop_column("credit_reservation", "owner")
