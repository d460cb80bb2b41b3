"""The run loop: one user turn of one agent, as a background task that emits events.

``Runner.start(spec)`` returns a :class:`Run` at once; the turn runs in its own task (so a
dropped client connection neither stops nor loses it) and its events go to an :class:`EventLog`
that any number of followers read from any point. The loop:

1. fits system prompt + history + the new input into the model's window (budget.py);
2. calls the model through the hooks (``before_model_call`` may reserve credits or refuse;
   ``after_model_call`` settles) — with native tool calls when the provider supports them,
   otherwise with Enclave's JSON-schema tool protocol (protocol.py);
3. runs the tools the model asked for (several at once when it asked for several), each through
   ``before_tool_execution`` / ``after_tool_execution``, with a per-tool timeout;
4. repeats until the model answers or the step limit — on the last step no tool may be called,
   so a run always converges; the answer streams as ``token`` events.

Every failure ends the turn with one ``error`` event carrying a code, then ``done``; the turn's
new messages are handed to the caller's ``finish`` callback only when the turn succeeded, so a
failed turn leaves the conversation as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import structlog

from engine.agents.definition import AgentDefinition
from engine.errors import (
    EngineError,
    GenerationCancelled,
    GenerationFailed,
    ModelOutputInvalid,
    TurnTimeout,
)
from engine.hooks import Hooks, ModelCall, error_code
from engine.providers.base import (
    ChatMessage,
    ChatRequest,
    Fallback,
    Finish,
    Provider,
    QueuePosition,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from engine.run.context import TokenBudget
from engine.run.events import EventLog
from engine.run.protocol import parse_step, step_schema, tools_prompt
from engine.run.tools import ToolRunner
from engine.tools.base import Citation, ToolRegistry, ToolSpec

log = structlog.get_logger(__name__)

# Tokens a protocol step (tool choice + arguments) may take.
STEP_TOKENS = 256
SUMMARY_TOKENS = 160


@dataclass
class RunSpec:
    """Everything one turn needs."""

    run_id: str
    principal: str
    agent_id: str | None
    definition: AgentDefinition
    provider: Provider
    user_input: str
    history: list[ChatMessage] = field(default_factory=list)
    workspace: Path | None = None
    # The (provider, model) label reported to hooks and usage events.
    provider_label: str = "local"
    model_label: str = ""
    # The labels of the members after the first when ``provider`` is a fallback chain, in
    # chain order: each ``Fallback`` event moves the call on to the next one.
    fallback_labels: tuple[tuple[str, str], ...] = ()
    # The tools of this run when they differ from the runner's (e.g. plus MCP tools).
    tools: ToolRegistry | None = None
    # ``host:port`` destinations the code tools may reach (granted by an administrator, never
    # taken from the agent definition); empty: no network.
    tool_network_allowlist: tuple[str, ...] = ()


@dataclass
class TurnResult:
    """What a finished turn produced: the messages to persist (user input first)."""

    messages: list[ChatMessage] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    steps: int = 0
    finish: str = "stop"


Finisher = Callable[[TurnResult], Awaitable[dict[str, Any]]]


class Run:
    """A turn in progress (or finished): its events, its result, and a way to stop it."""

    def __init__(self, spec: RunSpec, hooks: Hooks, tools: ToolRegistry) -> None:
        self.spec = spec
        self.hooks = hooks
        self.tools = spec.tools if spec.tools is not None else tools
        self.events = EventLog(hooks.on_run_event)
        self.result = TurnResult()
        # The error that ended the turn, if one did (for callers that map it to a status).
        self.error: EngineError | None = None
        self.cancel_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.started = time.monotonic()
        self._summaries: dict[tuple[int, int], str] = {}
        self.budget = TokenBudget(
            spec.provider.count_tokens, spec.provider.capabilities().context_length
        )

    # --- control -----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the turn: generation stops within a second, running tools are killed."""
        self.cancel_event.set()

    async def wait(self) -> TurnResult:
        """Wait until the turn ended (successfully or not)."""
        if self.task is not None:
            await asyncio.shield(self.task)
        return self.result

    # --- the turn ----------------------------------------------------------------------------

    async def main(self, finish: Finisher | None) -> None:
        """Run the turn, then emit ``done`` (with what ``finish`` returns when it succeeded)."""
        extra: dict[str, Any] = {}
        try:
            async with asyncio.timeout(self.spec.definition.limits.turn_timeout_s):
                await self._turn()
            if finish is not None:
                extra = await finish(self.result)
        except TimeoutError:
            await self._fail(
                TurnTimeout(
                    f"The turn took longer than {self.spec.definition.limits.turn_timeout_s:g} s "
                    "and was stopped; raise the agent's turn timeout or ask for less."
                )
            )
        except GenerationCancelled as exc:
            self.result.finish = "cancelled"
            await self._fail(exc)
        except EngineError as exc:
            await self._fail(exc)
        except Exception as exc:
            log.exception("run.crashed", run_id=self.spec.run_id)
            await self._fail(
                GenerationFailed(f"The run failed unexpectedly ({exc.__class__.__name__}).")
            )
        await self.events.emit(
            "done",
            finish=self.result.finish,
            steps=self.result.steps,
            usage={
                "prompt_tokens": self.result.prompt_tokens,
                "completion_tokens": self.result.completion_tokens,
            },
            **extra,
        )

    async def _fail(self, exc: EngineError) -> None:
        self.error = exc
        if self.result.finish != "cancelled":
            self.result.finish = "error"
        await self.events.emit(
            "error", code=error_code(exc), message=exc.message, retryable=exc.retryable
        )

    async def _turn(self) -> None:
        spec, definition = self.spec, self.spec.definition
        enabled = definition.tool_names()
        specs = self.tools.specs(enabled) if enabled else []
        native = bool(specs) and spec.provider.capabilities().tools
        user = ChatMessage("user", spec.user_input)
        turn: list[ChatMessage] = [user]
        tool_runner = ToolRunner(self, specs)
        limits = definition.limits
        for step in range(1, limits.max_steps + 1):
            self._check_cancel()
            self.result.steps = step
            last = step == limits.max_steps
            if not specs:
                await self._answer(step, turn, tool_note=False)
                break
            if native:
                done = await self._native_step(step, turn, specs, tool_runner, last)
            else:
                done = await self._protocol_step(step, turn, specs, tool_runner, last)
            if done:
                break
        self.result.messages = turn

    def _check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise GenerationCancelled("The run was stopped.")

    # --- steps -------------------------------------------------------------------------------

    async def _native_step(
        self,
        step: int,
        turn: list[ChatMessage],
        specs: list[ToolSpec],
        tool_runner: ToolRunner,
        last: bool,
    ) -> bool:
        """One model call offering the tools natively; True when the model answered."""
        definition = self.spec.definition
        reserve = definition.generation.max_output_tokens
        messages = await self._fit(self._system(), turn, reserve)
        request = ChatRequest(
            tuple(messages),
            max_tokens=reserve,
            temperature=definition.generation.temperature,
            tools=tuple(s.definition() for s in specs),
            tool_choice="none" if last else "auto",
        )
        text, calls = await self._call(step, request, stream_text=True)
        if not calls:
            turn.append(ChatMessage("assistant", text))
            return True
        turn.append(ChatMessage("assistant", text, tool_calls=calls))
        turn.extend(await tool_runner.run_calls(step, list(calls), repair_allowed=True))
        return False

    async def _protocol_step(
        self,
        step: int,
        turn: list[ChatMessage],
        specs: list[ToolSpec],
        tool_runner: ToolRunner,
        last: bool,
    ) -> bool:
        """One constrained step (tool or respond); True when the model answered."""
        system = ChatMessage(
            "system", self.spec.definition.instructions + "\n" + tools_prompt(specs)
        )
        schema = step_schema(specs, allow_tools=not last)
        known = {s.name for s in specs}
        attempt_turn = list(turn)
        for attempt in (1, 2):
            messages = await self._fit(system, attempt_turn, STEP_TOKENS)
            request = ChatRequest(
                tuple(messages), max_tokens=STEP_TOKENS, temperature=0.0, json_schema=schema
            )
            text, _ = await self._call(step, request, stream_text=False)
            try:
                choice = parse_step(text, known)
                if choice.tool is not None:
                    self.tools.validate(choice.tool, choice.arguments)
                break
            except EngineError as exc:
                if attempt == 2:
                    raise ModelOutputInvalid(
                        f"The model's step was invalid twice: {exc.message}"
                    ) from exc
                attempt_turn = [
                    *turn,
                    ChatMessage("assistant", text),
                    ChatMessage(
                        "user",
                        f"That reply was invalid: {exc.message} Reply with one JSON object as described.",
                    ),
                ]
        if choice.tool is None or tool_runner.seen(choice.tool, choice.arguments):
            # The model answers — or repeats a call it already made, which means it has what
            # it needs (small models tend to call again instead of answering).
            await self._answer(step, turn, tool_note=True)
            return True
        call = ToolCall(
            id=f"call_{step}",
            name=choice.tool,
            arguments=json.dumps(choice.arguments, ensure_ascii=False),
        )
        turn.append(
            ChatMessage(
                "assistant",
                json.dumps(
                    {"tool": choice.tool, "arguments": choice.arguments}, ensure_ascii=False
                ),
                tool_calls=(call,),
            )
        )
        turn.extend(await tool_runner.run_calls(step, [call], repair_allowed=False))
        if last:
            await self._answer(step, turn, tool_note=True)
            return True
        return False

    async def _answer(self, step: int, turn: list[ChatMessage], tool_note: bool) -> None:
        """Generate the answer as streamed text (or JSON in the agent's output schema)."""
        definition = self.spec.definition
        reserve = definition.generation.max_output_tokens
        instructions = definition.instructions
        if tool_note:
            instructions += "\nAnswer the user now, using the tool results above."
        messages = await self._fit(ChatMessage("system", instructions), turn, reserve)
        output = definition.output
        request = ChatRequest(
            tuple(messages),
            max_tokens=reserve,
            temperature=definition.generation.temperature,
            json_schema=output.json_schema if output.mode == "json" else None,
        )
        text, _ = await self._call(step, request, stream_text=True)
        if output.mode == "json":
            _check_json_output(text, output.json_schema or {})
        turn.append(ChatMessage("assistant", text))

    def _system(self) -> ChatMessage:
        return ChatMessage("system", self.spec.definition.instructions)

    async def _fit(
        self, system: ChatMessage, turn: list[ChatMessage], reserve: int
    ) -> list[ChatMessage]:
        fit = await self.budget.fit(system, self.spec.history, turn, reserve, self._summarise)
        return fit.messages

    async def _summarise(self, dropped: list[ChatMessage], room: int) -> str:
        """Summarise turns that no longer fit, in at most ``room`` tokens (once per run for the
        same dropped turns: every step of a turn fits the same history)."""
        key = (len(dropped), room)
        if key in self._summaries:
            return self._summaries[key]
        text = "\n".join(
            f"{m.role}: {m.content}" for m in dropped if m.role in ("user", "assistant")
        )
        window = self.budget.window
        limit = max(1, min(room, SUMMARY_TOKENS))
        # Keep the most recent part of what was dropped when even that is too long.
        words = text.split()
        while words and await self.budget.count(" ".join(words)) + limit + 64 > window:
            words = words[len(words) // 4 or 1 :]
        request = ChatRequest(
            (
                ChatMessage(
                    "system",
                    "Summarise this conversation in a few short sentences. Keep names, numbers and decisions.",
                ),
                ChatMessage("user", " ".join(words)),
            ),
            max_tokens=limit,
            temperature=0.0,
        )
        summary, _ = await self._call(0, request, stream_text=False)
        self._summaries[key] = summary.strip()
        return self._summaries[key]

    # --- one model call ----------------------------------------------------------------------

    async def _call(
        self, step: int, request: ChatRequest, stream_text: bool
    ) -> tuple[str, tuple[ToolCall, ...]]:
        """One model call through the hooks; streams tokens when asked; returns text and calls."""
        spec = self.spec
        prompt_tokens = await self.budget.total(list(request.messages))
        call = ModelCall(
            run_id=spec.run_id,
            step=step,
            principal=spec.principal,
            agent_id=spec.agent_id,
            provider=spec.provider_label,
            model=spec.model_label,
            prompt_tokens=prompt_tokens,
            max_tokens=request.max_tokens,
            fallbacks=spec.fallback_labels,
        )
        reservation = await self.hooks.before_model_call(call)
        # Relabelled at each fallback, so the call is settled and reported as who answered.
        answered, moved = call, 0
        usage: Usage | None = None
        error: EngineError | None = None
        parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        reason = "stop"
        try:
            async for event in spec.provider.stream(request, self.cancel_event):
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    if stream_text:
                        await self.events.emit("token", text=event.text)
                elif isinstance(event, ToolCallDelta):
                    entry = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
                    entry["id"] = event.id or entry["id"]
                    entry["name"] = event.name or entry["name"]
                    entry["arguments"] += event.arguments
                elif isinstance(event, Usage):
                    usage = event
                elif isinstance(event, Finish):
                    reason = event.reason
                elif isinstance(event, QueuePosition):
                    await self.events.emit(
                        "queue_position", position=event.position, waiting=event.waiting
                    )
                elif isinstance(event, Fallback):
                    moved += 1
                    answered = _chain_member(call, moved, answered)
                    await self.events.emit(
                        "fallback",
                        from_provider=event.from_provider,
                        to_provider=event.to_provider,
                        reason=event.reason,
                        code=event.code,
                    )
        except EngineError as exc:
            error = exc
            raise
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(
                    self.hooks.after_model_call(answered, usage, reservation, error)
                )
        if usage is not None:
            self.result.prompt_tokens += usage.prompt_tokens
            self.result.completion_tokens += usage.completion_tokens
            await self.events.emit(
                "usage",
                step=step,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                provider=answered.provider,
                model=answered.model,
            )
        if reason == "cancelled":
            raise GenerationCancelled("The run was stopped.")
        tool_calls = tuple(
            ToolCall(id=c["id"] or f"call_{step}_{i}", name=c["name"], arguments=c["arguments"])
            for i, c in sorted(calls.items())
        )
        return "".join(parts), tool_calls


def _chain_member(call: ModelCall, position: int, current: ModelCall) -> ModelCall:
    """The call relabelled as the chain member at ``position`` (1: the first fallback);
    ``current`` past the last known label (a provider that falls back on its own)."""
    if position > len(call.fallbacks):
        return current
    provider, model = call.fallbacks[position - 1]
    return dataclasses.replace(call, provider=provider, model=model)


def _check_json_output(text: str, schema: dict[str, Any]) -> None:
    try:
        jsonschema.validate(json.loads(text), schema)
    except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
        raise ModelOutputInvalid(
            f"The answer does not match the agent's output schema: {str(exc).splitlines()[0]}"
        ) from None


class Runner:
    """Starts runs with a tool registry and hooks shared by all of them."""

    def __init__(self, tools: ToolRegistry, hooks: Hooks | None = None) -> None:
        self.tools = tools
        self.hooks = hooks or Hooks()

    def start(self, spec: RunSpec, finish: Finisher | None = None) -> Run:
        """Start a turn in the background and return it; follow ``run.events``."""
        run = Run(spec, self.hooks, self.tools)
        run.task = asyncio.create_task(run.main(finish), name=f"run-{spec.run_id}")
        return run
