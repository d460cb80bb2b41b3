"""The parse stage for many small documents at once: one write transaction for the lot.

A knowledge base is often thousands of short files (abstracts, notes, tickets). Parsing one
takes a millisecond or two; what cost more was the bookkeeping around it — three write
transactions per document, each of which encrypts its pages and makes every reader drop its
page cache. Here the worker takes the queued small documents in order, checks and parses each
on its own (sniffing, size and archive guards, scanners, parser, chunker: exactly the single
path's steps, so one bad file fails alone with its own error), and commits all their chunks,
FTS5 rows, document statuses and per-file job progress in **one** transaction. A document
becomes keyword-searchable when that transaction commits, a fraction of a second after it was
picked up.

Nothing is written before that commit, so an interrupted batch leaves its jobs ``queued`` and
they are simply taken again. If the commit itself fails, the batch is redone one document at a
time through the single path, so a failure stays with the document that caused it. Documents
larger than :data:`SMALL_BYTES`, or that turn out to have more chunks than the worker's
``parse_batch``, take the single, streaming path (committed batch by batch, resumable).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import delete, select, update

from appliance.errors import EnclaveError
from appliance.knowledge import fts
from appliance.knowledge.models import KnowledgeChunk, KnowledgeDocument, KnowledgeJob
from appliance.knowledge.service import now
from engine.knowledge import Chunk, IngestError, chunk_sections, extract
from engine.knowledge.errors import MalwareDetected

if TYPE_CHECKING:
    from appliance.knowledge.worker import IngestWorker

log = structlog.get_logger(__name__)

PARSE_STAGES = ("queued", "checking", "parsing")
# Uploads up to this size are parsed in batches; larger ones stream through the single path.
SMALL_BYTES = 256 * 1024
# Documents taken per batch (the chunk budget, the worker's ``parse_batch``, also bounds it).
MAX_DOCUMENTS = 64


class _TooBig(Exception):
    """The document has more chunks than one batch holds: it takes the streaming path."""


@dataclass
class _Outcome:
    """One document's result: its chunks, or why it failed."""

    job: KnowledgeJob
    doc: KnowledgeDocument
    kind: str | None = None
    media_type: str | None = None
    chunks: list[Chunk] = field(default_factory=list)
    error: tuple[str, str, bool] | None = None  # code, message, quarantine


def failure_of(exc: Exception, job_id: str) -> tuple[str, str, bool]:
    """(error code, message, quarantine?) for a document whose checks or parsing raised ``exc``
    — the batch's and the single path's one rule."""
    if isinstance(exc, IngestError):
        return exc.code, exc.message, isinstance(exc, MalwareDetected)
    if isinstance(exc, EnclaveError):
        return exc.code, exc.message, False
    # A third-party parser tripping over a hostile file (pypdf, python-docx... raise all
    # sorts): the file's fault, reported as damage; the worker carries on.
    log.warning("knowledge.parser_crashed", job=job_id, error=type(exc).__name__, exc_info=True)
    return "file_corrupt", f"The file could not be parsed ({type(exc).__name__}).", False


def batchable(job: KnowledgeJob, doc: KnowledgeDocument | None) -> bool:
    """Whether the job may join a batch: a queued ingest of a small, existing document."""
    return doc is not None and job.state == "queued" and doc.size <= SMALL_BYTES


def queued_parses(worker: IngestWorker) -> list[tuple[KnowledgeJob, KnowledgeDocument | None]]:
    """The next parse-stage jobs in order, each with its document (None when deleted)."""
    with worker.db.read() as session:
        rows = session.execute(
            select(KnowledgeJob, KnowledgeDocument)
            .outerjoin(KnowledgeDocument, KnowledgeDocument.id == KnowledgeJob.document_id)
            .where(
                KnowledgeJob.kind == "ingest",
                KnowledgeJob.state.in_(("queued", "running")),
                KnowledgeJob.stage.in_(PARSE_STAGES),
            )
            .order_by(KnowledgeJob.created_at, KnowledgeJob.id)
            .limit(MAX_DOCUMENTS)
        ).all()
    return [(job, doc) for job, doc in rows]


def parse_batch(worker: IngestWorker, jobs: list[tuple[KnowledgeJob, KnowledgeDocument]]) -> None:
    """Parse the small documents of ``jobs`` (all :func:`batchable`, in queue order) and
    commit them together. Stops early at a document too big for a batch; when that is the
    first one, it goes through the single path at once."""
    outcomes: list[_Outcome] = []
    budget = worker.parse_batch
    for job, doc in jobs:
        if job.cancel_requested:
            break  # the single path removes the document and marks the job cancelled
        try:
            outcome = _parse_one(worker, job, doc, budget)
        except _TooBig:
            if not outcomes:
                worker._ingest(job)
                return
            break
        outcomes.append(outcome)
        budget -= len(outcome.chunks)
        if budget <= 0 or worker._stop.is_set():
            break
    if not outcomes:
        worker._ingest(jobs[0][0])
        return
    try:
        cancelled, stale = _commit(worker, outcomes)
    except Exception:  # e.g. disk full: each document again alone, so the failure is its own
        log.warning("knowledge.batch_redone", documents=len(outcomes), exc_info=True)
        _one_by_one(worker, outcomes)
        return
    for kb_id, ids in stale.items():
        worker.service.vectors.delete(kb_id, ids)
    for job in cancelled:
        worker._cancelled(job, cancel=True)
    for outcome in outcomes:
        if outcome.error is not None:
            log.info("knowledge.ingest_failed", job=outcome.job.id, code=outcome.error[0])
    worker.wake()
    worker.stopping()


