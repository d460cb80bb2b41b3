"""Alembic environment: always driven by the appliance with a live connection."""

from alembic import context

from appliance.store.all_models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Enclave migrations run through `enclave` (at unseal), not the alembic CLI.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    # SQLite DDL is transactional; the appliance wraps the whole upgrade in one transaction.
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
