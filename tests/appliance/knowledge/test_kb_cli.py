"""`enclave knowledge purge` and `enclave knowledge orphans` on a real home."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from appliance import Appliance
from appliance.knowledge.models import KnowledgeDocument
from appliance.knowledge.runtime import build_runtime
from appliance.knowledge.service import now
from tests.appliance.knowledge.conftest import People
from tests.conftest import run_cli


@pytest.mark.usefixtures("cli_env")
def test_purge_and_orphan_check(
    appliance: Appliance, people: People, passphrase_file: Path
) -> None:
    rt = build_runtime(appliance, start_worker=False)
    kb = rt.service.create_base(people.alice, "week", retention_days=7)
    doc, _ = rt.service.add_document(people.alice, kb.id, "old.md", [b"# Old\n\nstale news"])
    rt.worker.run_until_idle()
    with rt.db.write() as session:
        row = session.get(KnowledgeDocument, doc.id)
        assert row is not None
        row.created_at = now() - timedelta(days=8)
    home = appliance.home.root
    appliance.seal()

    checked = run_cli("knowledge", "orphans", "--home", home, "--passphrase-file", passphrase_file)
    assert checked.exit_code == 0, checked.output
    assert "ok no orphans" in checked.stdout
    purged = run_cli("knowledge", "purge", "--home", home, "--passphrase-file", passphrase_file)
    assert purged.exit_code == 0, purged.output
    assert "removed 1 documents" in purged.stdout
    again = run_cli("knowledge", "purge", "--home", home, "--passphrase-file", passphrase_file)
    assert "removed 0 documents" in again.stdout
