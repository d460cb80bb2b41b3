"""The run loop: one user turn of an agent, with tools, hooks and streamed events."""

from engine.run.context import Fit, TokenBudget
from engine.run.events import EventLog
from engine.run.loop import Run, Runner, RunSpec, TurnResult

__all__ = ["EventLog", "Fit", "Run", "RunSpec", "Runner", "TokenBudget", "TurnResult"]
