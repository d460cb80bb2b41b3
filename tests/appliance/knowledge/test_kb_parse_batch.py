"""The batched parse stage: many small uploads parsed and committed in one transaction, each
still checked on its own (a bad file fails alone), deletions and cancellations during a batch,
a failed commit redone document by document, large files streamed, a stop mid-batch."""

from __future__ import annotations

from typing import Any, BinaryIO

import pytest
from sqlalchemy import event, select

from appliance import Appliance
from appliance.errors import StorageError
from appliance.knowledge import KnowledgeRuntime, parse_batch
from appliance.knowledge.models import KnowledgeChunk, KnowledgeDocument, KnowledgeJob
from appliance.knowledge.runtime import build_runtime
from engine.knowledge import ScanVerdict
from tests.appliance.knowledge.conftest import People
from tests.appliance.knowledge.test_kb_lifecycle import long_text

GOOD = {
    "boilers.md": b"# Boilers\n\nThe boiler room is inspected every Tuesday by the plumber.\n",
    "fleet.txt": b"The fleet of forklifts is charged overnight in bay four.\n",
    "rota.csv": b"name,shift\nAmira,morning\nJonas,evening\n",
}


def job_of(rt: KnowledgeRuntime, job_id: str) -> KnowledgeJob:
    with rt.db.read() as session:
        job = session.get(KnowledgeJob, job_id)
    assert job is not None
    return job


def doc_of(rt: KnowledgeRuntime, doc_id: str) -> KnowledgeDocument | None:
    with rt.db.read() as session:
        return session.get(KnowledgeDocument, doc_id)


def count_commits(rt: KnowledgeRuntime) -> list[int]:
    commits = [0]

    @event.listens_for(rt.db.writer, "commit")
    def _count(_conn: Any) -> None:
        commits[0] += 1

    return commits


def test_small_uploads_are_parsed_in_one_transaction_and_a_bad_one_fails_alone(
    appliance: Appliance, people: People
) -> None:
    rules = appliance.home.root / "yara"
    rules.mkdir()
    (rules / "t.yar").write_text(
        'rule EnclaveBatchMarker { strings: $a = "X5O-BATCH-MARKER" condition: $a }'
    )
    rt = build_runtime(appliance, start_worker=False)
    service = rt.service
    kb = service.create_base(people.alice, "batch")
    good = {
        name: service.add_document(people.alice, kb.id, name, [body]) for name, body in GOOD.items()
    }
    _, broken_utf8 = service.add_document(
        people.alice, kb.id, "bad.txt", [b"caf\xc3\x28 the caf\xc3\xa9 menu"]
    )
    _, truncated = service.add_document(people.alice, kb.id, "cut.pdf", [b"%PDF-1.7\n1 0 obj <<"])
    evil_doc, evil = service.add_document(
        people.alice, kb.id, "evil.txt", [b"hello X5O-BATCH-MARKER bye"]
    )
    assert evil.state == "queued"
    commits = count_commits(rt)

    assert rt.worker.run_once()  # one step parses all six

    assert commits[0] == 1
    for name, (doc, job) in good.items():
        stored = doc_of(rt, doc.id)
        assert stored is not None and stored.status == "indexed", name
        assert stored.chunk_count >= 1 and stored.kind is not None
        row = job_of(rt, job.id)
        assert (row.state, row.stage, row.done, row.total) == (
            "running",
            "embedding",
            0,
            stored.chunk_count,
        )
    assert job_of(rt, broken_utf8.id).error_code == "text_decode_failed"
    assert job_of(rt, broken_utf8.id).stage == "parsing"  # checks passed, the decoder refused
    assert job_of(rt, truncated.id).state == "failed"
    assert job_of(rt, truncated.id).error_code is not None
    assert (job_of(rt, evil.id).stage, job_of(rt, evil.id).error_code) == (
        "checking",
        "malware_detected",
    )
    flagged = doc_of(rt, evil_doc.id)
    assert flagged is not None and flagged.status == "quarantined"
    assert "EnclaveBatchMarker" in (flagged.error_message or "")
    # Keyword-searchable now, before any embedding.
    for query, name in (("boiler plumber", "boilers.md"), ("forklifts bay", "fleet.txt")):
        hits = rt.searcher.search(people.alice, query, mode="bm25").hits
        assert hits and hits[0].filename == name

    rt.worker.run_until_idle()
    for doc, job in good.values():
        assert job_of(rt, job.id).state == "done"
        stored = doc_of(rt, doc.id)
        assert stored is not None and stored.status == "ready"
    assert service.find_orphans().clean
    rt.close()


class _Saboteur:
    """A scanner that, when it sees ``trigger``, runs ``action`` (what another request could do
    while the worker is busy with the batch)."""

    name = "saboteur"

    def __init__(self, trigger: bytes, action: Any) -> None:
        self.trigger = trigger
        self.action = action

    def scan(self, file: BinaryIO) -> ScanVerdict:
        if self.trigger in file.read():
            self.action()
        file.seek(0)
        return ScanVerdict(self.name)