def _one_by_one(worker: IngestWorker, outcomes: list[_Outcome]) -> None:
    for outcome in outcomes:
        worker._ingest(outcome.job)


def _parse_one(
    worker: IngestWorker, job: KnowledgeJob, doc: KnowledgeDocument, budget: int
) -> _Outcome:
    """The single path's checks and parsing, in memory; errors become the outcome."""
    outcome = _Outcome(job, doc)
    try:
        with worker._plaintext(doc.blob_id) as file:
            extracted = extract(file, doc.filename, worker.limits, worker.scanners)
            outcome.kind, outcome.media_type = extracted.kind, extracted.media_type
            for chunk in chunk_sections(extracted.sections, worker.chunking):
                outcome.chunks.append(chunk)
                if len(outcome.chunks) > max(budget, 1):
                    raise _TooBig()
    except _TooBig:
        raise
    except Exception as exc:  # the file's own failure; the others in the batch carry on
        outcome.error = failure_of(exc, job.id)
    if outcome.error is not None:
        outcome.chunks = []
    return outcome


def _commit(
    worker: IngestWorker, outcomes: list[_Outcome]
) -> tuple[list[KnowledgeJob], dict[str, list[int]]]:
    """One transaction: chunks, FTS5 rows, statuses and job progress of every document that
    still exists and was not cancelled meanwhile. Returns the jobs cancelled while parsing and
    stale chunk ids (left by an interrupted earlier attempt) per base."""
    doc_ids = [o.doc.id for o in outcomes]
    job_ids = [o.job.id for o in outcomes]
    cancelled: list[KnowledgeJob] = []
    stale: dict[str, list[int]] = defaultdict(list)
    with worker.service.lock, worker.db.write() as session:
        alive = set(
            session.scalars(select(KnowledgeDocument.id).where(KnowledgeDocument.id.in_(doc_ids)))
        )
        states = {
            jid: (state, flag)
            for jid, state, flag in session.execute(
                select(KnowledgeJob.id, KnowledgeJob.state, KnowledgeJob.cancel_requested).where(
                    KnowledgeJob.id.in_(job_ids)
                )
            )
        }
        kept: list[_Outcome] = []
        for outcome in outcomes:
            state, flag = states.get(outcome.job.id, ("cancelled", False))
            if outcome.doc.id not in alive or state not in ("queued", "running"):
                continue  # deleted (or cancelled while queued) meanwhile: nothing to write
            if flag:
                cancelled.append(outcome.job)
                continue
            kept.append(outcome)
        if not kept:
            return cancelled, stale
        kept_ids = [o.doc.id for o in kept]
        for cid, kb_id in session.execute(
            select(KnowledgeChunk.id, KnowledgeChunk.kb_id).where(
                KnowledgeChunk.document_id.in_(kept_ids)
            )
        ):
            stale[kb_id].append(cid)
        if stale:
            fts.delete(session, [cid for ids in stale.values() for cid in ids])
            session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id.in_(kept_ids)))
        rows = [KnowledgeChunk.from_chunk(o.doc.id, o.doc.kb_id, c) for o in kept for c in o.chunks]
        if rows:
            session.add_all(rows)
            session.flush()
            fts.insert(session, ((c.id, c.kb_id, fts.index_text(c.text, c.section)) for c in rows))
        stamp = now()
        session.execute(update(KnowledgeDocument), [_document_values(o, stamp) for o in kept])
        session.execute(update(KnowledgeJob), [_job_values(o, stamp) for o in kept])
    return cancelled, stale


def _document_values(outcome: _Outcome, stamp: Any) -> dict[str, Any]:
    if outcome.error is not None:
        code, message, quarantine = outcome.error
        return {
            "id": outcome.doc.id,
            "status": "quarantined" if quarantine else "failed",
            "error_code": code,
            "error_message": message,
            "chunk_count": 0,
            "updated_at": stamp,
        }
    return {
        "id": outcome.doc.id,
        "kind": outcome.kind,
        "media_type": outcome.media_type,
        "status": "indexed",
        "chunk_count": len(outcome.chunks),
        "updated_at": stamp,
    }


def _job_values(outcome: _Outcome, stamp: Any) -> dict[str, Any]:
    if outcome.error is not None:
        code, message, _ = outcome.error
        return {
            "id": outcome.job.id,
            "state": "failed",
            # Where it failed, as the single path leaves it: the checks, or the parser.
            "stage": "parsing" if outcome.kind is not None else "checking",
            "error_code": code,
            "error_message": message,
            "updated_at": stamp,
        }
    return {
        "id": outcome.job.id,
        "state": "running",
        "stage": "embedding",
        "done": 0,
        "total": len(outcome.chunks),
        "updated_at": stamp,
    }
