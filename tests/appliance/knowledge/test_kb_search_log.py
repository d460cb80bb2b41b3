"""The search log is written in batches off the search's path: by its timer, when analytics
read it, at close — and a row whose user is gone is still kept (without the user)."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from appliance import Appliance
from appliance.knowledge import KnowledgeRuntime, close_runtime, knowledge_runtime
from appliance.knowledge.models import KnowledgeSearch
from appliance.knowledge.search_log import SearchLog
from appliance.knowledge.service import now
from tests.appliance.knowledge.conftest import People
from tests.conftest import PASSPHRASE


def logged(rt: KnowledgeRuntime) -> list[KnowledgeSearch]:
    with rt.db.read() as session:
        return list(session.scalars(select(KnowledgeSearch).order_by(KnowledgeSearch.id)))


def row(user_id: int | None, query: str, hits: int = 1) -> dict[str, object]:
    return {
        "user_id": user_id,
        "kb_ids": "k",
        "query": query,
        "mode": "bm25",
        "latency_ms": 1.5,
        "hit_count": hits,
        "created_at": now(),
    }


def test_a_search_is_queued_then_written_by_the_timer(
    runtime: KnowledgeRuntime, people: People
) -> None:
    runtime.searcher.search_log.delay_s = 0.2
    kb = runtime.service.create_base(people.alice, "log")
    runtime.searcher.search(people.alice, "anything at all", kb_ids=[kb.id], mode="bm25")
    deadline = time.monotonic() + 10
    while not logged(runtime) and time.monotonic() < deadline:
        time.sleep(0.05)
    (entry,) = logged(runtime)
    assert (entry.user_id, entry.query, entry.mode, entry.hit_count) == (
        people.alice.id,
        "anything at all",
        "bm25",
        0,
    )


def test_analytics_and_close_see_every_search(runtime: KnowledgeRuntime, people: People) -> None:
    runtime.searcher.search_log.delay_s = 3600  # only an explicit flush writes
    kb = runtime.service.create_base(people.alice, "log")
    runtime.searcher.search(people.alice, "first query", kb_ids=[kb.id], mode="bm25")
    assert logged(runtime) == []
    assert [r.query for r in runtime.searcher.zero_hits()] == ["first query"]
    runtime.searcher.search(people.alice, "second query", kb_ids=[kb.id], mode="bm25")
    runtime.searcher.close()
    assert [r.query for r in logged(runtime)] == ["first query", "second query"]


def test_a_row_whose_user_is_gone_is_kept_without_the_user(
    runtime: KnowledgeRuntime, people: People
) -> None:
    log = SearchLog(runtime.db, delay_s=3600)
    log.add(**row(people.alice.id, "kept"))
    log.add(**row(987_654, "user deleted meanwhile"))
    log.flush()
    rows = {r.query: r.user_id for r in logged(runtime)}
    assert rows == {"kept": people.alice.id, "user deleted meanwhile": None}
    log.flush()  # nothing queued: no write
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(KnowledgeSearch)) == 2


def test_nothing_is_written_once_sealed(runtime: KnowledgeRuntime) -> None:
    alive = [True]
    log = SearchLog(runtime.db, delay_s=3600, alive=lambda: alive[0])
    log.add(**row(None, "before the seal"))
    alive[0] = False
    log.flush()
    assert logged(runtime) == []


def test_sealing_writes_the_queued_searches_first(appliance: Appliance, people: People) -> None:
    rt = knowledge_runtime(appliance)
    rt.searcher.search_log.delay_s = 3600  # only the seal can write it
    kb = rt.service.create_base(people.alice, "log")
    rt.searcher.search(people.alice, "just before the seal", kb_ids=[kb.id], mode="bm25")
    appliance.seal()
    appliance.unseal(PASSPHRASE)
    with appliance.db.read() as session:
        queries = session.scalars(select(KnowledgeSearch.query)).all()
    assert queries == ["just before the seal"]
    close_runtime(appliance)
