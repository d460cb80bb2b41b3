"""The run loop's logic, step by step, with a deterministic scripted model."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from engine.agents import parse_definition
from engine.errors import EngineError, GenerationFailed, ProviderUnavailable
from engine.hooks import (
    Decision,
    HookDenied,
    Hooks,
    ModelCall,
    Reservation,
    RunEvent,
    ToolDecision,
    ToolExecution,
)
from engine.providers.base import ChatMessage, ToolCall, Usage
from engine.providers.scripted import ScriptedProvider, ScriptedToolCalls
from engine.run import Runner, RunSpec, TurnResult
from engine.tools.base import Citation, ToolContext, ToolOutput, ToolRegistry, ToolSpec
from engine.tools.builtin import Calculator, CurrentTime


def agent(tools: list[str] | None = None, **limits: Any) -> Any:
    doc: dict[str, Any] = {
        "name": "tester",
        "instructions": "You help.",
        "model": {"provider": "local", "model": "scripted"},
        "tools": [{"name": t} for t in tools or []],
        "generation": {"max_output_tokens": 64, "temperature": 0.0},
    }
    if limits:
        doc["limits"] = limits
    return parse_definition(doc)


class SlowTool:
    """Sleeps, and records how many of its calls overlapped."""

    spec = ToolSpec(
        "slow",
        "Waits a little.",
        {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    )

    def __init__(self, seconds: float = 0.2) -> None:
        self.seconds = seconds
        self.active = 0
        self.peak = 0

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.active -= 1
        return ToolOutput(f"slept {arguments['n']}")


class BrokenTool:
    spec = ToolSpec("broken", "Always crashes.", {"type": "object", "properties": {}})

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        raise RuntimeError("kaput")


class Recorder(Hooks):
    def __init__(self) -> None:
        self.calls: list[ModelCall] = []
        self.settled: list[tuple[Usage | None, Reservation | None, str | None]] = []
        self.tools: list[tuple[str, bool]] = []
        self.events: list[RunEvent] = []

    async def before_model_call(self, call: ModelCall) -> Reservation:
        self.calls.append(call)
        return Reservation(id=f"r{len(self.calls)}", amount=call.prompt_tokens + call.max_tokens)

    async def after_model_call(
        self,
        call: ModelCall,
        usage: Usage | None,
        reservation: Reservation | None,
        error: EngineError | None,
    ) -> None:
        self.settled.append((usage, reservation, error.code if error else None))

    async def after_tool_execution(
        self, execution: ToolExecution, output: ToolOutput, duration_s: float
    ) -> None:
        self.tools.append((execution.tool, output.is_error))

    async def on_run_event(self, event: RunEvent) -> None:
        self.events.append(event)


def registry(*extra: Any) -> ToolRegistry:
    return ToolRegistry([Calculator(), CurrentTime(), *extra])


async def run_turn(
    provider: ScriptedProvider,
    definition: Any,
    text: str = "hi",
    hooks: Hooks | None = None,
    tools: ToolRegistry | None = None,
    history: list[ChatMessage] | None = None,
    cancel_after: float | None = None,
) -> tuple[list[RunEvent], TurnResult, list[TurnResult]]:
    runner = Runner(tools or registry(), hooks)
    finished: list[TurnResult] = []

    async def finish(result: TurnResult) -> dict[str, Any]:
        finished.append(result)
        return {"conversation_id": "c1"}

    spec = RunSpec("run1", "user:1", "agent1", definition, provider, text, history=history or [])
    run = runner.start(spec, finish)
    if cancel_after is not None:
        await asyncio.sleep(cancel_after)
        run.cancel()
    events = [e async for e in run.events.follow()]
    return events, await run.wait(), finished


def kinds(events: list[RunEvent]) -> list[str]:
    return [e.kind for e in events]


def first(events: list[RunEvent], kind: str) -> RunEvent:
    return next(e for e in events if e.kind == kind)


async def test_a_plain_answer_streams_tokens_then_done() -> None:
    provider = ScriptedProvider(["Hello there, friend."])
    events, result, finished = await run_turn(provider, agent())
    assert "".join(e.data["text"] for e in events if e.kind == "token") == "Hello there, friend."
    assert kinds(events)[-2:] == ["usage", "done"]
    done = events[-1]
    assert done.data["finish"] == "stop" and done.data["conversation_id"] == "c1"
    assert [m.role for m in result.messages] == ["user", "assistant"]
    assert finished == [result]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_tool_call_then_result_then_answer_with_the_protocol() -> None:
    provider = ScriptedProvider(
        [
            json.dumps({"tool": "calculator", "arguments": {"expression": "1234*5678"}}),
            json.dumps({"tool": "respond"}),
            "It is 7006652.",
        ]
    )
    hooks = Recorder()
    events, result, _ = await run_turn(provider, agent(["calculator"]), "what is 1234*5678", hooks)
    assert first(events, "tool_call").data["arguments"] == {"expression": "1234*5678"}
    assert first(events, "tool_result").data["content"] == "7006652"
    assert kinds(events).index("tool_result") < kinds(events).index("token")
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    assert result.messages[-1].content == "It is 7006652."
    # The step requests were grammar-constrained; the answer was free text.
    assert provider.requests[0].json_schema is not None
    assert provider.requests[2].json_schema is None
    # Every model call was reserved for and settled with its real usage.
    assert len(hooks.calls) == 3 and all(s[0] is not None for s in hooks.settled)
    assert hooks.tools == [("calculator", False)]
    assert [e.kind for e in hooks.events] == kinds(events)


async def test_the_last_step_may_only_answer() -> None:
    provider = ScriptedProvider(
        [
            json.dumps({"tool": "calculator", "arguments": {"expression": "1+1"}}),
            json.dumps({"tool": "respond"}),
            "Two.",
        ]
    )
    events, result, _ = await run_turn(provider, agent(["calculator"], max_steps=2))
    last_step = provider.requests[1].json_schema
    assert last_step is not None and "anyOf" not in last_step
    assert last_step["properties"]["tool"] == {"const": "respond"}
    assert events[-1].data["finish"] == "stop" and result.steps == 2


async def test_a_model_that_keeps_calling_tools_still_gets_an_answer_at_max_steps() -> None:
    calls = [
        json.dumps({"tool": "calculator", "arguments": {"expression": f"{n}+1"}}) for n in range(3)
    ]
    provider = ScriptedProvider([*calls, "Done."])
    events, result, _ = await run_turn(provider, agent(["calculator"], max_steps=3))
    # Three steps called tools; the last one's result was answered without another step.
    assert kinds(events).count("tool_result") == 3
    assert result.messages[-1].content == "Done." and events[-1].data["finish"] == "stop"


async def test_repeating_the_same_call_answers_instead() -> None:
    call = json.dumps({"tool": "calculator", "arguments": {"expression": "2*21"}})
    provider = ScriptedProvider([call, call, "42."])
    events, result, _ = await run_turn(provider, agent(["calculator"]))
    assert kinds(events).count("tool_call") == 1
    assert result.messages[-1].content == "42."


async def test_a_tool_error_goes_back_to_the_model() -> None:
    provider = ScriptedProvider(
        [
            json.dumps({"tool": "calculator", "arguments": {"expression": "1/0"}}),
            json.dumps({"tool": "respond"}),
            "Cannot divide by zero.",
        ]
    )
    events, _, _ = await run_turn(provider, agent(["calculator"]))
    result_event = first(events, "tool_result")
    assert result_event.data["is_error"] and "Division by zero" in result_event.data["content"]
    assert events[-1].data["finish"] == "stop"


async def test_a_crashing_tool_ends_the_turn_with_tool_failed() -> None:
    provider = ScriptedProvider([json.dumps({"tool": "broken", "arguments": {}})])
    events, _, finished = await run_turn(provider, agent(["broken"]), tools=registry(BrokenTool()))
    error = first(events, "error")
    assert error.data["code"] == "tool_failed" and "kaput" in error.data["message"]
    assert events[-1].data["finish"] == "error" and finished == []


async def test_parallel_native_tool_calls_run_concurrently() -> None:
    slow = SlowTool(0.3)
    provider = ScriptedProvider(
        [
            ScriptedToolCalls(
                (ToolCall("a", "slow", '{"n": 1}'), ToolCall("b", "slow", '{"n": 2}'))
            ),
            "Both done.",
        ],
        native_tools=True,
    )
    _events, result, _ = await run_turn(provider, agent(["slow"]), tools=registry(slow))
    assert slow.peak == 2
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [m.tool_call_id for m in result.messages if m.role == "tool"] == ["a", "b"]
    assert provider.requests[0].tools and provider.requests[0].tool_choice == "auto"


async def test_malformed_native_arguments_get_one_repair() -> None:
    provider = ScriptedProvider(
        [
            ScriptedToolCalls((ToolCall("a", "calculator", '{"expression": '),)),
            ScriptedToolCalls((ToolCall("b", "calculator", '{"expression": "3*3"}'),)),
            "Nine.",
        ],
        native_tools=True,
    )
    events, result, _ = await run_turn(provider, agent(["calculator"]))
    results = [e for e in events if e.kind == "tool_result"]
    assert results[0].data["is_error"] and "not valid JSON" in results[0].data["content"]
    assert results[1].data["content"] == "9"
    assert result.messages[-1].content == "Nine."


async def test_malformed_arguments_twice_end_the_turn() -> None:
    bad = ScriptedToolCalls((ToolCall("a", "calculator", '{"expr": "1"}'),))
    provider = ScriptedProvider([bad, bad], native_tools=True)
    events, _, finished = await run_turn(provider, agent(["calculator"]))
    assert first(events, "error").data["code"] == "tool_arguments_invalid"
    assert finished == []


async def test_an_invalid_protocol_step_is_repaired_once() -> None:
    provider = ScriptedProvider(["not json at all", json.dumps({"tool": "respond"}), "Fine."])
    events, result, _ = await run_turn(provider, agent(["calculator"]))
    assert "invalid" in provider.requests[1].messages[-1].content
    assert result.messages[-1].content == "Fine."
    provider = ScriptedProvider(["nope", '{"tool": "teleport"}'])
    events, _, _ = await run_turn(provider, agent(["calculator"]))
    assert first(events, "error").data["code"] == "model_output_invalid"


async def test_the_turn_timeout_stops_a_slow_model() -> None:
    provider = ScriptedProvider(["word " * 60], delay_s=0.05)
    events, _, finished = await run_turn(provider, agent(turn_timeout_s=0.3))
    assert first(events, "error").data["code"] == "turn_timeout"
    assert events[-1].data["finish"] == "error" and finished == []


async def test_cancel_stops_the_stream() -> None:
    provider = ScriptedProvider(["word " * 200], delay_s=0.01)
    hooks = Recorder()
    events, _result, finished = await run_turn(provider, agent(), hooks=hooks, cancel_after=0.2)
    assert first(events, "error").data["code"] == "cancelled"
    assert events[-1].data["finish"] == "cancelled" and finished == []
    assert 0 < kinds(events).count("token") < 200
    # The cancelled call was still settled (with its partial usage).
    assert hooks.settled and hooks.settled[-1][0] is not None


async def test_a_hook_denial_ends_the_turn_with_its_code() -> None:
    class Broke(Recorder):
        async def before_model_call(self, call: ModelCall) -> Reservation:
            raise HookDenied("credits_exhausted", "No credits left; ask an admin.", http_status=402)

    hooks = Broke()
    provider = ScriptedProvider(["never"])
    events, _, finished = await run_turn(provider, agent(), hooks=hooks)
    error = first(events, "error")
    assert error.data == {
        "code": "credits_exhausted",
        "message": "No credits left; ask an admin.",
        "retryable": False,
    }
    assert provider.requests == [] and hooks.settled == [] and finished == []


async def test_a_tool_denied_by_a_hook_is_not_run() -> None:
    class NoCode(Recorder):
        async def before_tool_execution(self, execution: ToolExecution) -> ToolDecision:
            return ToolDecision(Decision.DENY, "calculators are off today")

    provider = ScriptedProvider(
        [
            json.dumps({"tool": "calculator", "arguments": {"expression": "1+1"}}),
            json.dumps({"tool": "respond"}),
            "Sorry.",
        ]
    )
    events, _, _ = await run_turn(provider, agent(["calculator"]), hooks=NoCode())
    assert first(events, "tool_result").data["content"] == "Not run: calculators are off today."


async def test_provider_errors_end_the_turn_with_their_code() -> None:
    for error, code in (
        (ProviderUnavailable(), "provider_unavailable"),
        (GenerationFailed("x"), "generation_failed"),
    ):
        hooks = Recorder()
        events, _, _ = await run_turn(ScriptedProvider([error]), agent(), hooks=hooks)
        assert first(events, "error").data["code"] == code
        # The reservation made for the failed call was released (no usage).
        assert hooks.settled == [(None, hooks.settled[0][1], code)]


async def test_json_output_mode_validates_the_answer() -> None:
    doc = {
        "name": "json",
        "model": {"model": "scripted"},
        "output": {
            "mode": "json",
            "json_schema": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            },
        },
    }
    events, result, _ = await run_turn(ScriptedProvider(['{"n": 3}']), parse_definition(doc))
    assert result.messages[-1].content == '{"n": 3}'
    events, _, _ = await run_turn(ScriptedProvider(['{"n": "three"}']), parse_definition(doc))
    assert first(events, "error").data["code"] == "model_output_invalid"


async def test_followers_can_resume_after_any_event() -> None:
    runner = Runner(registry())
    run = runner.start(RunSpec("r", "u", None, agent(), ScriptedProvider(["a b c d"]), "hi"))
    await run.wait()
    all_events = [e async for e in run.events.follow()]
    resumed = [e async for e in run.events.follow(after=2)]
    assert resumed == all_events[2:]
    assert [e async for e in run.events.follow(after=len(all_events))] == []


class CitingTool:
    """Returns a passage with its citation, like knowledge_search."""

    spec = ToolSpec(
        "lookup", "Finds a passage.", {"type": "object", "properties": {"q": {"type": "string"}}}
    )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        cite = Citation(
            "doc1", "manual.pdf", "chunk7", 120, 180, page=3, section="Valves", score=0.9
        )
        return ToolOutput("[1] manual.pdf p.3: check valves daily", citations=(cite,))


async def test_citations_stream_and_reach_the_result() -> None:
    provider = ScriptedProvider(
        [
            json.dumps({"tool": "lookup", "arguments": {"q": "valves"}}),
            json.dumps({"tool": "respond"}),
            "Check them daily [1].",
        ]
    )
    events, result, _ = await run_turn(provider, agent(["lookup"]), tools=registry(CitingTool()))
    citation = first(events, "citation")
    assert citation.data["document_name"] == "manual.pdf" and citation.data["page"] == 3
    assert citation.data["tool_call_id"] == first(events, "tool_call").data["id"]
    assert [c.chunk_id for c in result.citations] == ["chunk7"]
