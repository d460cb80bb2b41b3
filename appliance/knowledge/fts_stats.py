"""Statistics of the FTS5 index that a BM25 search plans with, cached per index version.

A search needs, before it asks FTS5 for scores, how many rows hold each of its words (to pick
its rarest words as candidates) and how many rows each base has in the index (to restrict to
the searched bases at the lowest cost). Counting them costs a pass over each word's or base's
postings (about 50 ns a row: milliseconds for a common word at 100k chunks), so they are kept
in memory and reused while the index is unchanged.

Invalidation is exact: FTS5 rewrites its *structure record* (``_data`` row 10, which lists the
segments and a write counter) on every committed change to the index, inserts and deletes
alike, and its *averages record* (row 1) holds the row and token totals. Both are read, in the
search's own read transaction, before the cache is used; any difference empties it. The
statistics only choose the query plan and the candidates: BM25 scores always come from FTS5.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

TABLE = "knowledge_chunk_fts"
_KB_TOKEN = re.compile(r"kb[a-z0-9]+0")  # fts.kb_token()
# Literal SQL; values are bound parameters.
_VERSION = text("SELECT id, block FROM knowledge_chunk_fts_data WHERE id IN (1, 10) ORDER BY id")
_COUNT = text(
    "SELECT count(*) FROM (SELECT 1 FROM knowledge_chunk_fts "
    "WHERE knowledge_chunk_fts MATCH :q LIMIT :cap)"
)
# fts5vocab over the index, one row per (term, column): the kb column's terms are the base
# tokens, ``doc`` the rows holding each. The term range keeps the walk off the body's words.
# A temp table: per connection, nothing written to the database.
_CREATE_VOCAB = text(
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.knowledge_chunk_fts_kb_vocab "
    "USING fts5vocab(main, knowledge_chunk_fts, col)"
)
_BASES = text(
    "SELECT term, doc FROM temp.knowledge_chunk_fts_kb_vocab "
    "WHERE term >= 'kb' AND term < 'kc' AND col = 'kb'"
)
MAX_WORDS = 100_000


class IndexStats:
    """Word and base row counts of one database's FTS5 index (thread-safe; one per searcher)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple[bytes, ...] | None = None
        # word -> (rows holding it, exact?); not exact: "at least that many".
        self._counts: dict[str, tuple[int, bool]] = {}
        self._bases: dict[str, int] | None = None

    def _current(self, session: Session) -> tuple[bytes, ...]:
        version = tuple(bytes(block) for _id, block in session.execute(_VERSION))
        with self._lock:
            if version != self._version:
                self._version = version
                self._counts = {}
                self._bases = None
        return version

    def counts(self, session: Session, words: Sequence[str], cap: int | None) -> dict[str, int]:
        """Rows holding each word (any base). With ``cap``, counting stops there: a word at
        ``cap`` holds at least that many rows. ``cap=None`` counts exactly."""
        version = self._current(session)
        found: dict[str, int] = {}
        with self._lock:
            for w in words:
                n, exact = self._counts.get(w, (0, False))
                if exact:
                    found[w] = n if cap is None else min(n, cap)
                elif cap is not None and n >= cap:
                    found[w] = cap
        for w in words:
            if w in found:
                continue
            q = 'body : "' + w.replace('"', '""') + '"'
            n = int(
                session.execute(_COUNT, {"q": q, "cap": -1 if cap is None else cap}).scalar_one()
            )
            found[w] = n
            with self._lock:
                if self._version == version and len(self._counts) < MAX_WORDS:
                    self._counts[w] = (n, cap is None or n < cap)
        return found

    def base_rows(self, session: Session) -> dict[str, int]:
        """Rows in the index per base token, for every base token the index holds."""
        version = self._current(session)
        with self._lock:
            if self._bases is not None:
                return self._bases
        session.execute(_CREATE_VOCAB)
        bases = {
            str(term): int(doc)
            for term, doc in session.execute(_BASES)
            if _KB_TOKEN.fullmatch(str(term))
        }
        with self._lock:
            if self._version == version:
                self._bases = bases
        return bases
