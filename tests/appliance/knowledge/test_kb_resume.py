"""Interrupted ingestion resumes when the server unseals, without waiting for a request."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from appliance import Appliance
from appliance.knowledge import close_runtime
from appliance.knowledge import runtime as runtime_module
from appliance.knowledge.models import KnowledgeChunk, KnowledgeJob
from appliance.knowledge.runtime import build_runtime
from appliance.settings import EnclaveSettings
from appliance.web import create_app
from tests.appliance.knowledge.conftest import People
from tests.conftest import PASSPHRASE

LOG = "\n\n".join(
    f"Paragraph {n}: the inspection of turbine blade {n} found wear level {n % 7}."
    for n in range(120)
).encode()


def interrupted_job(appliance: Appliance, people: People) -> str:
    """Upload, then 'die' after the first committed batch of the parse."""
    first = build_runtime(appliance, start_worker=False)
    first.worker.parse_batch = 3
    kb = first.service.create_base(people.alice, "logs")
    _, job = first.service.add_document(people.alice, kb.id, "log.txt", [LOG])
    first.worker.stop()
    first.worker.run_once()
    with first.db.read() as session:
        row = session.get(KnowledgeJob, job.id)
        assert row is not None and (row.state, row.stage) == ("running", "parsing")
    appliance.seal()  # the process ends mid-job
    return job.id


def job_state(appliance: Appliance, job_id: str) -> str:
    with appliance.db.read() as session:
        row = session.get(KnowledgeJob, job_id)
        assert row is not None
        return row.state


def killed_mid_job(appliance: Appliance, settings: EnclaveSettings) -> str:
    """A second process ingests an upload and is SIGKILLed after its first committed batch."""
    appliance.seal()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.appliance.knowledge.kill_ingest_child", str(settings.home)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert child.stdout is not None
        line = ""
        for line in child.stdout:  # log lines, then this once the first batch is committed
            if line.startswith("committed "):
                break
        assert line.startswith("committed "), line
    finally:
        child.kill()
        child.wait(30)
    return line.split()[1]


def test_the_server_resumes_a_killed_job_at_unseal(
    appliance: Appliance, people: People, settings: EnclaveSettings
) -> None:
    job_id = killed_mid_job(appliance, settings)
    restarted = Appliance(settings)
    restarted.unseal(PASSPHRASE)
    assert job_state(restarted, job_id) == "running"  # interrupted while parsing
    restarted.seal()
    restarted = Appliance(settings)
    create_app(restarted, with_ui=False)  # the server's composition root
    restarted.unseal(PASSPHRASE)
    try:
        deadline = time.monotonic() + 120
        while job_state(restarted, job_id) != "done":
            assert time.monotonic() < deadline, "the job did not resume"
            time.sleep(0.2)
        with restarted.db.read() as session:
            ordinals = list(
                session.scalars(select(KnowledgeChunk.ordinal).order_by(KnowledgeChunk.ordinal))
            )
            embedded = set(session.scalars(select(KnowledgeChunk.embedded)))
        assert ordinals == list(range(len(ordinals))) and len(ordinals) > 3  # no duplicates
        assert embedded == {True}
    finally:
        close_runtime(restarted)
        restarted.seal()


def test_a_cli_unseal_starts_no_worker(
    appliance: Appliance, people: People, settings: EnclaveSettings
) -> None:
    job_id = interrupted_job(appliance, people)
    cli = Appliance(settings)  # no create_app: a CLI command that unseals
    cli.unseal(PASSPHRASE)
    try:
        time.sleep(1.0)
        assert id(cli) not in runtime_module._runtimes
        assert job_state(cli, job_id) == "running"
    finally:
        cli.seal()
