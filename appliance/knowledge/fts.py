"""The FTS5 index over chunk text (BM25), in the SQLCipher database.

User text is never FTS5 syntax: a query is split into words and each word becomes a quoted
string (``"word"``, inner quotes doubled), OR-ed together, so ``NEAR``, ``*``, ``:``, ``^`` or
an unbalanced quote in a query is just text. The table's rowid is the chunk id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

TABLE = "knowledge_chunk_fts"
_SHADOW = ("_data", "_idx", "_content", "_docsize", "_config")
_WORD = re.compile(r"\w+", re.UNICODE)
# Very common English words: matching them costs time and adds nothing to BM25's ranking.
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
    ]
)
MAX_TERMS = 64
# Literal SQL (the table name is fixed); values are always bound parameters.
_INSERT = text("INSERT INTO knowledge_chunk_fts (rowid, body, kb_id) VALUES (:id, :body, :kb)")
_DELETE = text("DELETE FROM knowledge_chunk_fts WHERE rowid IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_SEARCH = text(
    "SELECT rowid, bm25(knowledge_chunk_fts) AS rank FROM knowledge_chunk_fts "
    "WHERE knowledge_chunk_fts MATCH :q AND kb_id IN :kbs ORDER BY rank LIMIT :n"
).bindparams(bindparam("kbs", expanding=True))
_ROWIDS = text("SELECT rowid FROM knowledge_chunk_fts")


def is_fts_table(name: str | None) -> bool:
    """Whether ``name`` is the FTS5 table or one of its shadow tables (not in the models)."""
    return name is not None and (name == TABLE or name in {TABLE + s for s in _SHADOW})


def match_expression(query: str) -> str | None:
    """The FTS5 MATCH string for a user's query, or None when it has no searchable word."""
    words = [w for w in _WORD.findall(query.lower())]
    kept = [w for w in words if w not in _STOP] or words
    unique = list(dict.fromkeys(kept))[:MAX_TERMS]
    if not unique:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in unique)


def index_text(body: str, section: str | None) -> str:
    """What is indexed for a chunk: its section path (headings) and its text."""
    return f"{section}\n{body}" if section else body


def insert(session: Session, rows: Iterable[tuple[int, str, str]]) -> None:
    """Index ``(chunk_id, kb_id, text)`` rows."""
    params = [{"id": cid, "kb": kb, "body": body} for cid, kb, body in rows]
    if params:
        session.execute(_INSERT, params)


def delete(session: Session, chunk_ids: Sequence[int]) -> None:
    """Remove the rows of these chunks."""
    for start in range(0, len(chunk_ids), 500):
        part = list(chunk_ids[start : start + 500])
        session.execute(
            _DELETE,
            {"ids": part},
        )


def search(
    session: Session, query: str, kb_ids: Sequence[str], limit: int
) -> list[tuple[int, float]]:
    """``(chunk_id, score)`` best first; the score is ``-bm25()`` so higher is better."""
    expression = match_expression(query)
    if expression is None or not kb_ids:
        return []
    rows = session.execute(_SEARCH, {"q": expression, "kbs": list(kb_ids), "n": limit})
    return [(int(r[0]), -float(r[1])) for r in rows]


def rowids(session: Session) -> set[int]:
    """Every indexed chunk id (for the orphan check)."""
    return {int(r[0]) for r in session.execute(_ROWIDS)}
