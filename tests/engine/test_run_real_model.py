"""The run loop with the real SmolLM2 through llama.cpp: constrained steps are well-formed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from engine.agents import parse_definition
from engine.providers import LocalProvider
from engine.run import Runner, RunSpec
from engine.tools.base import ToolRegistry
from engine.tools.builtin import Calculator, CurrentTime
from models import load_catalog


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def smollm() -> AsyncIterator[LocalProvider]:
    path = load_catalog().default_entry().path()
    assert path is not None and path.is_file(), "the bundled SmolLM2 model must be installed"
    provider = LocalProvider(path, context_length=2048, n_threads=2)
    yield provider
    await provider.close()


def calculator_agent() -> object:
    return parse_definition(
        {
            "name": "maths",
            "instructions": "You are a helpful assistant with tools.",
            "model": {"provider": "local", "model": "smollm2"},
            "tools": [{"name": "calculator"}, {"name": "current_time"}],
            "generation": {"max_output_tokens": 48, "temperature": 0.0},
            "limits": {"max_steps": 3},
        }
    )


async def test_smollm_calls_the_calculator_and_answers(smollm: LocalProvider) -> None:
    runner = Runner(ToolRegistry([Calculator(), CurrentTime()]))
    spec = RunSpec("real", "u", None, calculator_agent(), smollm, "what is 1234*5678")
    run = runner.start(spec)
    events = [e async for e in run.events.follow()]
    kinds = [e.kind for e in events]
    assert kinds[-1] == "done" and events[-1].data["finish"] == "stop", events
    call = next(e for e in events if e.kind == "tool_call")
    assert call.data["name"] == "calculator"
    assert call.data["arguments"]["expression"].replace(" ", "") == "1234*5678"
    result = next(e for e in events if e.kind == "tool_result")
    assert result.data["content"] == "7006652" and not result.data["is_error"]
    # A final answer streams after the tool result.
    after = kinds[kinds.index("tool_result") :]
    assert "token" in after
    answer = "".join(e.data["text"] for e in events if e.kind == "token")
    assert answer.strip()
    usage = [e for e in events if e.kind == "usage"]
    assert len(usage) >= 2 and all(u.data["completion_tokens"] > 0 for u in usage)
