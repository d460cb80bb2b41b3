"""The background ingestion worker: one thread, all state in the database.

Work comes in two kinds, parsing first so that a new document is searchable by keyword
(BM25) seconds after upload, then embedding in batches across documents (so the embedder runs
on full batches, nearly as fast as embedding raw text). Nothing lives only in memory: a job's
stage, a document's status and each chunk's ``embedded`` flag are rows, so after a restart
:meth:`IngestWorker.recover` puts interrupted parses back in the queue and embedding simply
continues with the chunks not yet embedded.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import structlog
from sqlalchemy import Table, bindparam, delete, func, select, update

from appliance.errors import EnclaveError
from appliance.knowledge import fts, parse_batch
from appliance.knowledge.models import (
    KnowledgeBase,
    KnowledgeChunk,
    KnowledgeDocument,
    KnowledgeJob,
)
from appliance.knowledge.parse_batch import PARSE_STAGES, failure_of
from appliance.knowledge.service import KnowledgeService, now
from engine.knowledge import (
    ChunkingOptions,
    Embedder,
    IngestLimits,
    Scanner,
    chunk_sections,
    extract,
)

log = structlog.get_logger(__name__)

_SPOOL_BYTES = 32 * 1024 * 1024


class _Interrupted(Exception):
    """The worker is stopping: leave the job where it is (it resumes at the next start)."""


class _Gone(Exception):
    """The job's document was deleted or the job cancelled while it ran."""


