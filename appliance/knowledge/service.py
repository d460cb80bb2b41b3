"""Knowledge bases and their documents: create, list, upload, delete, retention, orphan check.

Deny by default: every call names the user, and a base is visible only to its owner, admins
and those it is shared with (``appliance.identity.acl``, kind ``knowledge_base``); to anyone
else it does not exist (404). Text stays in SQLCipher, file bytes in the encrypted blob store,
vectors (ids only) in Chroma; deleting a document removes all three.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PurePath

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from appliance.audit import AuditLog
from appliance.errors import Conflict, InvalidRequest, NotFound
from appliance.identity.acl import AclService, Level
from appliance.identity.models import User
from appliance.knowledge import fts
from appliance.knowledge.errors import (
    DuplicateDocument,
    FileEmpty,
    FileTooLargeError,
    JobNotCancellable,
)
from appliance.knowledge.models import (
    KnowledgeBase,
    KnowledgeChunk,
    KnowledgeDocument,
    KnowledgeJob,
)
from appliance.knowledge.vectors import VectorStore
from appliance.store.blobs import BlobStore
from appliance.store.database import Database
from engine.knowledge import EMBEDDERS

KIND = "knowledge_base"
ACTIVE = ("queued", "running")


def new_id() -> str:
    """A random 32-hex id."""
    return uuid.uuid4().hex


def now() -> datetime:
    """Aware UTC now."""
    return datetime.now(UTC)


class _Counted:
    """The upload's bytes on their way to the blob store: counted, stopped past the limit."""

    def __init__(self, chunks: Iterable[bytes], limit: int) -> None:
        self._chunks = chunks
        self.limit = limit
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.size += len(chunk)
            if self.size > self.limit:
                raise FileTooLargeError(
                    f"The file is larger than the {self.limit / 1e6:.0f} MB upload limit; "
                    "nothing was stored.",
                    limit=self.limit,
                )
            yield chunk


