"""Every hook of the contract is documented, and the chain composes hooks as documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from engine.errors import EngineError, GenerationFailed
from engine.hooks import (
    Decision,
    HookChain,
    HookDenied,
    Hooks,
    ModelCall,
    Reservation,
    ToolDecision,
    ToolExecution,
)
from engine.providers.base import Usage

DOCS = Path(__file__).resolve().parents[2] / "docs" / "engine.md"
HOOKS = [name for name, _ in inspect.getmembers(Hooks, inspect.iscoroutinefunction)]


def test_the_contract_has_the_five_hooks() -> None:
    assert sorted(HOOKS) == sorted(
        [
            "before_model_call",
            "after_model_call",
            "before_tool_execution",
            "after_tool_execution",
            "on_run_event",
        ]
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    assert f"`{hook}(" in DOCS.read_text("utf-8")


CALL = ModelCall("r", 1, "user:1", "a", "local", "m", 10, 20)
EXECUTION = ToolExecution("r", 1, "user:1", "a", "c1", "calculator", {})


class Reserving(Hooks):
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    async def before_model_call(self, call: ModelCall) -> Reservation:
        self.log.append(f"reserve {self.name}")
        return Reservation(self.name, 5.0)

    async def after_model_call(
        self,
        call: ModelCall,
        usage: Usage | None,
        reservation: Reservation | None,
        error: EngineError | None,
    ) -> None:
        self.log.append(
            f"settle {self.name} {reservation.id if reservation else None} {usage is not None}"
        )


class Denying(Hooks):
    async def before_model_call(self, call: ModelCall) -> Reservation:
        raise HookDenied("budget_exceeded", "Over budget.", http_status=402)

    async def before_tool_execution(self, execution: ToolExecution) -> ToolDecision:
        return ToolDecision(Decision.DENY, "no")


async def test_a_chain_bundles_reservations_and_settles_each_part() -> None:
    log: list[str] = []
    chain = HookChain([Reserving(log, "a"), Reserving(log, "b")])
    reservation = await chain.before_model_call(CALL)
    assert reservation is not None and reservation.amount == 10.0
    await chain.after_model_call(CALL, Usage(1, 2), reservation, None)
    assert log == ["reserve a", "reserve b", "settle a a True", "settle b b True"]


async def test_a_denial_releases_what_earlier_hooks_reserved() -> None:
    log: list[str] = []
    chain = HookChain([Reserving(log, "a"), Denying(), Reserving(log, "c")])
    with pytest.raises(HookDenied) as info:
        await chain.before_model_call(CALL)
    assert info.value.reason_code == "budget_exceeded" and info.value.http_status == 402
    assert log == ["reserve a", "settle a a False"]


async def test_the_first_non_allow_tool_decision_wins() -> None:
    chain = HookChain([Hooks(), Denying(), Hooks()])
    decision = await chain.before_tool_execution(EXECUTION)
    assert decision.decision is Decision.DENY and decision.reason == "no"
    assert (await HookChain([Hooks()]).before_tool_execution(EXECUTION)).decision is Decision.ALLOW


async def test_without_reservations_the_chain_reserves_nothing() -> None:
    chain = HookChain([Hooks(), Hooks()])
    assert await chain.before_model_call(CALL) is None
    await chain.after_model_call(CALL, None, None, GenerationFailed())
