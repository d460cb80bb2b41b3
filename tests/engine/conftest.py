"""Fixtures for the provider tests: a real ``llama_cpp.server`` on loopback, one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engine.model_servers import LlamaServer


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One real llama_cpp.server for the module."""
    server = LlamaServer(tmp_path_factory.mktemp("llama_server"))
    server.start()
    yield server
    server.kill()
