"""Knowledge FTS5: the base becomes an indexed column, so BM25 narrows to a base inside FTS5.

Revision ID: 0011_knowledge_fts_kb
Revises: 0010
Create Date: 2026-12-07

Migration 0008 kept ``kb_id`` UNINDEXED: filtering by base then read every matching row's
stored content (hundreds of milliseconds at 100k chunks). The new ``kb`` column holds one token
per row (``appliance.knowledge.fts.kb_token``), which a query ANDs with its words; BM25 gives
that column weight 0, so scores are unchanged.
"""

from alembic import op

revision = "0011_knowledge_fts_kb"
down_revision = "0010"
branch_labels = None
depends_on = None

_TOKENIZE = "tokenize = 'porter unicode61 remove_diacritics 2'"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"CREATE VIRTUAL TABLE knowledge_chunk_fts_new USING fts5(body, kb, {_TOKENIZE})")
    # kb_token(): 'kb' + the base id + '0' (ends in a digit, so Porter leaves it whole).
    op.execute(
        "INSERT INTO knowledge_chunk_fts_new (rowid, body, kb) "
        "SELECT rowid, body, 'kb' || kb_id || '0' FROM knowledge_chunk_fts"
    )
    op.execute("DROP TABLE knowledge_chunk_fts")
    op.execute("ALTER TABLE knowledge_chunk_fts_new RENAME TO knowledge_chunk_fts")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE VIRTUAL TABLE knowledge_chunk_fts_old USING fts5("
        f"body, kb_id UNINDEXED, {_TOKENIZE})"
    )
    op.execute(
        "INSERT INTO knowledge_chunk_fts_old (rowid, body, kb_id) "
        "SELECT rowid, body, substr(kb, 3, length(kb) - 3) FROM knowledge_chunk_fts"
    )
    op.execute("DROP TABLE knowledge_chunk_fts")
    op.execute("ALTER TABLE knowledge_chunk_fts_old RENAME TO knowledge_chunk_fts")
