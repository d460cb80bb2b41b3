"""ClamAV against a real clamd: a daemon of our own (foreground, a socket in a temporary
folder, one custom body signature, no freshclam), configured through the appliance setting
``knowledge_clamd_socket`` and consulted by the real ingestion worker."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import Appliance
from appliance.knowledge import KnowledgeRuntime
from appliance.knowledge.models import KnowledgeJob
from appliance.knowledge.runtime import build_runtime
from appliance.settings import EnclaveSettings
from tests.appliance.knowledge.conftest import People
from tests.conftest import make_settings

CLAMD = shutil.which("clamd") or next(
    (p for p in ("/usr/sbin/clamd", "/usr/local/sbin/clamd") if Path(p).is_file()), None
)
pytestmark = pytest.mark.skipif(
    CLAMD is None,
    reason="clamd is not installed (Debian package clamav-daemon; `make test-system-deps`)",
)

MARKER = b"X5O-ENCLAVE-CLAMAV-TEST-MARKER"
SIGNATURE = "EnclaveTest.Marker"


def _job(rt: KnowledgeRuntime, job_id: str) -> KnowledgeJob:
    with rt.db.read() as session:
        job = session.get(KnowledgeJob, job_id)
    assert job is not None
    return job


@pytest.fixture(scope="module")
def clamd_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running clamd whose only database is one ``.ndb`` body signature for MARKER."""
    # A short path: UNIX socket paths are limited to 108 bytes.
    root = tmp_path_factory.mktemp("clamd")
    db = root / "db"
    db.mkdir()
    (db / "enclave-test.ndb").write_text(f"{SIGNATURE}:0:*:{MARKER.hex()}\n")
    sock = root / "clamd.sock"
    conf = root / "clamd.conf"
    conf.write_text(
        "Foreground yes\n"
        f"LocalSocket {sock}\n"
        f"DatabaseDirectory {db}\n"
        f"LogFile {root / 'clamd.log'}\n"
        f"TemporaryDirectory {root}\n"
    )
    assert CLAMD is not None
    proc = subprocess.Popen(
        [CLAMD, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"clamd exited with {proc.returncode}: {err[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("clamd did not open its socket within 60 s")
            time.sleep(0.1)
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def settings(home_dir: Path, clamd_socket: Path) -> EnclaveSettings:
    return make_settings(home_dir, knowledge_clamd_socket=clamd_socket)


@pytest.fixture
def clam_runtime(appliance: Appliance) -> Iterator[KnowledgeRuntime]:
    rt = build_runtime(appliance, start_worker=False)
    yield rt
    rt.close()


def test_clamd_match_quarantines_and_a_clean_file_is_ingested(
    clam_runtime: KnowledgeRuntime, people: People
) -> None:
    rt = clam_runtime
    assert [s.name for s in rt.worker.scanners] == ["clamav"]
    kb = rt.service.create_base(people.alice, "clam")
    evil, evil_job = rt.service.add_document(
        people.alice, kb.id, "evil.txt", [b"quarterly figures " + MARKER + b" attached"]
    )
    clean, clean_job = rt.service.add_document(
        people.alice, kb.id, "fine.txt", [b"quarterly figures are attached"]
    )
    rt.worker.run_until_idle()

    flagged = rt.service.get_document(people.alice, kb.id, evil.id)
    assert (flagged.status, flagged.error_code) == ("quarantined", "malware_detected")
    assert SIGNATURE in (flagged.error_message or "")  # the user is told which signature
    assert _job(rt, evil_job.id).state == "failed"
    assert flagged.chunk_count == 0

    ok = rt.service.get_document(people.alice, kb.id, clean.id)
    assert ok.status == "ready" and ok.chunk_count > 0
    assert _job(rt, clean_job.id).state == "done"
    hits = rt.searcher.search(people.alice, "quarterly figures", mode="bm25").hits
    assert [h.document_id for h in hits] == [clean.id]  # nothing of the flagged file is indexed


def test_unreachable_clamd_fails_closed(
    clam_runtime: KnowledgeRuntime, people: People, tmp_path: Path
) -> None:
    rt = clam_runtime
    (scanner,) = rt.worker.scanners
    scanner.socket_path = tmp_path / "no-clamd-here.sock"  # type: ignore[attr-defined]
    kb = rt.service.create_base(people.alice, "down")
    doc, job = rt.service.add_document(people.alice, kb.id, "fine.txt", [b"harmless text"])
    rt.worker.run_until_idle()

    failed = rt.service.get_document(people.alice, kb.id, doc.id)
    assert (failed.status, failed.error_code) == ("failed", "scanner_unavailable")
    assert "cannot be reached" in (failed.error_message or "")
    assert "no-clamd-here.sock" in (failed.error_message or "")
    assert _job(rt, job.id).state == "failed"
    assert rt.searcher.search(people.alice, "harmless", mode="bm25").hits == []
