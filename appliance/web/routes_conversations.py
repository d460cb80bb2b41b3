"""/api/v1/conversations: the caller's own conversations, their messages and feedback.

Only the owner reads a conversation — administrators included (privacy, docs/agents.md) —
and auditors have no access to conversation content at all. Another user's conversation
answers 404. Conversations are started by the run API.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool as call
from pydantic import BaseModel, Field

from appliance.identity.models import Role
from appliance.web.auth import Principal, ServicesDep, authorize

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])
Chatter = Annotated[Principal, Depends(authorize((Role.ADMIN, Role.BUILDER, Role.MEMBER), "chat"))]


class RenameBody(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class FeedbackBody(BaseModel):
    thumbs: int
    comment: str = Field("", max_length=2000)


@router.get("")
async def list_conversations(
    principal: Chatter,
    services: ServicesDep,
    q: str | None = Query(None, max_length=200),
    agent_id: str | None = Query(None, max_length=32),
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> list[dict[str, Any]]:
    """The caller's conversations, newest first; ``?q=`` searches titles and message text."""
    if q is not None:
        return await call(services.conversations.search, principal.user, q, limit)
    return await call(
        services.conversations.list_conversations, principal.user, agent_id, limit, offset
    )


@router.get("/{conversation_id}")
async def get_conversation(
    conversation_id: str, principal: Chatter, services: ServicesDep
) -> dict[str, Any]:
    """The conversation with its messages (and the caller's feedback on each)."""
    conversation = await call(services.conversations.get, principal.user, conversation_id)
    messages = await call(services.conversations.messages, principal.user, conversation_id)
    return {**conversation, "messages": messages}


@router.patch("/{conversation_id}")
async def rename_conversation(
    conversation_id: str, body: RenameBody, principal: Chatter, services: ServicesDep
) -> dict[str, Any]:
    """Rename the conversation."""
    return await call(services.conversations.rename, principal.user, conversation_id, body.title)


@router.delete("/{conversation_id}", status_code=204)
async def delete_conversation(
    conversation_id: str, principal: Chatter, services: ServicesDep
) -> Response:
    """Delete the conversation, its messages and their feedback."""
    await call(services.conversations.delete, principal.user, conversation_id)
    return Response(status_code=204)


@router.post("/{conversation_id}/messages/{message_id}/feedback")
async def give_feedback(
    conversation_id: str,
    message_id: int,
    body: FeedbackBody,
    principal: Chatter,
    services: ServicesDep,
) -> dict[str, Any]:
    """Thumbs up (1) or down (-1), with an optional comment, on an assistant message."""
    return await call(
        lambda: services.conversations.feedback(
            principal.user, message_id, body.thumbs, body.comment, conversation_id
        )
    )