class IngestWorker:
    """Runs ingestion and embedding jobs in a thread of its own."""

    def __init__(
        self,
        service: KnowledgeService,
        embedder_for: Callable[[str], Embedder],
        *,
        limits: IngestLimits,
        scanners: Sequence[Scanner] = (),
        tmp_dir: Path,
        chunking: ChunkingOptions | None = None,
        embed_batch: int = 32,
        parse_batch: int = 256,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.service = service
        self.db = service.db
        self.embedder_for = embedder_for
        self.limits = limits
        self.scanners = list(scanners)
        self.tmp_dir = tmp_dir
        self.chunking = chunking or ChunkingOptions()
        self.embed_batch = embed_batch
        self.parse_batch = parse_batch
        self.alive = alive
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Recover interrupted jobs and start the thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="knowledge-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to stop after its current batch and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wake(self) -> None:
        """New work arrived."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set() and self.alive():
            try:
                worked = self.run_once()
            except EnclaveError as exc:
                log.error("knowledge.worker_error", code=exc.code, reason=exc.message)
                worked = False
                self._stop.wait(5)
            except Exception:
                # A bug must not end ingestion for good: log it, back off, try again.
                log.exception("knowledge.worker_crashed")
                worked = False
                self._stop.wait(5)
            if not worked:
                self._wake.wait(5)
                self._wake.clear()

    def run_until_idle(self, max_steps: int = 100_000) -> int:
        """Run in the caller's thread until nothing is left; returns the steps taken."""
        steps = 0
        while steps < max_steps and self.run_once():
            steps += 1
        return steps

    # --- recovery -------------------------------------------------------------------------

    def recover(self) -> int:
        """After a restart: put interrupted parses back in the queue, wipe temp files."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.db.write() as session:
            result = session.execute(
                update(KnowledgeJob)
                .where(KnowledgeJob.state == "running", KnowledgeJob.stage.in_(PARSE_STAGES))
                .values(state="queued", stage="queued", updated_at=now())
            )
            count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            log.info("knowledge.jobs_resumed", count=count)
        return count

    # --- one step -------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Do one unit of work (the parse of a batch of small documents or of one larger
        document, or one embedding batch); False when idle."""
        queued = parse_batch.queued_parses(self)
        try:
            if queued:
                small = []
                for job, doc in queued:
                    if not parse_batch.batchable(job, doc):
                        break
                    assert doc is not None
                    small.append((job, doc))
                if small:
                    parse_batch.parse_batch(self, small)
                else:
                    self._ingest(queued[0][0])
                return True
            return self._embed_batch()
        except _Interrupted:
            return False  # stopping: the job stays where it is and resumes at the next start

    def stopping(self) -> None:
        """Raise :class:`_Interrupted` when the worker has been asked to stop."""
        if self._stop.is_set():
            raise _Interrupted()

    # --- parsing --------------------------------------------------------------------------

    def _set_job(self, job_id: str, **values: Any) -> None:
        with self.db.write() as session:
            session.execute(
                update(KnowledgeJob)
                .where(KnowledgeJob.id == job_id)
                .values(updated_at=now(), **values)
            )

    def _check(self, job_id: str) -> None:
        with self.db.read() as session:
            job = session.get(KnowledgeJob, job_id)
            doc = self.service.job_document(session, job) if job else None
        if job is None or doc is None or job.state == "cancelled":
            raise _Gone()
        if job.cancel_requested:
            raise _Gone("cancel")

    def _ingest(self, job: KnowledgeJob) -> None:
        assert job.document_id is not None
        try:
            self._check(job.id)
            with self.service.lock, self.db.write() as session:
                # A parse interrupted by a restart left some chunks: start the document over.
                stale = self._drop_chunks(session, job.document_id)
                session.execute(
                    update(KnowledgeDocument)
                    .where(KnowledgeDocument.id == job.document_id)
                    .values(status="processing", chunk_count=0, updated_at=now())
                )
                session.execute(
                    update(KnowledgeJob)
                    .where(KnowledgeJob.id == job.id)
                    .values(state="running", stage="checking", done=0, total=0, updated_at=now())
                )
            self.service.vectors.delete(job.kb_id, stale)
            self._parse(job)
        except _Gone as gone:
            self._cancelled(job, cancel=bool(gone.args))
            return
        except _Interrupted:
            raise
        except Exception as exc:
            code, message, quarantine = failure_of(exc, job.id)
            self._failed(job, code, message, quarantine=quarantine)
            return
        self.wake()

    def _parse(self, job: KnowledgeJob) -> int:
        assert job.document_id is not None
        with self.db.read() as session:
            doc = session.get(KnowledgeDocument, job.document_id)
        if doc is None:
            raise _Gone()
        with self._plaintext(doc.blob_id) as file:
            extracted = extract(file, doc.filename, self.limits, self.scanners)
            with self.db.write() as session:
                session.execute(
                    update(KnowledgeDocument)
                    .where(KnowledgeDocument.id == doc.id)
                    .values(kind=extracted.kind, media_type=extracted.media_type)
                )
                session.execute(
                    update(KnowledgeJob)
                    .where(KnowledgeJob.id == job.id)
                    .values(stage="parsing", updated_at=now())
                )
            batch: list[KnowledgeChunk] = []
            total = 0
            for chunk in chunk_sections(extracted.sections, self.chunking):
                batch.append(KnowledgeChunk.from_chunk(doc.id, doc.kb_id, chunk))
                if len(batch) >= self.parse_batch:
                    total += self._store(job.id, batch)
                    batch = []
            total += self._store(job.id, batch, finish=(doc.id, total + len(batch)))
        return total

    def _store(
        self, job_id: str, batch: list[KnowledgeChunk], finish: tuple[str, int] | None = None
    ) -> int:
        """Commit a batch of chunks with their FTS rows; they are searchable from here on.
        ``finish=(document_id, chunk_count)`` marks the last batch: the document becomes
        ``indexed`` and its job moves to embedding in the same transaction (one write fewer
        per document, which counts for thousands of small files)."""
        self._check(job_id)
        with self.service.lock, self.db.write() as session:
            if batch:
                session.add_all(batch)
                session.flush()
                fts.insert(
                    session, ((c.id, c.kb_id, fts.index_text(c.text, c.section)) for c in batch)
                )
                session.execute(
                    update(KnowledgeJob)
                    .where(KnowledgeJob.id == job_id)
                    .values(done=KnowledgeJob.done + len(batch), updated_at=now())
                )
            if finish is not None:
                doc_id, count = finish
                session.execute(
                    update(KnowledgeDocument)
                    .where(KnowledgeDocument.id == doc_id)
                    .values(status="indexed", chunk_count=count, updated_at=now())
                )
                session.execute(
                    update(KnowledgeJob)
                    .where(KnowledgeJob.id == job_id)
                    .values(stage="embedding", done=0, total=count, updated_at=now())
                )
        if self._stop.is_set():
            raise _Interrupted()
        return len(batch)

    @contextlib.contextmanager
    def _plaintext(self, blob_id: str) -> Any:
        """The decrypted file, in memory up to 32 MB, beyond that in a 0600 temp file in the
        home (wiped at the next start if the process dies)."""
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES, dir=str(self.tmp_dir)) as spool:
            for piece in self.service.blobs.open(blob_id):
                spool.write(piece)
            spool.seek(0)
            yield spool

    def _drop_chunks(self, session: Any, doc_id: str) -> list[int]:
        ids = list(
            session.scalars(select(KnowledgeChunk.id).where(KnowledgeChunk.document_id == doc_id))
        )
        fts.delete(session, ids)
        session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == doc_id))
        return ids

    def _failed(self, job: KnowledgeJob, code: str, message: str, quarantine: bool = False) -> None:
        assert job.document_id is not None
        with self.service.lock:
            with self.db.write() as session:
                ids = self._drop_chunks(session, job.document_id)
                session.execute(
                    update(KnowledgeDocument)
                    .where(KnowledgeDocument.id == job.document_id)
                    .values(
                        status="quarantined" if quarantine else "failed",
                        error_code=code,
                        error_message=message,
                        chunk_count=0,
                        updated_at=now(),
                    )
                )
                session.execute(
                    update(KnowledgeJob)
                    .where(KnowledgeJob.id == job.id)
                    .values(
                        state="failed", error_code=code, error_message=message, updated_at=now()
                    )
                )
            self.service.vectors.delete(job.kb_id, ids)
        log.info("knowledge.ingest_failed", job=job.id, code=code)

    def _cancelled(self, job: KnowledgeJob, cancel: bool) -> None:
        if cancel and job.document_id is not None:
            self.service.remove_document(
                job.document_id, actor="system", action="knowledge_document.cancel"
            )
        self._set_job(job.id, state="cancelled", stage="cancelled")

    # --- embedding ------------------------------------------------------------------------

    def _embed_batch(self) -> bool:
        with self.db.read() as session:
            rows = list(
                session.execute(
                    select(
                        KnowledgeChunk.id,
                        KnowledgeChunk.kb_id,
                        KnowledgeChunk.text,
                        KnowledgeChunk.section,
                    )
                    .where(KnowledgeChunk.id.in_(self._unembedded()))
                    .order_by(KnowledgeChunk.id)
                )
            )
        if not rows:
            return False
        by_kb: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for cid, kb_id, body, section in rows:
            by_kb[kb_id].append((cid, fts.index_text(body, section)))
        for kb_id, items in by_kb.items():
            self._embed_kb(kb_id, items)
            if self._stop.is_set():
                raise _Interrupted()
        return True

    def _unembedded(self) -> Any:
        """The next batch's chunk ids: through the (base, embedded) index, base by base, so
        that finding them does not read every chunk already embedded (a scan in id order)."""
        return (
            select(KnowledgeChunk.id)
            .where(
                KnowledgeChunk.kb_id.in_(select(KnowledgeBase.id)),
                KnowledgeChunk.embedded.is_(False),
            )
            .order_by(KnowledgeChunk.id)
            .limit(self.embed_batch)
        )

    def _embed_kb(self, kb_id: str, items: list[tuple[int, str]]) -> None:
        with self.db.read() as session:
            kb = session.get(KnowledgeBase, kb_id)
        ids = [cid for cid, _ in items]
        if kb is None:  # the base is being deleted; its chunks go with it
            return
        target = kb.pending_embedder or kb.embedder
        embedder = self.embedder_for(target)
        vectors = embedder.embed_documents([body for _, body in items])
        with self.service.lock:
            with self.db.read() as session:
                alive = set(
                    session.scalars(select(KnowledgeChunk.id).where(KnowledgeChunk.id.in_(ids)))
                )
            keep = [i for i, cid in enumerate(ids) if cid in alive]
            self.service.vectors.upsert(kb_id, target, [ids[i] for i in keep], vectors[keep])
            with self.db.write() as session:
                session.execute(
                    update(KnowledgeChunk).where(KnowledgeChunk.id.in_(alive)).values(embedded=True)
                )
                self._progress(session, kb, list(alive))

    def _progress(self, session: Any, kb: KnowledgeBase, chunk_ids: list[int]) -> None:
        """Update the jobs whose chunks were just embedded; finish what is complete."""
        docs = select(KnowledgeChunk.document_id).where(KnowledgeChunk.id.in_(chunk_ids))
        counts = session.execute(
            select(
                KnowledgeChunk.document_id,
                func.count().filter(KnowledgeChunk.embedded.is_(True)),
                func.count(),
            )
            .where(KnowledgeChunk.document_id.in_(docs.distinct()))
            .group_by(KnowledgeChunk.document_id)
        ).all()
        stamp = now()
        # One statement for all the batch's jobs (executemany), one for finished documents.
        jobs = cast(Table, KnowledgeJob.__table__)
        rows = [
            {
                "doc": doc_id,
                "n_done": embedded,
                "n_total": total,
                "n_state": "done" if embedded >= total else "running",
                "n_stage": "done" if embedded >= total else "embedding",
            }
            for doc_id, embedded, total in counts
        ]
        if rows:
            session.execute(
                jobs.update()
                .where(
                    jobs.c.document_id == bindparam("doc"),
                    jobs.c.kind == "ingest",
                    jobs.c.state == "running",
                )
                .values(
                    done=bindparam("n_done"),
                    total=bindparam("n_total"),
                    state=bindparam("n_state"),
                    stage=bindparam("n_stage"),
                    updated_at=stamp,
                ),
                rows,
            )
        finished = [r["doc"] for r in rows if r["n_state"] == "done"]
        if finished:
            session.execute(
                update(KnowledgeDocument)
                .where(KnowledgeDocument.id.in_(finished), KnowledgeDocument.status == "indexed")
                .values(status="ready", updated_at=stamp)
            )
        if kb.pending_embedder:
            self._reembed_progress(session, kb)

    def _reembed_progress(self, session: Any, kb: KnowledgeBase) -> None:
        embedded, total = session.execute(
            select(func.count().filter(KnowledgeChunk.embedded.is_(True)), func.count()).where(
                KnowledgeChunk.kb_id == kb.id
            )
        ).one()
        finished = embedded >= total
        session.execute(
            update(KnowledgeJob)
            .where(
                KnowledgeJob.kb_id == kb.id,
                KnowledgeJob.kind == "reembed",
                KnowledgeJob.state == "running",
            )
            .values(
                done=embedded,
                total=total,
                state="done" if finished else "running",
                stage="done" if finished else "embedding",
                updated_at=now(),
            )
        )
        if finished:
            old = kb.embedder
            session.execute(
                update(KnowledgeBase)
                .where(KnowledgeBase.id == kb.id)
                .values(embedder=kb.pending_embedder, pending_embedder=None)
            )
            if old != kb.pending_embedder:
                self.service.vectors.drop(kb.id, old)
            log.info("knowledge.reembedded", kb=kb.id, embedder=kb.pending_embedder)
