"""Encrypted storage: SQLCipher database, Alembic migrations, blob store, backups."""
