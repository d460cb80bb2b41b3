"""Running the tools a model asked for, inside a run: validation, hooks, timeouts, events."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError, ToolArgumentsInvalid, ToolFailed, UnknownTool
from engine.hooks import Decision, ToolExecution
from engine.providers.base import ChatMessage, ToolCall
from engine.tools.base import ToolContext, ToolOutput, ToolSpec

if TYPE_CHECKING:
    from engine.run.loop import Run

# What the model reads of a tool's output at most (the UI gets the whole ``data``).
MAX_TOOL_CONTENT = 8000


class ToolRunner:
    """Executes one run's tool calls; remembers them to spot a model repeating itself."""

    def __init__(self, run: Run, specs: list[ToolSpec]) -> None:
        self.run = run
        self.enabled = {s.name for s in specs}
        self._seen: set[tuple[str, str]] = set()
        self._repairs = 0

    def seen(self, tool: str, arguments: dict[str, Any]) -> bool:
        """Whether this exact call was already made in this run."""
        return (tool, json.dumps(arguments, sort_keys=True)) in self._seen

    async def run_calls(
        self, step: int, calls: list[ToolCall], repair_allowed: bool
    ) -> list[ChatMessage]:
        """Run ``calls`` concurrently; one ``tool`` message per call, in the calls' order.

        Invalid arguments are answered with an error message the model can correct — once per
        run (``repair_allowed``); a second invalid call ends the turn.
        """
        outputs = await asyncio.gather(*(self._one(step, c, repair_allowed) for c in calls))
        return [
            ChatMessage("tool", _clip(out.content), tool_call_id=call.id)
            for call, out in zip(calls, outputs, strict=True)
        ]

    async def _one(self, step: int, call: ToolCall, repair_allowed: bool) -> ToolOutput:
        run = self.run
        try:
            arguments = self._arguments(call)
        except (ToolArgumentsInvalid, UnknownTool) as exc:
            await run.events.emit(
                "tool_call", id=call.id, name=call.name, arguments=call.arguments, step=step
            )
            if not repair_allowed or self._repairs >= 1:
                raise
            self._repairs += 1
            output = ToolOutput(f"Error: {exc.message} Correct the call.", is_error=True)
            await self._emit_result(call, output, 0.0)
            return output
        self._seen.add((call.name, json.dumps(arguments, sort_keys=True)))
        await run.events.emit(
            "tool_call", id=call.id, name=call.name, arguments=arguments, step=step
        )
        spec = run.spec
        execution = ToolExecution(
            run_id=spec.run_id,
            step=step,
            principal=spec.principal,
            agent_id=spec.agent_id,
            call_id=call.id,
            tool=call.name,
            arguments=arguments,
        )
        started = time.monotonic()
        decision = await run.hooks.before_tool_execution(execution)
        if decision.decision is Decision.ALLOW:
            output = await self._execute(call.name, arguments)
        elif decision.decision is Decision.ASK:
            output = ToolOutput(
                f"Not run: this tool needs a person's approval ({decision.reason}).",
                is_error=True,
                audit={"decision": "ask"},
            )
        else:
            output = ToolOutput(
                f"Not run: {decision.reason or 'denied by policy'}.",
                is_error=True,
                audit={"decision": "deny"},
            )
        duration = time.monotonic() - started
        await run.hooks.after_tool_execution(execution, output, duration)
        await self._emit_result(call, output, duration)
        for citation in output.citations:
            run.result.citations.append(citation)
            await run.events.emit("citation", tool_call_id=call.id, **asdict(citation))
        return output

    def _arguments(self, call: ToolCall) -> dict[str, Any]:
        if call.name not in self.enabled:
            raise UnknownTool(
                f"The agent has no tool named {call.name!r}; it may use: "
                f"{', '.join(sorted(self.enabled))}.",
                tool=call.name,
            )
        try:
            value = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ToolArgumentsInvalid(
                f"Arguments for {call.name!r} are not valid JSON ({exc.msg}).", tool=call.name
            ) from None
        return self.run.tools.validate(call.name, value)

    async def _execute(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        run = self.run
        setting = next(t for t in run.spec.definition.tools if t.name == name)
        timeout = float(
            setting.settings.get("timeout_s", run.spec.definition.limits.tool_timeout_s)
        )
        context = ToolContext(
            run_id=run.spec.run_id,
            principal=run.spec.principal,
            workspace=run.spec.workspace,
            settings=dict(setting.settings),
            network_allowlist=run.spec.tool_network_allowlist,
            cancel=run.cancel_event,
        )
        tool = run.tools.get(name)
        try:
            return await asyncio.wait_for(tool.run(arguments, context), timeout)
        except TimeoutError:
            return ToolOutput(
                f"Error: {name} did not finish within {timeout:g} s and was stopped.",
                is_error=True,
                audit={"limit_hit": "tool_timeout"},
            )
        except EngineError:
            raise
        except Exception as exc:
            raise ToolFailed(
                f"The tool {name!r} failed ({exc.__class__.__name__}: {exc}).", tool=name
            ) from exc

    async def _emit_result(self, call: ToolCall, output: ToolOutput, duration: float) -> None:
        await self.run.events.emit(
            "tool_result",
            id=call.id,
            name=call.name,
            content=output.content,
            is_error=output.is_error,
            data=output.data,
            duration_s=round(duration, 4),
        )


def _clip(content: str) -> str:
    if len(content) <= MAX_TOOL_CONTENT:
        return content
    return (
        content[:MAX_TOOL_CONTENT] + f"\n[… {len(content) - MAX_TOOL_CONTENT} more characters cut]"
    )