def test_documents_deleted_or_cancelled_during_a_batch_are_not_written(
    runtime: KnowledgeRuntime, people: People
) -> None:
    service = runtime.service
    kb = service.create_base(people.alice, "moving")
    a, _ = service.add_document(people.alice, kb.id, "a.txt", [b"alpha reactor coolant"])
    b, b_job = service.add_document(people.alice, kb.id, "b.txt", [b"bravo pump seals"])
    c, _ = service.add_document(people.alice, kb.id, "c.txt", [b"charlie valve torque"])
    d, d_job = service.add_document(people.alice, kb.id, "d.txt", [b"delta LAST in batch"])

    def meanwhile() -> None:  # a and b are already parsed when d is scanned
        service.delete_document(people.alice, kb.id, a.id)
        service.cancel_job(people.alice, b_job.id)

    runtime.worker.scanners = [_Saboteur(b"LAST", meanwhile)]
    assert runtime.worker.run_once()

    assert doc_of(runtime, a.id) is None and doc_of(runtime, b.id) is None
    assert job_of(runtime, b_job.id).state == "cancelled"
    for doc in (c, d):
        stored = doc_of(runtime, doc.id)
        assert stored is not None and stored.status == "indexed"
    assert job_of(runtime, d_job.id).stage == "embedding"
    assert not runtime.searcher.search(people.alice, "alpha reactor", mode="bm25").hits
    assert not runtime.searcher.search(people.alice, "bravo pump", mode="bm25").hits
    runtime.worker.run_until_idle()
    assert service.find_orphans().clean


def test_a_failed_batch_commit_is_redone_one_document_at_a_time(
    runtime: KnowledgeRuntime, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = runtime.service
    kb = service.create_base(people.alice, "retry")
    uploads = [
        service.add_document(people.alice, kb.id, name, [body]) for name, body in GOOD.items()
    ]
    _, bad = service.add_document(
        people.alice, kb.id, "bad.txt", [b"caf\xc3\x28 the caf\xc3\xa9 menu"]
    )
    attempts = []

    def failing_commit(*args: Any) -> Any:  # e.g. the disk filled up under the batch
        attempts.append(args)
        raise StorageError("Database write failed: simulated.")

    monkeypatch.setattr(parse_batch, "_commit", failing_commit)
    assert runtime.worker.run_once()

    assert len(attempts) == 1
    for doc, job in uploads:
        stored = doc_of(runtime, doc.id)
        assert stored is not None and stored.status == "indexed"
        assert job_of(runtime, job.id).stage == "embedding"
    assert job_of(runtime, bad.id).error_code == "text_decode_failed"
    runtime.worker.run_until_idle()
    assert service.find_orphans().clean


def test_a_large_document_between_small_ones_is_streamed(
    runtime: KnowledgeRuntime, people: People
) -> None:
    runtime.worker.parse_batch = 3
    service = runtime.service
    kb = service.create_base(people.alice, "mixed")
    first, _ = service.add_document(people.alice, kb.id, "first.txt", [b"first small note"])
    big, big_job = service.add_document(people.alice, kb.id, "log.txt", [long_text(60)])
    last, _ = service.add_document(people.alice, kb.id, "last.txt", [b"last small note"])

    runtime.worker.run_once()  # the batch stops before the large document
    assert (doc_of(runtime, first.id) or KnowledgeDocument()).status == "indexed"
    assert job_of(runtime, big_job.id).state == "queued"
    runtime.worker.run_once()  # the large one alone, in committed batches of 3 chunks
    stored = doc_of(runtime, big.id)
    assert stored is not None and stored.status == "indexed" and stored.chunk_count > 3
    assert (doc_of(runtime, last.id) or KnowledgeDocument()).status == "queued"
    runtime.worker.run_until_idle()
    with runtime.db.read() as session:
        ordinals = list(
            session.scalars(
                select(KnowledgeChunk.ordinal)
                .where(KnowledgeChunk.document_id == big.id)
                .order_by(KnowledgeChunk.ordinal)
            )
        )
    assert ordinals == list(range(stored.chunk_count))
    assert (doc_of(runtime, last.id) or KnowledgeDocument()).status == "ready"
    assert service.find_orphans().clean


def test_a_stop_during_a_batch_leaves_the_rest_queued_for_the_next_start(
    appliance: Appliance, people: People
) -> None:
    first = build_runtime(appliance, start_worker=False)
    kb = first.service.create_base(people.alice, "stop")
    uploads = [
        first.service.add_document(people.alice, kb.id, name, [body]) for name, body in GOOD.items()
    ]
    first.worker.stop()
    assert not first.worker.run_once()  # commits what it parsed, then stops
    states = [job_of(first, job.id).state for _, job in uploads]
    assert states[0] == "running" and set(states[1:]) == {"queued"}

    second = build_runtime(appliance, start_worker=False)  # the restart
    assert second.worker.recover() == 0  # nothing was half-written
    second.worker.run_until_idle()
    assert {job_of(second, job.id).state for _, job in uploads} == {"done"}
    assert second.service.find_orphans().clean
    second.close()


def test_only_small_queued_uploads_join_a_batch() -> None:
    small = KnowledgeDocument(size=parse_batch.SMALL_BYTES)
    large = KnowledgeDocument(size=parse_batch.SMALL_BYTES + 1)
    queued, running = KnowledgeJob(state="queued"), KnowledgeJob(state="running")
    assert parse_batch.batchable(queued, small)
    assert not parse_batch.batchable(queued, large)
    assert not parse_batch.batchable(running, small)
    assert not parse_batch.batchable(queued, None)
