"""The hooks contract: how the engine asks permission and reports what it did.

The engine knows nothing of users, credits or audit; the appliance supplies a :class:`Hooks`
implementation (several, combined by :class:`HookChain`) and the run loop calls it at five
points. Built-in behaviour — credits, ACL checks on tools, audit records — is implemented as
hooks too, so there is one way in. Every hook is documented in docs/engine.md (a test checks).

=========================  ====================================================================
hook                       when, and what it may do
=========================  ====================================================================
``before_model_call``      before each model call; returns a :class:`Reservation` (e.g. the
                           worst-case credits set aside) or ``None``; raises :class:`HookDenied`
                           to refuse the call (the run ends with an ``error`` event carrying
                           the denial's code, e.g. ``credits_exhausted``).
``after_model_call``       after each model call, successful or not, with the real ``Usage``
                           (``None`` if the call failed before usage was known) and the
                           reservation made for it: settle or release. Its ``ModelCall``
                           names the provider and model that answered (a fallback's).
``before_tool_execution``  before a tool runs; returns a :class:`ToolDecision` — allow, deny
                           (the model is told why) or ask (the run pauses for the user).
``after_tool_execution``   after a tool ran (or was denied): the output and its duration; for
                           audit records.
``on_run_event``           every event the run emits (tokens, tool calls, usage, errors, done).
=========================  ====================================================================

Hooks run on the event loop: an implementation that does blocking work (database writes) must
hand it to a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError
from engine.providers.base import Usage
from engine.tools.base import ToolOutput


class HookDenied(EngineError):
    """A hook refused an action. ``reason_code`` is the hook's own stable code (e.g.
    ``credits_exhausted``, see :func:`error_code`); the appliance maps it to its HTTP status
    and message; ``http_status`` is the status the hook suggests."""

    code = "denied"

    def __init__(
        self, reason_code: str, message: str, http_status: int = 403, **context: Any
    ) -> None:
        super().__init__(message, **context)
        self.reason_code = reason_code
        self.http_status = http_status


def error_code(exc: EngineError) -> str:
    """The stable code an error is reported with: a denial's own code, else the class code."""
    return exc.reason_code if isinstance(exc, HookDenied) else exc.code


@dataclass(frozen=True)
class ModelCall:
    """One call to a model within a run."""

    run_id: str
    step: int
    principal: str
    agent_id: str | None
    provider: str
    model: str
    prompt_tokens: int
    max_tokens: int
    # The (provider, model) pairs that answer instead when the one above fails (a fallback
    # chain, in order): a hook that reserves should cover the dearest of them. After a
    # fallback, ``after_model_call`` receives the call with the provider that answered.
    fallbacks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Reservation:
    """What a ``before_model_call`` hook set aside for a call (opaque to the engine)."""

    id: str
    amount: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolExecution:
    """One tool call the model asked for."""

    run_id: str
    step: int
    principal: str
    agent_id: str | None
    call_id: str
    tool: str
    arguments: dict[str, Any]


class Decision(enum.StrEnum):
    """What a ``before_tool_execution`` hook decided."""

    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


@dataclass(frozen=True)
class ToolDecision:
    """A decision and, for deny/ask, the reason the model or user is shown."""

    decision: Decision = Decision.ALLOW
    reason: str = ""


ALLOW = ToolDecision()


@dataclass(frozen=True)
class RunEvent:
    """One event of a run, as streamed to the client: ``kind`` is one of ``token``,
    ``tool_call``, ``tool_result``, ``citation``, ``usage``, ``fallback``, ``queue_position``,
    ``error``, ``done``; ``seq`` numbers the events of a run from 1 (for resume)."""

    kind: str
    data: dict[str, Any]
    seq: int = 0


class Hooks:
    """The contract, with the neutral behaviour as defaults: subclass and override what you need."""

    async def before_model_call(self, call: ModelCall) -> Reservation | None:
        """Reserve for, or refuse (raise :class:`HookDenied`), a model call."""
        return None

    async def after_model_call(
        self,
        call: ModelCall,
        usage: Usage | None,
        reservation: Reservation | None,
        error: EngineError | None,
    ) -> None:
        """Settle (``usage`` known) or release (``usage`` None) what was reserved."""
        return None

    async def before_tool_execution(self, execution: ToolExecution) -> ToolDecision:
        """Allow, deny or ask before a tool runs."""
        return ALLOW

    async def after_tool_execution(
        self, execution: ToolExecution, output: ToolOutput, duration_s: float
    ) -> None:
        """Record a tool execution (audit)."""
        return None

    async def on_run_event(self, event: RunEvent) -> None:
        """Observe every run event."""
        return None


class HookChain(Hooks):
    """Several hooks called in order, as one.

    ``before_model_call``: each hook may reserve; if a later hook denies, the reservations of
    the earlier ones are released (``after_model_call`` with no usage) before the denial is
    raised. The chain's reservation bundles the parts in ``detail["parts"]``.
    ``before_tool_execution``: the first non-allow decision wins.
    """

    def __init__(self, hooks: list[Hooks] | None = None) -> None:
        self.hooks: list[Hooks] = list(hooks or [])

    async def before_model_call(self, call: ModelCall) -> Reservation | None:
        parts: list[tuple[Hooks, Reservation | None]] = []
        for hook in self.hooks:
            try:
                parts.append((hook, await hook.before_model_call(call)))
            except HookDenied as denied:
                for earlier, reservation in reversed(parts):
                    await earlier.after_model_call(call, None, reservation, denied)
                raise
        if not any(r for _, r in parts):
            return None
        return Reservation(
            id=call.run_id,
            amount=sum(r.amount for _, r in parts if r is not None),
            detail={"parts": [r for _, r in parts]},
        )

    async def after_model_call(
        self,
        call: ModelCall,
        usage: Usage | None,
        reservation: Reservation | None,
        error: EngineError | None,
    ) -> None:
        parts = (
            reservation.detail.get("parts", [])
            if reservation is not None
            else [None] * len(self.hooks)
        )
        for hook, part in zip(self.hooks, parts, strict=False):
            await hook.after_model_call(call, usage, part, error)

    async def before_tool_execution(self, execution: ToolExecution) -> ToolDecision:
        for hook in self.hooks:
            decision = await hook.before_tool_execution(execution)
            if decision.decision is not Decision.ALLOW:
                return decision
        return ALLOW

    async def after_tool_execution(
        self, execution: ToolExecution, output: ToolOutput, duration_s: float
    ) -> None:
        for hook in self.hooks:
            await hook.after_tool_execution(execution, output, duration_s)

    async def on_run_event(self, event: RunEvent) -> None:
        for hook in self.hooks:
            await hook.on_run_event(event)
