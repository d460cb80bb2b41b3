"""Knowledge-base tables: bases, documents, chunks (text lives here, not in Chroma), ingestion
jobs and the search log. The FTS5 index over chunk text is a virtual table made by migration
0008 (SQLAlchemy does not model virtual tables; :mod:`appliance.knowledge.fts` owns it)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from appliance.identity.models import UtcDateTime
from appliance.store.schema import Base, utcnow

if TYPE_CHECKING:
    from engine.knowledge import Chunk


class KnowledgeBase(Base):
    """A named collection of documents, shared through the ACL (kind ``knowledge_base``)."""

    __tablename__ = "knowledge_base"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    # The embedder whose vectors the KB's Chroma collection holds.
    embedder: Mapped[str] = mapped_column(String(64), nullable=False)
    # Set while a re-embed with another embedder runs (search stays on BM25 + old vectors).
    pending_embedder: Mapped[str | None] = mapped_column(String(64))
    # Documents older than this many days are removed by the retention purge (None: kept).
    retention_days: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)


class KnowledgeDocument(Base):
    """An uploaded file: its encrypted blob, real type, status and counts."""

    __tablename__ = "knowledge_document"
    __table_args__ = (UniqueConstraint("kb_id", "blob_id", name="uq_knowledge_document_content"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kb_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("knowledge_base.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    # The caller's original file name, as uploaded.
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    # Content address in the blob store: equal content, equal id (duplicate detection).
    blob_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str | None] = mapped_column(String(16))
    media_type: Mapped[str | None] = mapped_column(String(128))
    # JSON list of tags.
    tags: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    # queued → indexed (BM25 ready) → ready (embedded); or failed / quarantined.
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    uploaded_by: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)


class KnowledgeChunk(Base):
    """A passage: its text, place in the document, and whether its vector is in Chroma."""

    __tablename__ = "knowledge_chunk"
    __table_args__ = (Index("ix_knowledge_chunk_embed", "kb_id", "embedded"),)

    # Also the FTS5 rowid and the Chroma id (as a string).
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[str] = mapped_column(
        String(32),
        ForeignKey("knowledge_document.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    kb_id: Mapped[str] = mapped_column(String(32), nullable=False)
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    page: Mapped[int | None] = mapped_column(Integer)
    section: Mapped[str | None] = mapped_column(String(1000))
    char_start: Mapped[int] = mapped_column(Integer, nullable=False)
    char_end: Mapped[int] = mapped_column(Integer, nullable=False)
    embedded: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    @classmethod
    def from_chunk(cls, document_id: str, kb_id: str, chunk: Chunk) -> KnowledgeChunk:
        """The row of one chunk the chunker made, not yet embedded."""
        return cls(
            document_id=document_id,
            kb_id=kb_id,
            ordinal=chunk.ordinal,
            text=chunk.text,
            page=chunk.page,
            section=chunk.section,
            char_start=chunk.start,
            char_end=chunk.end,
            embedded=False,
        )


class KnowledgeJob(Base):
    """A background ingestion or re-embed job: persistent, resumable, cancellable."""

    __tablename__ = "knowledge_job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # ingest | reembed
    kb_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("knowledge_base.id", ondelete="CASCADE"), nullable=False, index=True
    )
    document_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # queued → running → done | failed | cancelled
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    stage: Mapped[str] = mapped_column(String(16), nullable=False)
    done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)


class KnowledgeSearch(Base):
    """One search, for analytics: mode, latency, hit count, the KBs searched."""

    __tablename__ = "knowledge_search"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("user.id", ondelete="SET NULL"))
    kb_ids: Mapped[str] = mapped_column(Text, nullable=False)
    query: Mapped[str] = mapped_column(Text, nullable=False)
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    hit_count: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), nullable=False, default=utcnow, index=True
    )
