"""The FTS5 index over chunk text (BM25), in the SQLCipher database.

User text is never FTS5 syntax: a query is split into words and each word becomes a quoted
string (``"word"``, inner quotes doubled), OR-ed together, so ``NEAR``, ``*``, ``:``, ``^`` or
an unbalanced quote in a query is just text. The table's rowid is the chunk id; its ``kb``
column holds one token naming the chunk's base (:func:`kb_token`), so a search narrows to its
bases inside FTS5 instead of reading every matching row.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from appliance.knowledge.fts_stats import TABLE, IndexStats

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
# Every row's score (the caller takes the best): through the driver's cursor, since thousands
# of rows through SQLAlchemy's result objects cost more than FTS5's scoring.
_SCORED = (
    "SELECT rowid, bm25(knowledge_chunk_fts, 1.0, 0.0) FROM knowledge_chunk_fts "
    "WHERE knowledge_chunk_fts MATCH ?"
)
_RANKED = text(
    "SELECT rowid, bm25(knowledge_chunk_fts, 1.0, 0.0) AS score FROM knowledge_chunk_fts "
    "WHERE knowledge_chunk_fts MATCH :q ORDER BY score LIMIT :n"
)
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
    stats: IndexStats | None = None,
) -> list[tuple[int, float]]:
    """``(chunk_id, score)`` best first; the score is ``-bm25()`` so higher is better.

    FTS5 computes ``bm25()`` for every row it returns, and a word such as "cell" can match
    most of a large base, so scoring every match does not scale. When the query's words
    match few rows in all (``CANDIDATE_BUDGET`` postings) or the bases are that small, every
    match is scored. Otherwise the candidates are the rows holding the query's rarest words
    (the fewest postings up to the budget, at least one word): common words alone, whose IDF
    is low, rarely lift a passage into the top ranks. Candidates are scored on *all* the
    words, exactly, in two FTS5 queries: ``rare AND other`` scores the candidates holding
    another word on every word, and ``rare`` scores every candidate on the rare words, which
    is the whole score of one holding no other word (a word absent from a row adds nothing to
    its ``bm25()``). So a candidate's score equals its score for the plain query.

    ``bm25()`` reads every row of each word in its query once, to count them (~50 ns a row),
    so each query holds only the words it needs. The bases are narrowed inside FTS5 by the
    cheaper of two equivalent forms: ANDing the searched bases' tokens or NOTing every other
    base's token (the ``kb`` column weighs 0); when the index holds no other base, neither is
    needed. Word and base row counts come from ``stats`` (cached per index version, see
    ``fts_stats``; a fresh one when None). ``budget=None`` scores every match (the
    benchmark's baseline).
    """
    words = query_words(query)
    if not words or not kb_ids:
        return []
    stats = stats or IndexStats()
    cap = None if budget is None else budget + 1
    counts = stats.counts(session, words, cap)
    words = [w for w in words if counts[w] > 0]
    if not words:
        return []
    wanted = {kb_token(k) for k in kb_ids}
    present = stats.base_rows(session)
    inside = sum(present.get(t, 0) for t in wanted)
    outside = {t: n for t, n in present.items() if t not in wanted}
    if inside == 0:
        return []
    scope = "kb : (" + _quoted(sorted(wanted)) + ")"
    rare, other = words, []
    if (
        budget is not None
        and len(words) > 1
        and inside > budget
        and sum(counts[w] for w in words) > budget
    ):
        if min(counts[w] for w in words) > budget:  # every word is common: rank them
            counts = stats.counts(session, words, None)
        rare = []
        postings = 0
        for word in sorted(words, key=lambda w: counts[w]):
            if rare and postings + counts[word] > budget:
                break
            rare.append(word)
            postings += counts[word]
        other = [w for w in words if w not in rare]
    # The bases narrowed inside FTS5: the cheaper of ANDing theirs or NOTing the others.
    if not outside:
        head, tail = "", ""
    elif sum(outside.values()) < inside:
        head, tail = "(", f") NOT kb : ({_quoted(sorted(outside))})"
    else:
        head, tail = f"{scope} AND (", ")"
    body = f"body : ({_quoted(rare)})"
    if not other:
        rows = session.execute(_RANKED, {"q": f"{head}{body}{tail}", "n": limit})
        return [(int(r[0]), -float(r[1])) for r in rows]
    # The candidates holding another word too, scored on every word; then every candidate
    # scored on its rare words, which is its whole score when it holds no other word.
    both = f"{body} AND body : ({_quoted(other)})"
    scores = _all_scores(session, f"{head}{both}{tail}")
    for chunk_id, score in _all_scores(session, f"{head}{body}{tail}").items():
        scores.setdefault(chunk_id, score)
    best = heapq.nsmallest(limit, scores.items(), key=lambda item: (item[1], item[0]))
    return [(chunk_id, -score) for chunk_id, score in best]


def _all_scores(session: Session, expression: str) -> dict[int, float]:
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(_SCORED, (expression,))
        return {int(r[0]): float(r[1]) for r in cursor.fetchall()}
    finally:
        cursor.close()


def rowids(session: Session) -> set[int]:
    """Every indexed chunk id (for the orphan check)."""
    return {int(r[0]) for r in session.execute(_ROWIDS)}
