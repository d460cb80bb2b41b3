"""Agent runs for users: ACL, conversation history, the engine run, persistence, resume.

A run starts only for a user with ``use`` on the agent. Its events stay available for
``run_retention_s`` after it ends, so a client that lost its connection resumes from the last
event id it saw. A successful turn is stored (the conversation created if new, and every message
of the turn) in one transaction; a failed or cancelled turn stores nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from appliance.errors import InvalidRequest, NotFound
from appliance.home import Home
from appliance.identity.models import User
from appliance.licensing.errors import FeatureNotLicensed
from appliance.licensing.features import MCP, REMOTE_PROVIDERS
from appliance.licensing.service import LicenseStatus
from appliance.mcp import McpService
from appliance.runs.hooks import AuditHook
from appliance.runs.hub import ModelHub
from appliance.runs.tools import default_tools, mcp_launcher
from appliance.services import Services
from appliance.settings import EnclaveSettings
from engine.agents import AgentDefinition, ModelChoice
from engine.hooks import HookChain, Hooks
from engine.providers.base import ChatMessage, Provider, ToolCall
from engine.run import Run, Runner, RunSpec, TurnResult
from engine.tools.base import Tool
from engine.tools.mcp import SEPARATOR

log = structlog.get_logger(__name__)

MAX_INPUT_CHARS = 32_000


@dataclass
class _Entry:
    run: Run
    user_id: int
    ended_at: float | None = None


class RunService:
    """Starts, follows and cancels agent runs."""

    def __init__(
        self,
        services: Services,
        hub: ModelHub,
        runner: Runner,
        settings: EnclaveSettings,
        home: Home,
        mcp: McpService,
    ) -> None:
        self.services = services
        self.mcp = mcp
        self.hub = hub
        self.runner = runner
        self.settings = settings
        self.home = home
        self._runs: dict[str, _Entry] = {}
        # Tools built per run for the user (the knowledge_search tool, bound to their ACL);
        # set by the appliance, which owns the knowledge runtime.
        self.user_tools: Callable[[User, AgentDefinition], list[Tool]] | None = None

    async def start(
        self, user: User, agent_id: str, text: str, conversation_id: str | None = None
    ) -> Run:
        """Start a turn of ``agent_id`` for ``user``; returns at once with the running turn."""
        self._prune()
        services = self.services
        definition, version = await asyncio.to_thread(
            services.agents.active_definition, user, agent_id
        )
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest("The input is empty; type a message.", field="input")
        if len(text) > MAX_INPUT_CHARS:
            raise InvalidRequest(
                f"The input is {len(text)} characters; the limit is {MAX_INPUT_CHARS}.",
                field="input",
            )
        history: list[ChatMessage] = []
        if conversation_id is not None:
            conversation = await asyncio.to_thread(
                services.conversations.get, user, conversation_id
            )
            if conversation["agent_id"] != agent_id:
                raise InvalidRequest(
                    "This conversation belongs to another agent.", field="conversation_id"
                )
            stored = await asyncio.to_thread(services.conversations.messages, user, conversation_id)
            history = [m for m in (_chat_message(s) for s in stored) if m is not None]
        # A downgrade makes what the tier lacks read-only: runs use neither remote models nor
        # MCP tools it does not include (knowledge search only reads, and stays).
        status = await asyncio.to_thread(services.metering.license.status)
        mcp_names = [name for name in definition.tool_names() if SEPARATOR in name]
        if mcp_names and not status.has_feature(MCP):
            raise FeatureNotLicensed(
                f"This agent uses MCP tools ({', '.join(mcp_names[:3])}), which the "
                f"{_tier(status)} license does not include: remove them from the agent, or "
                "import a license that includes `mcp`."
            )
        resolved = await asyncio.to_thread(
            self.hub.resolve,
            definition,
            f"user:{user.id}",
            allow_remote=status.has_feature(REMOTE_PROVIDERS),
        )
        tools = None
        if mcp_names:
            # The agent enables MCP tools: this run sees them next to the built-in ones.
            mcp_tools = await asyncio.to_thread(self.mcp.tools)
            tools = self.runner.tools.extended(list(mcp_tools))
        per_user = (
            await asyncio.to_thread(self.user_tools, user, definition) if self.user_tools else []
        )
        if per_user:
            tools = (tools or self.runner.tools).extended(per_user)
        # An administrator's grant (appliance.agents.tool_network), not part of the definition.
        network = await asyncio.to_thread(services.agents.tool_network.get, agent_id)
        run_id = uuid.uuid4().hex
        workspace = self.home.root / "workspaces" / run_id
        spec = RunSpec(
            run_id=run_id,
            principal=f"user:{user.id}",
            agent_id=agent_id,
            definition=definition,
            provider=resolved.provider,
            user_input=text,
            history=history,
            workspace=workspace,
            provider_label=resolved.provider_label,
            model_label=resolved.model_label,
            fallback_labels=resolved.fallback_labels,
            tools=tools,
            tool_network_allowlist=network,
        )

        async def finish(result: TurnResult) -> dict[str, Any]:
            conv_id = await asyncio.to_thread(
                self._store, user, agent_id, version, conversation_id, text, result, run_id
            )
            return {"conversation_id": conv_id, "run_id": run_id}

        run = self.runner.start(spec, finish)
        entry = _Entry(run, user.id)
        self._runs[run_id] = entry
        if run.task is not None:
            run.task.add_done_callback(lambda _t: setattr(entry, "ended_at", time.monotonic()))
        log.info("run.started", run_id=run_id, agent_id=agent_id, version=version)
        return run

    def get(self, user: User, run_id: str) -> Run:
        """The caller's run (anyone else's answers 404)."""
        entry = self._runs.get(run_id)
        if entry is None or entry.user_id != user.id:
            raise NotFound("No such run (finished runs are kept for a few minutes).")
        return entry.run

    def cancel(self, user: User, run_id: str) -> None:
        """Stop the caller's run."""
        self.get(user, run_id).cancel()

    def active(self) -> int:
        """Runs in progress."""
        return sum(1 for e in self._runs.values() if e.ended_at is None)

    def cancel_all(self) -> None:
        """Ask every run to stop (sealing: the runs end on their own event loop)."""
        for entry in self._runs.values():
            entry.run.cancel()

    async def close(self) -> None:
        """Cancel every run, wait for them to end and close MCP connections (shutdown)."""
        for entry in self._runs.values():
            entry.run.cancel()
        tasks = [e.run.task for e in self._runs.values() if e.run.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        self._runs.clear()
        await self.mcp.close()

    def _prune(self) -> None:
        cutoff = time.monotonic() - self.settings.run_retention_s
        for run_id, entry in list(self._runs.items()):
            if entry.ended_at is not None and entry.ended_at < cutoff:
                del self._runs[run_id]

    def _store(
        self,
        user: User,
        agent_id: str,
        version: int,
        conversation_id: str | None,
        text: str,
        result: TurnResult,
        run_id: str,
    ) -> str:
        """Create the conversation when new and append the turn — one transaction."""
        conversations = self.services.conversations
        messages = [_stored(m) for m in result.messages]
        final = messages[-1]
        if final["role"] == "assistant":
            final["usage"] = {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "steps": result.steps,
            }
            if result.citations:
                final["citations"] = [c.__dict__ for c in result.citations]
        with self.services.db.write():
            if conversation_id is None:
                title = " ".join(text.split())[:80]
                conversation_id = conversations.create(user, agent_id, version, title)["id"]
            conversations.append(user, conversation_id, messages, run_id=run_id)
        return conversation_id


def _tier(status: LicenseStatus) -> str:
    return status.license.tier if status.license is not None else "current"


def _stored(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _chat_message(stored: dict[str, Any]) -> ChatMessage | None:
    """A stored message as history for the model (system notes are not replayed)."""
    role = stored.get("role")
    if role not in ("user", "assistant", "tool"):
        return None
    calls = tuple(
        ToolCall(str(c.get("id", "")), str(c.get("name", "")), str(c.get("arguments", "")))
        for c in stored.get("tool_calls") or []
    )
    tool_call_id = stored.get("tool_call_id") if role == "tool" else None
    if role == "tool" and not tool_call_id:
        return None
    return ChatMessage(
        role, stored.get("content") or "", tool_calls=calls, tool_call_id=tool_call_id
    )


def build_hub(
    get_services: Callable[[], Services], settings: EnclaveSettings, home: Home
) -> ModelHub:
    """The model hub: local models, and remote endpoints read from the current services."""

    def remote(choice: ModelChoice) -> Provider:
        # An agent names a configured endpoint by its id; the endpoint serves its model.
        return get_services().providers.provider(choice.provider)

    return ModelHub(settings, home, remote=remote)


def build_runs(
    services: Services, settings: EnclaveSettings, home: Home, hub: ModelHub
) -> RunService:
    """The run service: the built-in tools, and the hooks — audit of tool executions, then
    credits (reserve before each model call, settle after)."""
    hooks: list[Hooks] = [AuditHook(services.audit), services.metering.hook()]
    runner = Runner(default_tools(settings, home), HookChain(hooks))
    mcp = McpService(services.db, mcp_launcher(settings, home))
    return RunService(services, hub, runner, settings, home, mcp)
