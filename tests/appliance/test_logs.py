"""Structured logs: JSON lines, request ids, rotation with retention."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from appliance.logs import configure_logging


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "logs"
    yield directory
    configure_logging("ERROR")  # detach the file handler before tmp_path goes away


def test_lines_are_json_with_context(log_dir: Path) -> None:
    configure_logging("INFO", log_dir)
    structlog.contextvars.bind_contextvars(request_id="req-42")
    try:
        structlog.get_logger("test").info("thing.happened", count=3, api_key="enc_abc")
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    logging.getLogger("plain.stdlib").warning("from stdlib")
    lines = [json.loads(line) for line in (log_dir / "enclave.log").read_text().splitlines()]
    first = lines[0]
    assert first["event"] == "thing.happened"
    assert first["count"] == 3
    assert first["request_id"] == "req-42"
    assert first["api_key"] == "[redacted]"
    assert first["level"] == "info"
    assert "timestamp" in first
    assert lines[1]["event"] == "from stdlib"
    assert lines[1]["level"] == "warning"


def test_rotation_keeps_only_the_configured_backups(log_dir: Path) -> None:
    configure_logging("INFO", log_dir, max_bytes=4096, backups=2)
    log = structlog.get_logger("test")
    for n in range(400):
        log.info("filler", n=n, text="x" * 100)
    files = sorted(p.name for p in log_dir.iterdir())
    assert files == ["enclave.log", "enclave.log.1", "enclave.log.2"]
    assert all((log_dir / name).stat().st_size <= 4096 + 400 for name in files)
    newest = (log_dir / "enclave.log").read_text().splitlines()[-1]
    assert json.loads(newest)["n"] == 399


def test_exceptions_are_logged_without_local_variables(log_dir: Path) -> None:
    configure_logging("INFO", log_dir)
    secret_value = "hunter2-secret-local"
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("test").exception("failed", length=len(secret_value))
    text = (log_dir / "enclave.log").read_text()
    assert "boom" in text
    assert "ValueError" in text
    assert secret_value not in text