@dataclass
class OrphanReport:
    """What the orphan check found: ids that belong to nothing (all empty when healthy)."""

    chunks_without_document: list[int] = field(default_factory=list)
    fts_without_chunk: list[int] = field(default_factory=list)
    chunks_without_fts: list[int] = field(default_factory=list)
    vectors_without_chunk: list[int] = field(default_factory=list)
    collections_without_kb: list[str] = field(default_factory=list)
    documents_without_blob: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when nothing is orphaned."""
        return not any(vars(self).values())


class KnowledgeService:
    """Bases, documents and jobs for one unsealed appliance."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        acl: AclService,
        audit: AuditLog,
        vectors: VectorStore,
        *,
        default_embedder: str,
        max_upload_bytes: int,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.acl = acl
        self.audit = audit
        self.vectors = vectors
        self.default_embedder = default_embedder
        self.max_upload_bytes = max_upload_bytes
        self.wake = wake
        # Held by the worker around each batch and by deletions, so a document is never
        # deleted under a batch that is writing its chunks.
        self.lock = threading.RLock()

    # --- bases ----------------------------------------------------------------------------

    def create_base(
        self,
        user: User,
        name: str,
        description: str | None = None,
        retention_days: int | None = None,
        embedder: str | None = None,
    ) -> KnowledgeBase:
        """A new, empty base owned by ``user``."""
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidRequest("A knowledge base name has 1 to 200 characters.", field="name")
        if retention_days is not None and retention_days < 1:
            raise InvalidRequest("Retention is at least one day.", field="retention_days")
        kb = KnowledgeBase(
            id=new_id(),
            name=name,
            description=description,
            embedder=embedder or self.default_embedder,
            retention_days=retention_days,
            created_by=user.id,
            created_at=now(),
        )
        with self.db.write() as session:
            session.add(kb)
            self.acl.register(session, KIND, kb.id, user.id)
            self.audit.append(
                session,
                action="knowledge_base.create",
                actor=f"user:{user.id}",
                target=f"knowledge_base:{kb.id}",
            )
        return kb

    def usable_base_ids(self, user: User) -> list[str]:
        """Ids of every base ``user`` may search (owner, admin, or a grant)."""
        with self.db.read() as session:
            ids = list(session.scalars(select(KnowledgeBase.id).order_by(KnowledgeBase.name)))
        return [i for i in ids if self.acl.level_for(user, KIND, i) is not None]

    def list_bases(self, user: User) -> list[KnowledgeBase]:
        """Bases ``user`` may use, by name."""
        allowed = set(self.usable_base_ids(user))
        with self.db.read() as session:
            rows = session.scalars(select(KnowledgeBase).order_by(KnowledgeBase.name))
            return [kb for kb in rows if kb.id in allowed]

    def get_base(self, user: User, kb_id: str, level: str = Level.USE) -> KnowledgeBase:
        """The base, or 404 when missing or not ``user``'s to use at ``level``."""
        self.acl.check(user, KIND, kb_id, level)
        with self.db.read() as session:
            kb = session.get(KnowledgeBase, kb_id)
        if kb is None:
            raise NotFound()
        return kb

    def progress(self, user: User, kb_id: str) -> dict[str, object]:
        """Per-base progress for a UI bar: documents by status, chunks embedded of total."""
        self.get_base(user, kb_id)
        with self.db.read() as session:
            statuses = dict(
                session.execute(
                    select(KnowledgeDocument.status, func.count())
                    .where(KnowledgeDocument.kb_id == kb_id)
                    .group_by(KnowledgeDocument.status)
                ).all()
            )
            embedded, total = session.execute(
                select(func.count().filter(KnowledgeChunk.embedded.is_(True)), func.count()).where(
                    KnowledgeChunk.kb_id == kb_id
                )
            ).one()
        return {
            "documents": {str(k): int(v) for k, v in statuses.items()},
            "chunks": int(total),
            "chunks_embedded": int(embedded),
        }

    def delete_base(self, user: User, kb_id: str) -> None:
        """Delete a base with all its documents, chunks, vectors and unshared blobs."""
        self.get_base(user, kb_id, Level.EDIT)
        with self.lock:
            with self.db.read() as session:
                blob_ids = set(
                    session.scalars(
                        select(KnowledgeDocument.blob_id).where(KnowledgeDocument.kb_id == kb_id)
                    )
                )
            with self.db.write() as session:
                ids = list(
                    session.scalars(select(KnowledgeChunk.id).where(KnowledgeChunk.kb_id == kb_id))
                )
                fts.delete(session, ids)
                session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.kb_id == kb_id))
                session.execute(delete(KnowledgeDocument).where(KnowledgeDocument.kb_id == kb_id))
                session.execute(delete(KnowledgeJob).where(KnowledgeJob.kb_id == kb_id))
                session.execute(delete(KnowledgeBase).where(KnowledgeBase.id == kb_id))
                self.acl.forget(session, KIND, kb_id)
                self.audit.append(
                    session,
                    action="knowledge_base.delete",
                    actor=f"user:{user.id}",
                    target=f"knowledge_base:{kb_id}",
                )
            self.vectors.drop(kb_id)
            for blob_id in blob_ids:
                self._release_blob(blob_id)

    # --- documents ------------------------------------------------------------------------

    def add_document(
        self,
        user: User,
        kb_id: str,
        filename: str,
        chunks: Iterable[bytes],
        tags: list[str] | None = None,
    ) -> tuple[KnowledgeDocument, KnowledgeJob]:
        """Store the upload (encrypted, streamed, size-limited) and queue its ingestion job."""
        kb = self.get_base(user, kb_id, Level.EDIT)
        clean_name = PurePath(filename.replace("\\", "/")).name.strip()[:255] or "upload"
        counted = _Counted(chunks, self.max_upload_bytes)
        info = self.blobs.put(counted)
        try:
            if info.size == 0:
                raise FileEmpty()
            doc = KnowledgeDocument(
                id=new_id(),
                kb_id=kb.id,
                name=PurePath(clean_name).stem or clean_name,
                filename=clean_name,
                blob_id=info.blob_id,
                size=info.size,
                tags=json.dumps(sorted(set(tags or []))),
                status="queued",
                chunk_count=0,
                uploaded_by=user.id,
                created_at=now(),
                updated_at=now(),
            )
            job = KnowledgeJob(
                id=new_id(),
                kind="ingest",
                kb_id=kb.id,
                document_id=doc.id,
                state="queued",
                stage="queued",
                done=0,
                total=0,
                cancel_requested=False,
                created_by=user.id,
                created_at=now(),
                updated_at=now(),
            )
            with self.db.write() as session:
                existing = session.scalar(
                    select(KnowledgeDocument.id).where(
                        KnowledgeDocument.kb_id == kb.id, KnowledgeDocument.blob_id == info.blob_id
                    )
                )
                if existing is not None:
                    raise DuplicateDocument(
                        f"This content is already in the knowledge base as document {existing}.",
                        document_id=existing,
                    )
                session.add(doc)
                session.flush()
                session.add(job)
                self.audit.append(
                    session,
                    action="knowledge_document.upload",
                    actor=f"user:{user.id}",
                    target=f"knowledge_document:{doc.id}",
                    details={"kb": kb.id, "size": info.size},
                )
        except BaseException:
            if info.created:
                self.blobs.delete(info.blob_id)
            raise
        self.wake()
        return doc, job

    def list_documents(self, user: User, kb_id: str) -> list[KnowledgeDocument]:
        """A base's documents, newest first."""
        self.get_base(user, kb_id)
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(KnowledgeDocument)
                    .where(KnowledgeDocument.kb_id == kb_id)
                    .order_by(KnowledgeDocument.created_at.desc())
                )
            )

    def get_document(self, user: User, kb_id: str, doc_id: str) -> KnowledgeDocument:
        """One document of a base the user may use."""
        self.get_base(user, kb_id)
        with self.db.read() as session:
            doc = session.get(KnowledgeDocument, doc_id)
        if doc is None or doc.kb_id != kb_id:
            raise NotFound()
        return doc

    def delete_document(self, user: User, kb_id: str, doc_id: str) -> None:
        """Remove the document, its chunks, FTS rows, vectors and (unless shared) its blob."""
        self.get_base(user, kb_id, Level.EDIT)
        self.get_document(user, kb_id, doc_id)
        self.remove_document(doc_id, actor=f"user:{user.id}", action="knowledge_document.delete")

    def remove_document(self, doc_id: str, *, actor: str, action: str) -> None:
        """Delete a document everywhere (no access check: callers have done it)."""
        with self.lock:
            with self.db.write() as session:
                doc = session.get(KnowledgeDocument, doc_id)
                if doc is None:
                    return
                kb_id, blob_id = doc.kb_id, doc.blob_id
                ids = list(
                    session.scalars(
                        select(KnowledgeChunk.id).where(KnowledgeChunk.document_id == doc_id)
                    )
                )
                fts.delete(session, ids)
                session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == doc_id))
                session.execute(
                    update(KnowledgeJob)
                    .where(KnowledgeJob.document_id == doc_id, KnowledgeJob.state.in_(ACTIVE))
                    .values(state="cancelled", stage="deleted", updated_at=now())
                )
                session.delete(doc)
                self.audit.append(
                    session,
                    action=action,
                    actor=actor,
                    target=f"knowledge_document:{doc_id}",
                    details={"kb": kb_id, "chunks": len(ids)},
                )
            self.vectors.delete(kb_id, ids)
            self._release_blob(blob_id)

    def _release_blob(self, blob_id: str) -> None:
        """Delete the blob unless another document (in any base) still holds the content."""
        with self.db.read() as session:
            used = session.scalar(select(func.count()).where(KnowledgeDocument.blob_id == blob_id))
        if not used:
            self.blobs.delete(blob_id)

    # --- jobs -----------------------------------------------------------------------------

    def get_job(self, user: User, job_id: str) -> KnowledgeJob:
        """A job of a base the user may use (404 otherwise)."""
        with self.db.read() as session:
            job = session.get(KnowledgeJob, job_id)
        if job is None:
            raise NotFound()
        self.get_base(user, job.kb_id)
        return job

    def cancel_job(self, user: User, job_id: str) -> KnowledgeJob:
        """Cancel an ingestion and remove its document. Finished jobs and re-embeds cannot be
        cancelled (409)."""
        job = self.get_job(user, job_id)
        self.get_base(user, job.kb_id, Level.EDIT)
        if job.kind != "ingest" or job.state not in ACTIVE:
            raise JobNotCancellable()
        with self.db.write() as session:
            session.execute(
                update(KnowledgeJob)
                .where(KnowledgeJob.id == job_id)
                .values(cancel_requested=True, updated_at=now())
            )
        # A queued or embedding job's document goes now; a parse in progress stops at its
        # next batch (the worker sees the flag) and removes it then.
        if (job.state == "queued" or job.stage == "embedding") and job.document_id is not None:
            self.remove_document(
                job.document_id, actor=f"user:{user.id}", action="knowledge_document.cancel"
            )
        self.wake()
        return self.get_job(user, job_id)

    def start_reembed(self, user: User, kb_id: str, embedder: str) -> KnowledgeJob:
        """Re-embed every chunk with ``embedder`` in the background. The old vectors keep
        serving dense search (and BM25 works throughout) until the new ones are complete."""
        kb = self.get_base(user, kb_id, Level.EDIT)
        if embedder not in EMBEDDERS:
            raise InvalidRequest(
                f"Unknown embedder; known: {', '.join(sorted(EMBEDDERS))}.", field="embedder"
            )
        job = KnowledgeJob(
            id=new_id(),
            kind="reembed",
            kb_id=kb.id,
            state="running",
            stage="embedding",
            done=0,
            total=0,
            cancel_requested=False,
            created_by=user.id,
            created_at=now(),
            updated_at=now(),
        )
        with self.db.write() as session:
            busy = session.scalar(
                select(func.count()).where(
                    KnowledgeJob.kb_id == kb.id,
                    KnowledgeJob.kind == "reembed",
                    KnowledgeJob.state.in_(ACTIVE),
                )
            )
            if busy:
                raise Conflict("A re-embed of this knowledge base is already running.")
            job.total = int(
                session.scalar(select(func.count()).where(KnowledgeChunk.kb_id == kb.id)) or 0
            )
            session.execute(
                update(KnowledgeBase)
                .where(KnowledgeBase.id == kb.id)
                .values(pending_embedder=embedder)
            )
            session.execute(
                update(KnowledgeChunk).where(KnowledgeChunk.kb_id == kb.id).values(embedded=False)
            )
            session.add(job)
            self.audit.append(
                session,
                action="knowledge_base.reembed",
                actor=f"user:{user.id}",
                target=f"knowledge_base:{kb.id}",
                details={"embedder": embedder},
            )
        if embedder != kb.embedder:  # vectors left by an earlier, unfinished attempt
            self.vectors.drop(kb.id, embedder)
        self.wake()
        return job

    def job_document(self, session: Session, job: KnowledgeJob) -> KnowledgeDocument | None:
        """The job's document, if it still exists."""
        return session.get(KnowledgeDocument, job.document_id) if job.document_id else None

    # --- retention and integrity ----------------------------------------------------------

    def purge_expired(self, at: datetime | None = None) -> int:
        """Delete documents older than their base's retention; returns how many."""
        moment = at or now()
        expired: list[str] = []
        with self.db.read() as session:
            for kb in session.scalars(
                select(KnowledgeBase).where(KnowledgeBase.retention_days.is_not(None))
            ):
                assert kb.retention_days is not None
                cutoff = moment - timedelta(days=kb.retention_days)
                expired += session.scalars(
                    select(KnowledgeDocument.id).where(
                        KnowledgeDocument.kb_id == kb.id, KnowledgeDocument.created_at < cutoff
                    )
                )
        for doc_id in expired:
            self.remove_document(doc_id, actor="system", action="knowledge_document.expire")
        return len(expired)

    def find_orphans(self) -> OrphanReport:
        """Chunks, FTS rows, vectors and collections that belong to nothing, and documents
        whose blob is gone."""
        report = OrphanReport()
        with self.db.read() as session:
            docs = {d.id: d.blob_id for d in session.scalars(select(KnowledgeDocument))}
            rows = session.execute(select(KnowledgeChunk.id, KnowledgeChunk.document_id))
            chunks = {int(cid): str(doc_id) for cid, doc_id in rows}
            kbs = set(session.scalars(select(KnowledgeBase.id)))
            indexed = fts.rowids(session)
        report.chunks_without_document = sorted(c for c, d in chunks.items() if d not in docs)
        report.fts_without_chunk = sorted(indexed - chunks.keys())
        report.chunks_without_fts = sorted(chunks.keys() - indexed)
        for kb_id in sorted(self.vectors.kb_ids()):
            if kb_id not in kbs:
                report.collections_without_kb.append(kb_id)
                continue
            report.vectors_without_chunk += sorted(self.vectors.ids(kb_id) - chunks.keys())
        report.documents_without_blob = sorted(
            d for d, blob in docs.items() if not self.blobs.exists(blob)
        )
        return report
