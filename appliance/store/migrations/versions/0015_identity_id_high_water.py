"""Identity: user and group ids are never given out twice.

Revision ID: 0015_identity_id_high_water
Revises: 0014_credit_open_holds
Create Date: 2026-12-07

SQLite gives a new row the highest id in the table plus one, so deleting the newest user (or
group) handed its id to the next one created — and with it whatever still names that id
without a foreign key: the credit ledger's charges, analytics and budgets. ``id_high_water``
keeps, per table, the highest id ever deleted; new users and groups are numbered above it
(``appliance/identity/ids.py``). The upgrade seeds it with the highest id the credit tables
still name, so ids already freed before this revision are not reused either.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_identity_id_high_water"
down_revision = "0014_credit_open_holds"
branch_labels = None
depends_on = None

SEEDS = {
    "user": (
        "SELECT max(v) FROM (SELECT max(user_id) AS v FROM credit_ledger"
        " UNION ALL SELECT max(subject_id) FROM credit_budget WHERE scope = 'user')"
    ),
    "group": "SELECT max(subject_id) FROM credit_budget WHERE scope = 'group'",
}


def upgrade() -> None:
    table = op.create_table(
        "id_high_water",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    bind = op.get_bind()
    rows = []
    for name, query in SEEDS.items():
        value = bind.execute(sa.text(query)).scalar()
        rows.append({"name": name, "value": int(value or 0)})
    op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_table("id_high_water")
