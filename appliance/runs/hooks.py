"""The appliance's built-in engine hooks: tool executions go to the audit log."""

from __future__ import annotations

import asyncio
import hashlib
import json

from appliance.audit import AuditLog
from engine.hooks import Hooks, ToolExecution
from engine.tools.base import ToolOutput


class AuditHook(Hooks):
    """Records every tool execution (never its content: a digest of the arguments, the policy
    hash, duration, exit and limit hit that the tool reports)."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    async def after_tool_execution(
        self, execution: ToolExecution, output: ToolOutput, duration_s: float
    ) -> None:
        digest = hashlib.sha256(
            json.dumps(execution.arguments, sort_keys=True).encode("utf-8")
        ).hexdigest()
        details = {
            "tool": execution.tool,
            "run_id": execution.run_id,
            "call_id": execution.call_id,
            "arguments_sha256": digest,
            "duration_s": round(duration_s, 4),
            "is_error": output.is_error,
            **{k: v for k, v in output.audit.items() if isinstance(v, str | int | float | bool)},
        }
        await asyncio.to_thread(
            self.audit.record,
            action="tool.execute",
            actor=execution.principal,
            target=f"agent:{execution.agent_id}" if execution.agent_id else None,
            outcome="failure" if output.is_error else "success",
            details=details,
        )
