"""The credit meter as an engine hook: reserve before each model call, settle after it.

``before_model_call`` reserves the worst case (prompt tokens + max output tokens at the model's
price, or at the dearest model of a fallback chain) in one immediate write transaction and
refuses the call with a 402 ``credits_exhausted`` or ``budget_exceeded`` denial, or 403
``license_read_only`` once the license is read-only.
``after_model_call`` settles the real usage at the price of the model that answered (the engine
names it in the call it passes after a fallback) and releases the rest, or releases everything
when the call produced no usage. Tool executions are charged per second afterwards. Database work
runs in a worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import asyncio

from appliance.credits.errors import BudgetExceeded, CreditsExhausted
from appliance.credits.meter import CreditMeter
from appliance.licensing.errors import LicenseReadOnly
from engine.errors import EngineError
from engine.hooks import HookDenied, Hooks, ModelCall, Reservation, ToolExecution
from engine.providers.base import Usage
from engine.tools.base import ToolOutput

DENIALS = (CreditsExhausted, BudgetExceeded, LicenseReadOnly)


class CreditsHook(Hooks):
    """Meters model calls (and tool time) against ``meter``."""

    def __init__(self, meter: CreditMeter) -> None:
        self.meter = meter

    def _reserve(self, call: ModelCall) -> Reservation | None:
        self.meter.licensing.maybe_check()
        hold = self.meter.reserve(
            principal=call.principal,
            provider=call.provider,
            model=call.model,
            prompt_tokens=call.prompt_tokens,
            max_tokens=call.max_tokens,
            agent_id=call.agent_id,
            run_id=call.run_id,
            step=call.step,
            fallbacks=call.fallbacks,
        )
        if hold is None:
            return None
        return Reservation(
            id=hold.id, amount=hold.amount / 1_000_000, detail={"micro": hold.amount}
        )

    async def before_model_call(self, call: ModelCall) -> Reservation | None:
        try:
            return await asyncio.to_thread(self._reserve, call)
        except DENIALS as exc:
            raise HookDenied(
                exc.code, exc.message, http_status=exc.http_status, **exc.context
            ) from exc

    async def after_model_call(
        self,
        call: ModelCall,
        usage: Usage | None,
        reservation: Reservation | None,
        error: EngineError | None,
    ) -> None:
        if reservation is None:
            return
        if usage is None:
            await asyncio.to_thread(self.meter.release, reservation.id)
        else:
            await asyncio.to_thread(
                self.meter.settle,
                reservation.id,
                usage.prompt_tokens,
                usage.completion_tokens,
                (call.provider, call.model),
            )

    async def after_tool_execution(
        self, execution: ToolExecution, output: ToolOutput, duration_s: float
    ) -> None:
        await asyncio.to_thread(
            self.meter.charge_tool,
            execution.principal,
            execution.tool,
            duration_s,
            execution.agent_id,
        )
