"""Search over the bases a user may use: BM25 (FTS5), dense (Chroma) or hybrid (RRF), with
document and tag filters, citations on every hit, and a search log for analytics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from sqlalchemy import select

from appliance.errors import InvalidRequest, NotFound
from appliance.identity.models import User
from appliance.knowledge import fts
from appliance.knowledge.fts_stats import IndexStats
from appliance.knowledge.models import (
    KnowledgeBase,
    KnowledgeChunk,
    KnowledgeDocument,
    KnowledgeSearch,
)
from appliance.knowledge.search_log import SearchLog
from appliance.knowledge.service import KnowledgeService, now
from engine.knowledge import Embedder, SearchHit, reciprocal_rank_fusion

log = structlog.get_logger(__name__)

Mode = Literal["bm25", "dense", "hybrid"]
MODES = ("bm25", "dense", "hybrid")
MAX_K = 100
MAX_QUERY = 2000


@dataclass(frozen=True)
class SearchFilters:
    """Optional narrowing: only these documents, only documents with all these tags."""

    document_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """True when any filter is set."""
        return bool(self.document_ids or self.tags)


@dataclass(frozen=True)
class SearchResult:
    """Ranked hits and how long the search took."""

    hits: list[SearchHit]
    mode: str
    latency_ms: float


class KnowledgeSearcher:
    """Retrieval with access control; every search is logged (mode, latency, hit count)."""

    def __init__(
        self,
        service: KnowledgeService,
        embedder_for: Callable[[str], Embedder],
        bm25_weight: float = 1.0,
        dense_weight: float = 1.0,
    ) -> None:
        self.service = service
        # embedder_for(embedder_id) -> Embedder, loaded once per process.
        self.embedder_for = embedder_for
        self.weights = (bm25_weight, dense_weight)
        # FTS5 word and base row counts, reused while the index is unchanged (fts_stats).
        self.index_stats = IndexStats()
        # Search-log rows, written in batches off the search's path (search_log).
        self.search_log = SearchLog(service.db)
        # Hybrid search runs its dense half here while the calling thread runs BM25: both spend
        # their time outside the GIL (SQLite's FTS5, the embedder, Chroma's index), so on two
        # cores the two retrievals overlap. Made on first use, shut down by close().
        self._dense_pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def close(self) -> None:
        """Write the queued search-log rows and stop the dense-retrieval threads (a later
        hybrid search makes new ones)."""
        with self._pool_lock:
            pool, self._dense_pool = self._dense_pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        try:
            self.search_log.flush()
        except Exception:  # closing after a seal: the database is gone
            log.warning("knowledge.search_log_not_written", exc_info=True)

    def _pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._dense_pool is None:
                self._dense_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kb-dense")
            return self._dense_pool

    def _allowed(self, user: User, kb_ids: Sequence[str] | None) -> list[KnowledgeBase]:
        usable = self.service.usable_base_ids(user)
        if kb_ids is None:
            chosen = usable
        else:
            missing = [k for k in kb_ids if k not in usable]
            if missing:
                raise NotFound()  # a base one may not use is, to them, not there
            chosen = list(dict.fromkeys(kb_ids))
        with self.service.db.read() as session:
            return list(session.scalars(select(KnowledgeBase).where(KnowledgeBase.id.in_(chosen))))

    def search(
        self,
        user: User,
        query: str,
        *,
        kb_ids: Sequence[str] | None = None,
        mode: str = "hybrid",
        k: int = 10,
        filters: SearchFilters | None = None,
        weights: tuple[float, float] | None = None,
        log: bool = True,
    ) -> SearchResult:
        """The ``k`` best passages for ``query`` from the bases ``user`` may use."""
        if mode not in MODES:
            raise InvalidRequest("mode is bm25, dense or hybrid.", field="mode")
        if not 1 <= k <= MAX_K:
            raise InvalidRequest(f"k is between 1 and {MAX_K}.", field="k")
        query = query.strip()
        if not query or len(query) > MAX_QUERY:
            raise InvalidRequest(f"The query has 1 to {MAX_QUERY} characters.", field="q")
        started = time.perf_counter()
        bases = self._allowed(user, kb_ids)
        hits = self.retrieve(bases, query, mode, k, filters or SearchFilters(), weights)
        latency = (time.perf_counter() - started) * 1000
        if log:
            self._log(user, bases, query, mode, latency, len(hits))
        return SearchResult(hits, mode, latency)

    def retrieve(
        self,
        bases: Sequence[KnowledgeBase],
        query: str,
        mode: str,
        k: int,
        filters: SearchFilters,
        weights: tuple[float, float] | None = None,
    ) -> list[SearchHit]:
        """Ranking without access checks or logging (callers have chosen ``bases``)."""
        if not bases:
            return []
        depth = max(k * 10, 100) if mode == "hybrid" or filters.active else k
        if filters.active:
            depth = max(depth, 500)
        bm25: list[tuple[int, float]] = []
        dense: list[tuple[int, float]] = []
        pending = (
            self._pool().submit(self._dense, bases, query, depth) if mode == "hybrid" else None
        )
        if mode in ("bm25", "hybrid"):
            try:
                with self.service.db.read() as session:
                    bm25 = fts.search(
                        session, query, [b.id for b in bases], depth, stats=self.index_stats
                    )
            except BaseException:
                if pending is not None:
                    wait([pending])  # never leave it running past this search
                raise
        if pending is not None:
            dense = pending.result()
        if mode == "dense":
            dense = self._dense(bases, query, depth)
        if filters.active:
            bm25, dense = self._filter(bm25, filters), self._filter(dense, filters)
        if mode == "bm25":
            ranked = bm25
        elif mode == "dense":
            ranked = dense
        else:
            fused = reciprocal_rank_fusion(
                [[c for c, _ in bm25], [c for c, _ in dense]], list(weights or self.weights)
            )
            ranked = fused
        return self._hits(ranked[:k], {b.id for b in bases})

    def _dense(
        self, bases: Sequence[KnowledgeBase], query: str, depth: int
    ) -> list[tuple[int, float]]:
        vectors: dict[str, Any] = {}
        found: list[tuple[int, float]] = []
        for kb in bases:
            embedder: Embedder = self.embedder_for(kb.embedder)
            if kb.embedder not in vectors:
                vectors[kb.embedder] = embedder.embed_query(query)
            found += self.service.vectors.query(kb.id, kb.embedder, vectors[kb.embedder], depth)
        found.sort(key=lambda item: -item[1])
        return found[:depth]

    def _filter(
        self, ranked: list[tuple[int, float]], filters: SearchFilters
    ) -> list[tuple[int, float]]:
        if not ranked:
            return ranked
        ids = [c for c, _ in ranked]
        with self.service.db.read() as session:
            rows = session.execute(
                select(KnowledgeChunk.id, KnowledgeDocument.id, KnowledgeDocument.tags)
                .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                .where(KnowledgeChunk.id.in_(ids))
            )
            keep = {
                cid
                for cid, doc_id, tags in rows
                if (not filters.document_ids or doc_id in filters.document_ids)
                and set(filters.tags) <= set(json.loads(tags))
            }
        return [(c, s) for c, s in ranked if c in keep]

    def _hits(self, ranked: Sequence[tuple[int, float]], kb_ids: set[str]) -> list[SearchHit]:
        if not ranked:
            return []
        ids = [c for c, _ in ranked]
        with self.service.db.read() as session:
            rows = {
                chunk.id: (chunk, doc)
                for chunk, doc in session.execute(
                    select(KnowledgeChunk, KnowledgeDocument)
                    .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                    .where(KnowledgeChunk.id.in_(ids))
                )
            }
        hits = []
        for chunk_id, score in ranked:
            if chunk_id not in rows:  # deleted between ranking and loading
                continue
            chunk, doc = rows[chunk_id]
            if doc.kb_id not in kb_ids:  # never past the bases searched, whatever an index says
                continue
            hits.append(
                SearchHit(
                    chunk_id=str(chunk.id),
                    knowledge_base_id=doc.kb_id,
                    document_id=doc.id,
                    document_name=doc.name,
                    filename=doc.filename,
                    text=chunk.text,
                    score=round(float(score), 6),
                    start=chunk.char_start,
                    end=chunk.char_end,
                    page=chunk.page,
                    section=chunk.section,
                )
            )
        return hits

    def _log(
        self,
        user: User,
        bases: Sequence[KnowledgeBase],
        query: str,
        mode: str,
        latency: float,
        hit_count: int,
    ) -> None:
        self.search_log.add(
            user_id=user.id,
            kb_ids=",".join(b.id for b in bases),
            query=query,
            mode=mode,
            latency_ms=round(latency, 3),
            hit_count=hit_count,
            created_at=now(),
        )

    # --- analytics ------------------------------------------------------------------------

    def slowest(self, limit: int = 20) -> list[KnowledgeSearch]:
        """The slowest logged searches, slowest first."""
        self.search_log.flush()
        with self.service.db.read() as session:
            return list(
                session.scalars(
                    select(KnowledgeSearch).order_by(KnowledgeSearch.latency_ms.desc()).limit(limit)
                )
            )

    def zero_hits(self, limit: int = 20) -> list[KnowledgeSearch]:
        """The latest searches that found nothing, newest first."""
        self.search_log.flush()
        with self.service.db.read() as session:
            return list(
                session.scalars(
                    select(KnowledgeSearch)
                    .where(KnowledgeSearch.hit_count == 0)
                    .order_by(KnowledgeSearch.created_at.desc(), KnowledgeSearch.id.desc())
                    .limit(limit)
                )
            )
