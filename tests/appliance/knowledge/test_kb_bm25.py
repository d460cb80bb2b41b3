"""BM25 over FTS5 at scale: the base filter inside FTS5 and the bounded candidate set.

A search whose words match more rows than ``budget`` scores only the rows holding its rarest
words; those rows must get exactly the score a full search gives them, the base filter must
hold, and the rows a user would notice (the ones with the rare, specific words) must rank
first either way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from appliance.knowledge import KnowledgeRuntime, fts
from appliance.knowledge.models import KnowledgeChunk, KnowledgeDocument
from tests.appliance.knowledge.conftest import People

COMMON = "the pump report notes the valve and the pump pressure for the plant"


def fill(rt: KnowledgeRuntime, kb_id: str, texts: list[str]) -> list[int]:
    """Chunks straight into SQLCipher and FTS5 (no parsing, no embedding)."""
    doc_id = kb_id[:16] + "d" * 16
    with rt.db.write() as session:
        session.add(
            KnowledgeDocument(
                id=doc_id,
                kb_id=kb_id,
                name="synthetic",
                filename="synthetic.txt",
                blob_id="f" * 64,
                size=0,
                tags="[]",
                status="ready",
                chunk_count=len(texts),
            )
        )
        session.flush()  # the document before its chunks (foreign key)
        rows = [
            KnowledgeChunk(
                document_id=doc_id,
                kb_id=kb_id,
                ordinal=i,
                text=t,
                char_start=0,
                char_end=len(t),
                embedded=True,
            )
            for i, t in enumerate(texts)
        ]
        session.add_all(rows)
        session.flush()
        fts.insert(session, ((c.id, kb_id, c.text) for c in rows))
        return [c.id for c in rows]


@pytest.fixture
def bases(runtime: KnowledgeRuntime, people: People) -> Iterator[tuple[str, str, list[int]]]:
    big = runtime.service.create_base(people.alice, "big").id
    small = runtime.service.create_base(people.alice, "small").id
    texts = [f"{COMMON} entry {i}" for i in range(300)]
    texts[17] = f"{COMMON} cavitation damage on the impeller"
    texts[230] = f"{COMMON} impeller replaced"
    ids = fill(runtime, big, texts)
    fill(runtime, small, ["cavitation seen on the small pump", "nothing relevant here"])
    yield big, small, ids


def test_candidates_are_scored_exactly_and_rare_words_rank_first(
    runtime: KnowledgeRuntime, bases: tuple[str, str, list[int]]
) -> None:
    big, _, ids = bases
    query = "pump valve pressure impeller cavitation"
    with runtime.db.read() as session:
        exact = dict(fts.search(session, query, [big], 1000, budget=None))
        bounded = fts.search(session, query, [big], 10, budget=50)
    assert len(exact) == 300  # every chunk holds "pump": the unbounded search scores them all
    assert 0 < len(bounded) <= 10
    assert [c for c, _ in bounded[:2]] == [ids[17], ids[230]]
    for chunk_id, score in bounded:
        assert score == pytest.approx(exact[chunk_id], rel=1e-9)
    assert [c for c, _ in bounded[:2]] == sorted(exact, key=lambda c: -exact[c])[:2]


def test_the_base_filter_holds_on_both_paths(
    runtime: KnowledgeRuntime, bases: tuple[str, str, list[int]]
) -> None:
    big, small, ids = bases
    with runtime.db.read() as session:
        in_small = {c for c, _ in fts.search(session, "cavitation pump", [small], 100, budget=5)}
        in_big = {c for c, _ in fts.search(session, "cavitation pump", [big], 100, budget=5)}
        both = {c for c, _ in fts.search(session, "cavitation", [big, small], 100)}
    assert in_small and not in_small & set(ids)
    assert in_big and in_big <= set(ids)
    assert ids[17] in both and len(both) == 2


def test_a_small_base_beside_a_big_one_is_searched_exactly(
    runtime: KnowledgeRuntime, bases: tuple[str, str, list[int]]
) -> None:
    _, small, _ = bases
    with runtime.db.read() as session:
        exact = fts.search(session, "nothing relevant pump", [small], 10, budget=None)
        bounded = fts.search(session, "nothing relevant pump", [small], 10, budget=5)
    assert len(exact) == 2 and bounded == exact


def test_kb_tokens_cannot_be_confused_or_injected() -> None:
    assert fts.kb_token("0123456789abcdef0123456789abcdef") == (
        "kb0123456789abcdef0123456789abcdef0"
    )
    with pytest.raises(ValueError):
        fts.kb_token('x" OR "y')
