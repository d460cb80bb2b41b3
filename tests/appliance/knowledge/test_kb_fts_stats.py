"""The BM25 planner's cached index statistics and its query forms, against real SQLCipher FTS5.

The statistics (word and base row counts) are reused while the index is unchanged and must be
dropped by any insert or delete; whichever form a search takes (no base filter, ANDing the
searched bases, NOTing the others; one FTS5 query or the two of the candidate path), the rows
and scores must be those of the plain, unbounded search."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from appliance.identity.models import User
from appliance.knowledge import KnowledgeRuntime, fts
from appliance.knowledge.fts_stats import IndexStats
from appliance.knowledge.models import KnowledgeChunk
from tests.appliance.knowledge.conftest import People
from tests.appliance.knowledge.test_kb_bm25 import COMMON, fill


def exact(rt: KnowledgeRuntime, query: str, kb_ids: list[str]) -> dict[int, float]:
    with rt.db.read() as session:
        return dict(fts.search(session, query, kb_ids, 1000, budget=None))


def test_counts_are_reused_until_the_index_changes(
    runtime: KnowledgeRuntime, people: People
) -> None:
    kb = runtime.service.create_base(people.alice, "stats").id
    ids = fill(runtime, kb, ["turbine blade wear", "turbine housing", "pump seal"])
    stats = IndexStats()
    with runtime.db.read() as session:
        assert stats.counts(session, ["turbine", "seal", "absent"], None) == {
            "turbine": 2,
            "seal": 1,
            "absent": 0,
        }
        assert stats.base_rows(session) == {fts.kb_token(kb): 3}
        # A cap: counting stops there ("at least that many").
        assert stats.counts(session, ["turbine"], 1) == {"turbine": 1}
    fill(runtime, runtime.service.create_base(people.alice, "more").id, ["turbine seal"])
    with runtime.db.read() as session:
        assert stats.counts(session, ["turbine", "seal"], None) == {"turbine": 3, "seal": 2}
        assert sorted(stats.base_rows(session).values()) == [1, 3]
    with runtime.db.write() as session:
        fts.delete(session, [ids[0]])
    with runtime.db.read() as session:
        assert stats.counts(session, ["turbine"], None) == {"turbine": 2}
        assert stats.base_rows(session)[fts.kb_token(kb)] == 2


def test_every_plan_form_gives_the_plain_search(runtime: KnowledgeRuntime, people: People) -> None:
    big = runtime.service.create_base(people.alice, "big").id
    small = runtime.service.create_base(people.alice, "small").id
    texts = [f"{COMMON} entry {i}" for i in range(200)]
    texts[5] = f"{COMMON} impeller cavitation"
    texts[9] = "impeller cavitation alone, none of the common words"  # a candidate without them
    texts[40] = f"{COMMON} impeller"
    big_ids = fill(runtime, big, texts)
    small_ids = fill(runtime, small, ["impeller cavitation pump", "the valve", "impeller"])
    query = "pump valve pressure impeller cavitation"
    stats = IndexStats()
    for kb_ids, own in (
        ([big], big_ids),
        ([small], small_ids),
        ([big, small], big_ids + small_ids),
    ):
        full = exact(runtime, query, kb_ids)
        assert set(full) <= set(own)
        with runtime.db.read() as session:
            bounded = fts.search(session, query, kb_ids, 10, budget=20, stats=stats)
        assert bounded and {c for c, _ in bounded} <= set(own)
        for chunk_id, score in bounded:
            assert score == pytest.approx(full[chunk_id], rel=1e-9)
        best = sorted(full, key=lambda c: -full[c])
        # The rows with the rare words, the one lacking every common word included, rank as in
        # the plain search.
        assert [c for c, _ in bounded[:3]] == best[:3]
    assert big_ids[9] in {c for c, _ in fts_search(runtime, query, [big], stats)}


def fts_search(
    rt: KnowledgeRuntime, query: str, kb_ids: list[str], stats: IndexStats
) -> list[tuple[int, float]]:
    with rt.db.read() as session:
        return fts.search(session, query, kb_ids, 10, budget=20, stats=stats)


def test_a_stray_index_row_never_yields_another_bases_passage(
    runtime: KnowledgeRuntime, people: People
) -> None:
    alice: User = people.alice
    mine = runtime.service.create_base(alice, "mine").id
    theirs = runtime.service.create_base(people.admin, "theirs").id
    fill(runtime, mine, ["the gearbox manual"])
    (secret,) = fill(runtime, theirs, ["confidential gearbox tolerances"])
    with runtime.db.write() as session:
        # An index row claiming "mine" for a chunk of "theirs" (as a corrupt index could).
        fts.delete(session, [secret])
        fts.insert(session, [(secret, mine, "confidential gearbox tolerances")])
    hits = runtime.searcher.search(alice, "confidential gearbox", kb_ids=[mine], mode="bm25").hits
    with runtime.db.read() as session:
        mine_chunks = set(
            session.scalars(select(KnowledgeChunk.id).where(KnowledgeChunk.kb_id == mine))
        )
    assert hits and {int(h.chunk_id) for h in hits} <= mine_chunks
