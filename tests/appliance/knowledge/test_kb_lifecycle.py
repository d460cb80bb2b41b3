"""Deletion without orphans, shared content, retention, duplicates, restart mid-job, cancel,
re-embed, malware quarantine: the knowledge service against real SQLCipher, blobs and Chroma."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from appliance import Appliance
from appliance.knowledge import KnowledgeRuntime
from appliance.knowledge import fts as fts_index
from appliance.knowledge.errors import DuplicateDocument, EmbedderMismatch, JobNotCancellable
from appliance.knowledge.models import (
    KnowledgeBase,
    KnowledgeChunk,
    KnowledgeDocument,
    KnowledgeJob,
)
from appliance.knowledge.runtime import build_runtime
from appliance.knowledge.service import now
from tests.appliance.knowledge.conftest import People
from tests.engine.knowledge.kb_samples import pdf_bytes

NOTES = b"# Notes\n\nThe warehouse opens at seven and closes at nine.\n"


def long_text(paragraphs: int) -> bytes:
    return "\n\n".join(
        f"Paragraph {n}: the inspection of turbine blade {n} found wear level {n % 7}."
        for n in range(paragraphs)
    ).encode()


def job_of(rt: KnowledgeRuntime, job_id: str) -> KnowledgeJob:
    with rt.db.read() as session:
        job = session.get(KnowledgeJob, job_id)
    assert job is not None
    return job


def chunk_ids(rt: KnowledgeRuntime, doc_id: str) -> set[int]:
    with rt.db.read() as session:
        return set(
            session.scalars(select(KnowledgeChunk.id).where(KnowledgeChunk.document_id == doc_id))
        )


def test_deleting_a_document_leaves_no_orphans(
    runtime: KnowledgeRuntime, people: People, appliance: Appliance
) -> None:
    service = runtime.service
    kb = service.create_base(people.alice, "ops")
    keep, _ = service.add_document(people.alice, kb.id, "notes.md", [NOTES])
    gone, _ = service.add_document(
        people.alice, kb.id, "report.pdf", [pdf_bytes(["Turbine report page one", "page two"])]
    )
    runtime.worker.run_until_idle()
    ids = chunk_ids(runtime, gone.id)
    assert ids and ids <= runtime.service.vectors.ids(kb.id)
    assert service.find_orphans().clean

    service.delete_document(people.alice, kb.id, gone.id)

    assert not appliance.blobs.exists(gone.blob_id)
    assert appliance.blobs.exists(keep.blob_id)
    assert chunk_ids(runtime, gone.id) == set()
    with runtime.db.read() as session:
        assert not ids & fts_index.rowids(session)
    assert not ids & runtime.service.vectors.ids(kb.id)
    report = service.find_orphans()
    assert report.clean, report
    hits = runtime.searcher.search(
        people.alice, "turbine report", kb_ids=[kb.id], mode="hybrid"
    ).hits
    assert all(h.document_id == keep.id for h in hits)

    service.delete_base(people.alice, kb.id)
    assert not appliance.blobs.exists(keep.blob_id)
    assert runtime.service.vectors.kb_ids() == set()
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(KnowledgeChunk)) == 0
        assert fts_index.rowids(session) == set()
    assert service.find_orphans().clean


def test_content_shared_by_two_bases_is_kept_until_the_last_document(
    runtime: KnowledgeRuntime, people: People, appliance: Appliance
) -> None:
    service = runtime.service
    first = service.create_base(people.alice, "a")
    second = service.create_base(people.alice, "b")
    doc1, _ = service.add_document(people.alice, first.id, "n.md", [NOTES])
    doc2, _ = service.add_document(people.alice, second.id, "n.md", [NOTES])
    assert doc1.blob_id == doc2.blob_id
    with pytest.raises(DuplicateDocument):
        service.add_document(people.alice, first.id, "again.md", [NOTES])
    service.delete_document(people.alice, first.id, doc1.id)
    assert appliance.blobs.exists(doc2.blob_id)
    service.delete_document(people.alice, second.id, doc2.id)
    assert not appliance.blobs.exists(doc2.blob_id)


def test_retention_purges_old_documents(runtime: KnowledgeRuntime, people: People) -> None:
    service = runtime.service
    kb = service.create_base(people.alice, "short-lived", retention_days=30)
    forever = service.create_base(people.alice, "archive")
    old, _ = service.add_document(people.alice, kb.id, "old.md", [NOTES])
    fresh, _ = service.add_document(people.alice, kb.id, "fresh.md", [b"# Fresh\n\nnew text"])
    kept, _ = service.add_document(people.alice, forever.id, "kept.md", [NOTES])
    runtime.worker.run_until_idle()
    with runtime.db.write() as session:
        doc = session.get(KnowledgeDocument, old.id)
        assert doc is not None
        doc.created_at = now() - timedelta(days=31)
    assert service.purge_expired() == 1
    remaining = {d.id for d in service.list_documents(people.alice, kb.id)}
    assert remaining == {fresh.id}
    assert [d.id for d in service.list_documents(people.alice, forever.id)] == [kept.id]
    assert service.find_orphans().clean


def test_restart_during_parsing_resumes_the_job(appliance: Appliance, people: People) -> None:
    first = build_runtime(appliance, start_worker=False)
    first.worker.parse_batch = 3
    kb = first.service.create_base(people.alice, "big")
    doc, job = first.service.add_document(people.alice, kb.id, "log.txt", [long_text(400)])
    first.worker.stop()  # the process "dies" after the first committed batch
    first.worker.run_once()
    interrupted = job_of(first, job.id)
    assert (interrupted.state, interrupted.stage) == ("running", "parsing")
    assert 0 < len(chunk_ids(first, doc.id)) < 20

    second = build_runtime(appliance, start_worker=False)  # the restart
    assert second.worker.recover() == 1
    second.worker.run_until_idle()
    finished = job_of(second, job.id)
    assert (finished.state, finished.done, finished.total) == (
        "done",
        finished.total,
        finished.total,
    )
    with second.db.read() as session:
        ordinals = list(
            session.scalars(
                select(KnowledgeChunk.ordinal)
                .where(KnowledgeChunk.document_id == doc.id)
                .order_by(KnowledgeChunk.ordinal)
            )
        )
    assert ordinals == list(range(len(ordinals)))  # nothing duplicated by the first attempt
    assert second.service.find_orphans().clean


def test_restart_during_embedding_continues_where_it_stopped(
    appliance: Appliance, people: People
) -> None:
    first = build_runtime(appliance, start_worker=False)
    first.worker.embed_batch = 4
    kb = first.service.create_base(people.alice, "big")
    doc, job = first.service.add_document(people.alice, kb.id, "log.txt", [long_text(120)])
    first.worker.run_once()  # parse: BM25 works from here on
    assert first.searcher.search(people.alice, "turbine blade 17", mode="bm25").hits
    first.worker.run_once()  # one embedding batch, then the process "dies"
    partial = job_of(first, job.id)
    assert partial.stage == "embedding" and 0 < partial.done < partial.total

    second = build_runtime(appliance, start_worker=False)
    second.worker.recover()
    second.worker.embed_batch = 64
    second.worker.run_until_idle()
    done = job_of(second, job.id)
    assert (done.state, done.done) == ("done", done.total)
    assert chunk_ids(second, doc.id) == second.service.vectors.ids(kb.id)


def test_the_background_thread_ingests_and_stops(appliance: Appliance, people: People) -> None:
    rt = build_runtime(appliance, start_worker=True)
    try:
        kb = rt.service.create_base(people.alice, "live")
        _, job = rt.service.add_document(people.alice, kb.id, "n.md", [NOTES])
        for _ in range(600):
            if job_of(rt, job.id).state == "done":
                break
            rt.worker._stop.wait(0.1)
        assert job_of(rt, job.id).state == "done"
    finally:
        rt.close()


def test_cancel_a_queued_and_a_running_job(
    runtime: KnowledgeRuntime, people: People, appliance: Appliance
) -> None:
    service = runtime.service
    kb = service.create_base(people.alice, "c")
    queued_doc, queued = service.add_document(people.alice, kb.id, "a.md", [NOTES])
    cancelled = service.cancel_job(people.alice, queued.id)
    assert cancelled.state == "cancelled"
    assert not appliance.blobs.exists(queued_doc.blob_id)

    doc, job = service.add_document(people.alice, kb.id, "log.txt", [long_text(200)])
    runtime.worker.run_once()  # parsed, now embedding
    service.cancel_job(people.alice, job.id)
    with runtime.db.read() as session:
        assert session.get(KnowledgeDocument, doc.id) is None
    assert job_of(runtime, job.id).state == "cancelled"
    runtime.worker.run_until_idle()
    with pytest.raises(JobNotCancellable):
        service.cancel_job(people.alice, job.id)
    assert service.find_orphans().clean


def test_reembed_switches_embedder_while_bm25_keeps_working(
    runtime: KnowledgeRuntime, people: People
) -> None:
    service = runtime.service
    kb = service.create_base(people.alice, "r")
    service.add_document(people.alice, kb.id, "n.md", [NOTES])
    runtime.worker.run_until_idle()
    job = service.start_reembed(people.alice, kb.id, "e5-small-q4")
    assert runtime.searcher.search(people.alice, "warehouse opening hours", mode="bm25").hits
    runtime.worker.run_until_idle()
    with runtime.db.read() as session:
        base = session.get(KnowledgeBase, kb.id)
    assert base is not None and (base.embedder, base.pending_embedder) == ("e5-small-q4", None)
    assert job_of(runtime, job.id).state == "done"
    hits = runtime.searcher.search(people.alice, "when does the warehouse open", mode="dense").hits
    assert hits and hits[0].filename == "n.md"
    assert service.find_orphans().clean


def test_a_collection_refuses_vectors_of_another_model(
    runtime: KnowledgeRuntime, people: People
) -> None:
    kb = runtime.service.create_base(people.alice, "v")
    vectors = runtime.service.vectors
    vectors.upsert(kb.id, "minilm-l6-v2-int8", [1], np.ones((1, 384), dtype=np.float32))
    with pytest.raises(EmbedderMismatch):
        vectors.upsert(kb.id, "minilm-l6-v2-int8", [2], np.ones((1, 128), dtype=np.float32))


def test_yara_match_quarantines_the_upload(appliance: Appliance, people: People) -> None:
    rules = appliance.home.root / "yara"
    rules.mkdir()
    (rules / "test.yar").write_text(
        'rule EnclaveTestMarker { strings: $a = "X5O-ENCLAVE-TEST-MARKER" condition: $a }'
    )
    rt = build_runtime(appliance, start_worker=False)
    kb = rt.service.create_base(people.alice, "scan")
    doc, job = rt.service.add_document(
        people.alice, kb.id, "evil.txt", [b"hello X5O-ENCLAVE-TEST-MARKER bye"]
    )
    clean, _ = rt.service.add_document(people.alice, kb.id, "fine.txt", [b"hello world"])
    rt.worker.run_until_idle()
    quarantined = rt.service.get_document(people.alice, kb.id, doc.id)
    assert (quarantined.status, quarantined.error_code) == ("quarantined", "malware_detected")
    assert "EnclaveTestMarker" in (quarantined.error_message or "")
    assert job_of(rt, job.id).state == "failed"
    assert rt.service.get_document(people.alice, kb.id, clean.id).status == "ready"
    assert not rt.searcher.search(people.alice, "hello", mode="bm25").hits[1:]


def test_temp_files_are_wiped_at_start(appliance: Appliance, tmp_path: Path) -> None:
    tmp = appliance.home.root / "tmp" / "knowledge"
    tmp.mkdir(parents=True)
    (tmp / "leftover").write_bytes(b"plaintext from a crash")
    rt = build_runtime(appliance, start_worker=False)
    rt.worker.recover()
    assert list(tmp.iterdir()) == []


def test_the_orphan_check_finds_what_was_left_behind(
    runtime: KnowledgeRuntime, people: People, appliance: Appliance
) -> None:
    service = runtime.service
    kb = service.create_base(people.alice, "o")
    doc, _ = service.add_document(people.alice, kb.id, "n.md", [NOTES])
    runtime.worker.run_until_idle()
    with runtime.db.write() as session:
        fts_index.insert(session, [(999_999, kb.id, "stray row")])
    service.vectors.upsert(
        kb.id, "minilm-l6-v2-int8", [888_888], np.ones((1, 384), dtype=np.float32)
    )
    service.vectors.upsert("f" * 32, "minilm-l6-v2-int8", [1], np.ones((1, 384), dtype=np.float32))
    appliance.blobs.delete(doc.blob_id)
    report = service.find_orphans()
    assert report.fts_without_chunk == [999_999]
    assert report.vectors_without_chunk == [888_888]
    assert report.collections_without_kb == ["f" * 32]
    assert report.documents_without_blob == [doc.id]
    assert not report.clean
