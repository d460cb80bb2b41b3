"""Wiring: one knowledge runtime (service, searcher, vector store, worker) per unsealed
appliance, built on first use and rebuilt after a re-unseal or rekey."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select

from appliance.errors import EnclaveError
from appliance.knowledge.errors import EmbedderMissing, ScannerDown
from appliance.knowledge.models import KnowledgeJob
from appliance.knowledge.search import KnowledgeSearcher
from appliance.knowledge.service import KnowledgeService
from appliance.knowledge.vectors import VectorStore
from appliance.knowledge.worker import IngestWorker
from appliance.lifecycle import Appliance, State
from appliance.settings import EnclaveSettings
from appliance.store.database import Database
from engine.knowledge import (
    ClamdScanner,
    Embedder,
    EmbedderUnavailable,
    IngestLimits,
    Scanner,
    YaraScanner,
    load_embedder,
)
from engine.knowledge.errors import ScannerUnavailable

log = structlog.get_logger(__name__)

_MB = 1024 * 1024


@dataclass
class KnowledgeRuntime:
    """Everything knowledge bases need, for one open database."""

    db: Database
    service: KnowledgeService
    searcher: KnowledgeSearcher
    worker: IngestWorker

    def close(self) -> None:
        """Stop the worker (its jobs resume at the next start) and the search threads."""
        self.worker.stop()
        self.searcher.close()


def scanners_for(settings: EnclaveSettings) -> list[Scanner]:
    """YARA rules from ``ENCLAVE_KNOWLEDGE_YARA_DIR`` (or ``$ENCLAVE_HOME/yara`` when it
    exists) and clamd when ``ENCLAVE_KNOWLEDGE_CLAMD_SOCKET`` is set."""
    found: list[Scanner] = []
    rules = settings.knowledge_yara_dir or (settings.home / "yara")
    try:
        if rules.is_dir():
            found.append(YaraScanner(rules))
    except ScannerUnavailable as exc:
        raise ScannerDown(exc.message) from exc
    if settings.knowledge_clamd_socket is not None:
        found.append(ClamdScanner(settings.knowledge_clamd_socket))
    return found


def embedder_loader(threads: int) -> Any:
    """``embedder_for(id)``: the engine's embedder, with its error as an appliance error."""

    def embedder_for(embedder_id: str) -> Embedder:
        try:
            return load_embedder(embedder_id, threads)
        except EmbedderUnavailable as exc:
            raise EmbedderMissing(exc.message) from exc

    return embedder_for


def build_runtime(appliance: Appliance, *, start_worker: bool = True) -> KnowledgeRuntime:
    """A runtime over the appliance's open database, blob store and ``vectors/``."""
    settings = appliance.settings
    db = appliance.db
    services = appliance.services
    embedder_for = embedder_loader(settings.knowledge_embed_threads)
    vectors = VectorStore(appliance.home.root / "vectors")
    service = KnowledgeService(
        db,
        appliance.blobs,
        services.acl,
        services.audit,
        vectors,
        default_embedder=settings.knowledge_embedder,
        max_upload_bytes=settings.knowledge_max_upload_mb * _MB,
    )
    searcher = KnowledgeSearcher(
        service, embedder_for, settings.knowledge_bm25_weight, settings.knowledge_dense_weight
    )

    def alive() -> bool:
        try:
            return appliance.state is State.UNSEALED and appliance.db is db
        except EnclaveError:
            return False

    worker = IngestWorker(
        service,
        embedder_for,
        limits=IngestLimits(max_bytes=settings.knowledge_max_upload_mb * _MB),
        scanners=scanners_for(settings),
        tmp_dir=appliance.home.root / "tmp" / "knowledge",
        alive=alive,
    )
    service.wake = worker.wake
    searcher.search_log.alive = alive
    runtime = KnowledgeRuntime(db, service, searcher, worker)
    if start_worker:
        worker.start()
    return runtime


_runtimes: dict[int, KnowledgeRuntime] = {}
_lock = threading.Lock()


def knowledge_runtime(appliance: Appliance) -> KnowledgeRuntime:
    """The appliance's runtime (``Sealed`` while sealed); resumes unfinished jobs on creation."""
    db = appliance.db
    with _lock:
        runtime = _runtimes.get(id(appliance))
        if runtime is not None and runtime.db is db:
            return runtime
        if runtime is not None:
            runtime.close()
        runtime = build_runtime(appliance)
        _runtimes[id(appliance)] = runtime
        log.info("knowledge.runtime_started")
        return runtime


def resume_pending(appliance: Appliance) -> bool:
    """At unseal: start the runtime (and its worker) when ingestion or embedding is unfinished,
    so interrupted jobs resume at once rather than at the first knowledge request. True when
    it started one. Cheap when there is nothing to do: one indexed query, no Chroma."""
    # Unembedded chunks always belong to a running job (ingest or re-embed): jobs suffice.
    with appliance.db.read() as session:
        pending = session.scalar(
            select(KnowledgeJob.id).where(KnowledgeJob.state.in_(("queued", "running"))).limit(1)
        )
    if pending is None:
        return False
    knowledge_runtime(appliance)
    log.info("knowledge.resumed_at_unseal")
    return True


def flush_search_log(appliance: Appliance) -> None:
    """Write the queued search-log rows of the appliance's runtime, if one runs (at seal,
    before the database closes)."""
    with _lock:
        runtime = _runtimes.get(id(appliance))
    if runtime is not None:
        runtime.searcher.search_log.flush()


def close_runtime(appliance: Appliance) -> None:
    """Stop the appliance's runtime, if one runs."""
    with _lock:
        runtime = _runtimes.pop(id(appliance), None)
    if runtime is not None:
        runtime.close()
