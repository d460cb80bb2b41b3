"""The FTS5 index over chunk text (BM25), in the SQLCipher database.

User text is never FTS5 syntax: a query is split into words and each word becomes a quoted
string (``"word"``, inner quotes doubled), OR-ed together, so ``NEAR``, ``*``, ``:``, ``^`` or
an unbalanced quote in a query is just text. The table's rowid is the chunk id; its ``kb``
column holds one token naming the chunk's base (:func:`kb_token`), so a search narrows to its
bases inside FTS5 instead of reading every matching row.
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
# Past this many postings (rows matching the query's words, summed per word) a search scores
# a bounded candidate set instead of every match: see search().
CANDIDATE_BUDGET = 3000
_TOKEN = re.compile(r"[a-z0-9]+")
# Literal SQL (the table name is fixed); values are always bound parameters.
_INSERT = text("INSERT INTO knowledge_chunk_fts (rowid, body, kb) VALUES (:id, :body, :kb)")
_DELETE = text("DELETE FROM knowledge_chunk_fts WHERE rowid IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
# bm25() weights: body 1, kb 0 (the base token narrows the match and never scores).
_RANKED = text(
    "SELECT rowid, bm25(knowledge_chunk_fts, 1.0, 0.0) AS score FROM knowledge_chunk_fts "
    "WHERE knowledge_chunk_fts MATCH :q ORDER BY score LIMIT :n"
)
# Counts stop at :cap: past the budget only "more" matters (a full count of a word in most of
# 100k rows costs milliseconds each).
_COUNT = text(
    "SELECT count(*) FROM (SELECT 1 FROM knowledge_chunk_fts "
    "WHERE knowledge_chunk_fts MATCH :q LIMIT :cap)"
)
_BASE_ROWS = text(
    "SELECT count(*) FROM (SELECT 1 FROM knowledge_chunk WHERE kb_id IN :kbs LIMIT :cap)"
).bindparams(bindparam("kbs", expanding=True))
_ROWIDS = text("SELECT rowid FROM knowledge_chunk_fts")


def is_fts_table(name: str | None) -> bool:
    """Whether ``name`` is the FTS5 table or one of its shadow tables (not in the models)."""
    return name is not None and (name == TABLE or name in {TABLE + s for s in _SHADOW})


def kb_token(kb_id: str) -> str:
    """The one token a chunk's ``kb`` column holds: ``kb<id>0``. Base ids are hex; the final
    digit keeps the Porter stemmer from trimming the token (migration 0011 writes the same)."""
    token = kb_id.lower()
    if not _TOKEN.fullmatch(token):
        raise ValueError("a knowledge base id is alphanumeric")
    return f"kb{token}0"


def _quoted(words: Sequence[str]) -> str:
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def query_words(query: str) -> list[str]:
    """The query's distinct words, stop words dropped (unless nothing else is left)."""
    words = [w for w in _WORD.findall(query.lower())]
    kept = [w for w in words if w not in _STOP] or words
    return list(dict.fromkeys(kept))[:MAX_TERMS]


def match_expression(query: str) -> str | None:
    """The FTS5 MATCH string for a user's query, or None when it has no searchable word."""
    words = query_words(query)
    return _quoted(words) if words else None


def index_text(body: str, section: str | None) -> str:
    """What is indexed for a chunk: its section path (headings) and its text."""
    return f"{section}\n{body}" if section else body


def insert(session: Session, rows: Iterable[tuple[int, str, str]]) -> None:
    """Index ``(chunk_id, kb_id, text)`` rows."""
    params = [{"id": cid, "kb": kb_token(kb), "body": body} for cid, kb, body in rows]
    if params:
        session.execute(_INSERT, params)


def delete(session: Session, chunk_ids: Sequence[int]) -> None:
    """Remove the rows of these chunks."""
    for start in range(0, len(chunk_ids), 500):
        part = list(chunk_ids[start : start + 500])
        session.execute(_DELETE, {"ids": part})


def search(
    session: Session,
    query: str,
    kb_ids: Sequence[str],
    limit: int,
    budget: int | None = CANDIDATE_BUDGET,
) -> list[tuple[int, float]]:
    """``(chunk_id, score)`` best first; the score is ``-bm25()`` so higher is better.

    FTS5 computes ``bm25()`` for every row it returns, and a word such as "cell" can match
    most of a large base, so scoring every match does not scale. When the query's words
    match few rows in all (``CANDIDATE_BUDGET`` postings) or the bases are that small, every
    match is scored. Otherwise the candidates are the rows holding the query's rarest words
    (the fewest postings up to the budget, at least one word): common words alone, whose IDF
    is low, rarely lift a passage into the top ranks. Candidates are scored on *all* the
    words, exactly: the expression ``kb AND rare AND (other OR kb)`` matches only candidates,
    has each word once, and the ``kb`` column weighs 0 — so a candidate's score equals its
    score for the plain query. Cost: the bounded candidates plus one count per word (which
    stops past the budget).
    ``budget=None`` scores every match (the benchmark's baseline).
    """
    words = query_words(query)
    if not words or not kb_ids:
        return []
    scope = "kb : (" + _quoted([kb_token(k) for k in dict.fromkeys(kb_ids)]) + ")"
    cap = None if budget is None else budget + 1
    counts = _counts(session, words, cap)
    words = [w for w in words if counts[w] > 0]
    if not words:
        return []
    expression = f"{scope} AND body : ({_quoted(words)})"
    if budget is not None and sum(counts[w] for w in words) > budget and len(words) > 1:
        base_rows = int(session.execute(_BASE_ROWS, {"kbs": list(kb_ids), "cap": cap}).scalar_one())
        if base_rows > budget:
            if min(counts[w] for w in words) > budget:  # every word is common: rank them
                counts = _counts(session, words, None)
            rare: list[str] = []
            postings = 0
            for word in sorted(words, key=lambda w: counts[w]):
                if rare and postings + counts[word] > budget:
                    break
                rare.append(word)
                postings += counts[word]
            other = [w for w in words if w not in rare]
            expression = f"{scope} AND body : ({_quoted(rare)})"
            if other:
                expression += f" AND (body : ({_quoted(other)}) OR {scope})"
    rows = session.execute(_RANKED, {"q": expression, "n": limit})
    return [(int(r[0]), -float(r[1])) for r in rows]


def _counts(session: Session, words: Sequence[str], cap: int | None) -> dict[str, int]:
    """Rows holding each word (in any base), counted up to ``cap``."""
    return {
        w: int(
            session.execute(
                _COUNT, {"q": f"body : {_quoted([w])}", "cap": -1 if cap is None else cap}
            ).scalar_one()
        )
        for w in words
    }


def rowids(session: Session) -> set[int]:
    """Every indexed chunk id (for the orphan check)."""
    return {int(r[0]) for r in session.execute(_ROWIDS)}
