"""The token budgeter: never exceeds the window, drops oldest turns first, summarises them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.agents import parse_definition
from engine.errors import ContextOverflow
from engine.providers.base import ChatMessage
from engine.providers.scripted import ScriptedProvider
from engine.run import Runner, RunSpec, TokenBudget
from engine.tools.base import ToolRegistry


async def words(text: str) -> int:
    return len(text.split())


def history(turns: int) -> list[ChatMessage]:
    out = []
    for n in range(turns):
        out.append(ChatMessage("user", f"question {n} " + "pad " * 8))
        out.append(ChatMessage("assistant", f"answer {n} " + "pad " * 8))
    return out


async def test_everything_fits_untouched() -> None:
    budget = TokenBudget(words, window=1000)
    system = ChatMessage("system", "be brief")
    fit = await budget.fit(system, history(3), [ChatMessage("user", "now")], reserve=50)
    assert len(fit.messages) == 8 and fit.dropped == 0 and not fit.summarised
    assert fit.prompt_tokens == await budget.total(fit.messages)


async def test_oldest_turns_are_dropped_first_and_the_window_holds() -> None:
    budget = TokenBudget(words, window=120)
    system = ChatMessage("system", "be brief")
    turn = [ChatMessage("user", "latest question")]
    fit = await budget.fit(system, history(10), turn, reserve=40)
    assert fit.dropped > 0 and fit.dropped % 2 == 0  # whole turns
    assert fit.messages[0] == system and fit.messages[-1] == turn[0]
    assert fit.messages[1].content.startswith("question ")
    kept = [m.content.split()[1] for m in fit.messages[1:-1]]
    assert kept == sorted(kept)  # the newest turns survive, in order
    assert fit.prompt_tokens + 40 <= 120


async def test_dropped_turns_are_summarised_within_the_window() -> None:
    seen: list[list[ChatMessage]] = []

    async def summarise(dropped: list[ChatMessage], room: int) -> str:
        seen.append(dropped)
        return "earlier questions 0 to 3"

    budget = TokenBudget(words, window=120)
    system = ChatMessage("system", "be brief")
    fit = await budget.fit(system, history(10), [ChatMessage("user", "q")], 40, summarise)
    assert fit.summarised and "earlier questions 0 to 3" in fit.messages[0].content
    assert seen and seen[0][0].content.startswith("question 0")
    assert await budget.total(fit.messages) + 40 <= 120


async def test_a_turn_that_cannot_fit_is_a_context_overflow() -> None:
    budget = TokenBudget(words, window=50)
    with pytest.raises(ContextOverflow):
        await budget.fit(ChatMessage("system", "s"), [], [ChatMessage("user", "w " * 60)], 10)


async def test_runs_with_a_tiny_window_never_send_more_than_it_holds() -> None:
    window = 160

    def answer(request: Any) -> str:
        return "ok"

    provider = ScriptedProvider(
        [answer, json.dumps({"tool": "respond"}), answer], context_length=window
    )
    definition = parse_definition(
        {"name": "t", "model": {"model": "s"}, "generation": {"max_output_tokens": 30}}
    )
    spec = RunSpec("r", "u", None, definition, provider, "latest question", history=history(12))
    run = Runner(ToolRegistry()).start(spec)
    events = [e async for e in run.events.follow()]
    assert events[-1].data["finish"] == "stop", events
    # The first call summarised dropped turns; the answer call fit the window.
    assert provider.requests[0].messages[0].content.startswith("Summarise")
    answer_request = provider.requests[-1]
    sent = sum(len(m.content.split()) + 4 for m in answer_request.messages)
    assert sent + answer_request.max_tokens <= window
    assert "Summary of the earlier conversation: ok" in answer_request.messages[0].content
