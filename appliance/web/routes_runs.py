"""/api/v1/agents/{id}/runs and /api/v1/runs: start a turn and stream it as server-sent events.

A run streams ``token``, ``tool_call``, ``tool_result``, ``citation``, ``usage``, ``fallback``,
``queue_position``, ``error`` and ``done`` events; each carries its sequence number as the SSE
``id``, so a client that lost the connection resumes with ``Last-Event-ID`` (or ``?after=``).
A run refused before it produced anything (no credits, a full queue, an unreachable model)
answers with a problem+json and the right status instead of a stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from appliance.identity.models import Role
from appliance.runs import RunService
from appliance.web.auth import Principal, authorize
from appliance.web.problems import PROBLEM
from engine.errors import EngineError, QueueFull
from engine.hooks import HookDenied, RunEvent, error_code
from engine.run import Run

router = APIRouter(tags=["runs"])
Chatter = Annotated[Principal, Depends(authorize((Role.ADMIN, Role.BUILDER, Role.MEMBER), "chat"))]

# How often a stream sends what has accumulated (tokens arrive every ~10 ms locally).
COALESCE_S = 0.02
# HTTP status of a run refused before its first event, by engine error code.
REFUSED_STATUS = {
    "queue_full": 429,
    "provider_unavailable": 503,
    "provider_rate_limited": 429,
    "worker_crashed": 503,
    "context_overflow": 422,
    "invalid_chat_request": 422,
}


async def get_runs(request: Request) -> RunService:
    """The unsealed appliance's run service."""
    runs: RunService = request.app.state.appliance.runs
    runs.hub.start()  # idle unloading runs on this event loop (idempotent)
    return runs


RunsDep = Annotated[RunService, Depends(get_runs)]


class RunBody(BaseModel):
    # Emptiness is checked after the agent's ACL, so a caller learns nothing of an agent they
    # may not use from a malformed body.
    input: str = Field("", max_length=32_000)
    conversation_id: str | None = Field(None, max_length=64)


def _event(event: Any) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps(event.data, ensure_ascii=False, default=str),
        event=event.kind,
        id=str(event.seq),
    )


async def _stream(run: Run, after: int) -> AsyncIterator[ServerSentEvent]:
    """The run's events after ``after``, with the tokens that arrived together sent as one
    ``token`` event (its id is the last one's seq, so resuming after it loses nothing).

    Sending at most every ``COALESCE_S`` keeps the per-token work of the server (which shares
    the CPU with llama.cpp) low; a token never waits longer than that.
    """
    log = run.events
    position = max(0, after)
    while True:
        await log.wait_beyond(position)
        ready = log.events[position:]
        if not ready:
            return  # closed, and everything was sent
        position += len(ready)
        for group in _merged(ready):
            yield _event(group)
            if group.kind == "done":
                return
        await asyncio.sleep(COALESCE_S)


def _merged(events: list[RunEvent]) -> list[RunEvent]:
    """Consecutive ``token`` events as one (text joined, the last one's seq)."""
    out: list[RunEvent] = []
    for event in events:
        if event.kind == "token" and out and out[-1].kind == "token":
            text = out[-1].data["text"] + event.data["text"]
            out[-1] = RunEvent("token", {"text": text}, event.seq)
        else:
            out.append(event)
    return out


def _refusal(run: Run, path: str) -> JSONResponse | None:
    """A problem response when the run failed before producing anything but its error."""
    events = run.events.events
    if not events or events[0].kind != "error" or run.error is None:
        return None
    exc: EngineError = run.error
    code = error_code(exc)
    status = exc.http_status if isinstance(exc, HookDenied) else REFUSED_STATUS.get(code, 502)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QueueFull) else {}
    body = {
        "type": "about:blank",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": exc.message,
        "code": code,
        "instance": path,
        "run_id": run.spec.run_id,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


@router.post("/api/v1/agents/{agent_id}/runs", response_model=None)
async def start_run(
    agent_id: str,
    body: RunBody,
    request: Request,
    principal: Chatter,
    runs: RunsDep,
) -> EventSourceResponse | JSONResponse:
    """Run one turn of an agent the caller may use; the answer streams as SSE."""
    run = await runs.start(principal.user, agent_id, body.input, body.conversation_id)
    # Wait for the first event: a refusal (credits, queue, model down) becomes an HTTP error.
    follower = run.events.follow()
    first = await anext(follower)
    await follower.aclose()
    if first.kind == "error":
        await run.wait()
        refused = _refusal(run, request.url.path)
        if refused is not None:
            return refused
    return EventSourceResponse(
        _stream(run, 0), headers={"X-Run-Id": run.spec.run_id, "Cache-Control": "no-store"}
    )


@router.get("/api/v1/runs/{run_id}/events")
async def follow_run(
    run_id: str,
    principal: Chatter,
    runs: RunsDep,
    after: int | None = Query(None, ge=0),
    last_event_id: str | None = Header(None, alias="Last-Event-ID", max_length=20),
) -> EventSourceResponse:
    """The run's events after ``Last-Event-ID`` (or ``?after=``): resume a dropped stream."""
    run = runs.get(principal.user, run_id)
    start = after if after is not None else _last_id(last_event_id)
    return EventSourceResponse(_stream(run, start), headers={"Cache-Control": "no-store"})


@router.get("/api/v1/runs/{run_id}")
async def run_status(run_id: str, principal: Chatter, runs: RunsDep) -> dict[str, Any]:
    """Whether the run is still going, how far it got, and how it ended."""
    run = runs.get(principal.user, run_id)
    events = run.events.events
    done = run.events.closed
    return {
        "run_id": run_id,
        "agent_id": run.spec.agent_id,
        "state": "done" if done else "running",
        "events": len(events),
        "finish": events[-1].data.get("finish") if done else None,
        "conversation_id": events[-1].data.get("conversation_id") if done else None,
    }


@router.post("/api/v1/runs/{run_id}/cancel", status_code=202)
async def cancel_run(run_id: str, principal: Chatter, runs: RunsDep) -> Response:
    """Stop the run (generation stops within a second; nothing of the turn is stored)."""
    runs.cancel(principal.user, run_id)
    return Response(status_code=202)


def _last_id(value: str | None) -> int:
    if value is None or not value.strip().isdigit():
        return 0
    return int(value)
