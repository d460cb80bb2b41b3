"""Conversations: a user's messages with an agent, their feedback, titles and search.

Privacy: a conversation is readable by its owner only. Administrators cannot read other
users' conversations either (they manage accounts and agents, not what people asked), and
auditors see that runs happened in the audit log, never their content. Search covers only the
caller's own conversations and matches with bound ``LIKE`` patterns (user text is escaped and
never becomes SQL).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from appliance.agents.models import AgentVersion, Conversation, Feedback, Message
from appliance.errors import InvalidRequest, NotFound
from appliance.identity.acl import AclService
from appliance.identity.models import User
from appliance.store.database import Database
from appliance.store.schema import utcnow

ROLES = frozenset({"system", "user", "assistant", "tool"})
MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "tool_call_id", "citations", "usage"})
MAX_CONTENT = 1_000_000
MAX_TITLE = 200
MAX_COMMENT = 2000
MAX_QUERY = 200


def conversation_dict(conv: Conversation) -> dict[str, Any]:
    """A conversation's header, JSON-ready."""
    return {
        "id": conv.id,
        "agent_id": conv.agent_id,
        "agent_version": conv.agent_version,
        "title": conv.title,
        "created_at": _iso(conv.created_at),
        "updated_at": _iso(conv.updated_at),
    }


def message_dict(msg: Message, feedback: Feedback | None = None) -> dict[str, Any]:
    """A message, JSON-ready (JSON columns decoded; the caller's feedback if any)."""
    return {
        "id": msg.id,
        "seq": msg.seq,
        "role": msg.role,
        "content": msg.content,
        "tool_calls": _load(msg.tool_calls),
        "tool_call_id": msg.tool_call_id,
        "citations": _load(msg.citations),
        "usage": _load(msg.usage),
        "run_id": msg.run_id,
        "created_at": _iso(msg.created_at),
        "feedback": None
        if feedback is None
        else {"thumbs": feedback.thumbs, "comment": feedback.comment},
    }


class ConversationService:
    """Conversations of one user with agents (owner-only access)."""

    def __init__(self, db: Database, acl: AclService) -> None:
        self.db = db
        self.acl = acl

    def create(
        self, user: User, agent_id: str, version: int, title: str | None = None
    ) -> dict[str, Any]:
        """Start a conversation with version ``version`` of an agent ``user`` may use."""
        self.acl.check(user, "agent", agent_id, "use")
        clean = None if title is None else _title(title)
        now = utcnow()
        with self.db.write() as session:
            if session.get(AgentVersion, (agent_id, version)) is None:
                raise NotFound(f"This agent has no version {version}.")
            conv = Conversation(
                id=uuid4().hex,
                user_id=user.id,
                agent_id=agent_id,
                agent_version=version,
                title=clean,
                created_at=now,
                updated_at=now,
            )
            session.add(conv)
        return conversation_dict(conv)

    def list_conversations(
        self, user: User, agent_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """The caller's conversations, most recent first."""
        query = select(Conversation).where(Conversation.user_id == user.id)
        if agent_id is not None:
            query = query.where(Conversation.agent_id == agent_id)
        query = query.order_by(Conversation.updated_at.desc(), Conversation.id)
        with self.db.read() as session:
            rows = session.scalars(query.limit(limit).offset(offset)).all()
        return [conversation_dict(c) for c in rows]

    def get(self, user: User, conversation_id: str) -> dict[str, Any]:
        """One of the caller's conversations (anyone else's answers 404, admins' included)."""
        with self.db.read() as session:
            return conversation_dict(_own(session, user, conversation_id))

    def messages(self, user: User, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's messages in order, each with the caller's feedback."""
        with self.db.read() as session:
            _own(session, user, conversation_id)
            rows = session.execute(
                select(Message, Feedback)
                .outerjoin(
                    Feedback, (Feedback.message_id == Message.id) & (Feedback.user_id == user.id)
                )
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.seq)
            ).all()
        return [message_dict(m, f) for m, f in rows]

    def append(
        self,
        user: User,
        conversation_id: str,
        messages: Sequence[dict[str, Any]],
        run_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Append one whole turn in one write transaction: every message is stored, or (on any
        invalid message or failure) none is."""
        if not messages:
            raise InvalidRequest("A turn has at least one message.")
        if run_id is not None and not (isinstance(run_id, str) and 0 < len(run_id) <= 64):
            raise InvalidRequest("run_id is a string of 1 to 64 characters.")
        with self.db.write() as session:
            conv = _own(session, user, conversation_id)
            last = session.scalar(
                select(func.max(Message.seq)).where(Message.conversation_id == conversation_id)
            )
            seq = int(last or 0)
            now = utcnow()
            stored = []
            for index, raw in enumerate(messages):
                seq += 1
                row = _message(raw, index, conversation_id, seq, run_id, now)
                session.add(row)
                session.flush()
                stored.append(row)
            conv.updated_at = now
        return [message_dict(m) for m in stored]

    def rename(self, user: User, conversation_id: str, title: str) -> dict[str, Any]:
        """Set the title the user chose."""
        clean = _title(title)

        def change(session: Session) -> Conversation:
            conv = _own(session, user, conversation_id)
            conv.title = clean
            conv.updated_at = utcnow()
            return conv

        return conversation_dict(self.db.run_write(change))

    def set_title(self, user: User, conversation_id: str, title: str) -> bool:
        """Set a generated title, unless the conversation already has one (a user's choice
        wins); True when it was set."""
        clean = _title(title)

        def change(session: Session) -> bool:
            conv = _own(session, user, conversation_id)
            if conv.title:
                return False
            conv.title = clean
            return True

        return self.db.run_write(change)

    def delete(self, user: User, conversation_id: str) -> None:
        """Delete the conversation with its messages and their feedback."""

        def change(session: Session) -> None:
            _own(session, user, conversation_id)
            ids = select(Message.id).where(Message.conversation_id == conversation_id)
            session.execute(delete(Feedback).where(Feedback.message_id.in_(ids)))
            session.execute(delete(Message).where(Message.conversation_id == conversation_id))
            session.execute(delete(Conversation).where(Conversation.id == conversation_id))

        self.db.run_write(change)

    def search(self, user: User, q: str, limit: int = 50) -> list[dict[str, Any]]:
        """The caller's conversations whose title or any message contains ``q`` (ASCII
        case-insensitive), most recent first."""
        needle = q.strip().lower()
        if not needle or len(needle) > MAX_QUERY:
            raise InvalidRequest(f"A search is 1 to {MAX_QUERY} characters.")
        in_messages = select(Message.conversation_id).where(
            func.lower(Message.content).contains(needle, autoescape=True)
        )
        query = (
            select(Conversation)
            .where(
                Conversation.user_id == user.id,
                or_(
                    func.lower(Conversation.title).contains(needle, autoescape=True),
                    Conversation.id.in_(in_messages),
                ),
            )
            .order_by(Conversation.updated_at.desc(), Conversation.id)
            .limit(limit)
        )
        with self.db.read() as session:
            return [conversation_dict(c) for c in session.scalars(query)]

    def feedback(
        self,
        user: User,
        message_id: int,
        thumbs: int,
        comment: str = "",
        conversation_id: str | None = None,
    ) -> dict[str, Any]:
        """Record (or replace) the caller's thumbs (+1/-1) and comment on an assistant message
        of their own conversation."""
        if isinstance(thumbs, bool) or thumbs not in (1, -1):
            raise InvalidRequest("thumbs is 1 (up) or -1 (down).", field="thumbs")
        if len(comment) > MAX_COMMENT:
            raise InvalidRequest(f"A comment is at most {MAX_COMMENT} characters.")

        def change(session: Session) -> dict[str, Any]:
            msg = session.get(Message, message_id)
            if msg is None or (conversation_id and msg.conversation_id != conversation_id):
                raise NotFound("There is no such message.")
            _own(session, user, msg.conversation_id)
            if msg.role != "assistant":
                raise InvalidRequest("Feedback is given on the assistant's messages.")
            row = session.get(Feedback, (message_id, user.id))
            if row is None:
                row = Feedback(message_id=message_id, user_id=user.id)
                session.add(row)
            row.thumbs = thumbs
            row.comment = comment
            row.created_at = utcnow()
            return {"message_id": message_id, "thumbs": thumbs, "comment": comment}

        return self.db.run_write(change)


def _own(session: Session, user: User, conversation_id: str) -> Conversation:
    conv = session.get(Conversation, conversation_id)
    if conv is None or conv.user_id != user.id:
        raise NotFound("There is no such conversation.")
    return conv


def _title(title: str) -> str:
    clean = " ".join(str(title).split())
    if not clean or len(clean) > MAX_TITLE:
        raise InvalidRequest(f"A title is 1 to {MAX_TITLE} characters.", field="title")
    return clean


def _message(
    raw: Any, index: int, conversation_id: str, seq: int, run_id: str | None, now: datetime
) -> Message:
    """Validate one message of a turn (errors name its position)."""
    where = f"messages.{index}"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} is not an object.", field=where)
    unknown = sorted(set(raw) - MESSAGE_FIELDS)
    if unknown:
        raise InvalidRequest(f"{where} has unknown field {unknown[0]!r}.", field=where)
    role = raw.get("role")
    if role not in ROLES:
        raise InvalidRequest(f"{where}.role is one of {', '.join(sorted(ROLES))}.", field=where)
    content = raw.get("content") or ""
    if not isinstance(content, str) or len(content) > MAX_CONTENT:
        raise InvalidRequest(f"{where}.content is text of at most {MAX_CONTENT}.", field=where)
    tool_call_id = raw.get("tool_call_id")
    if tool_call_id is not None and not (
        isinstance(tool_call_id, str) and len(tool_call_id) <= 100
    ):
        raise InvalidRequest(f"{where}.tool_call_id is a short string.", field=where)
    return Message(
        conversation_id=conversation_id,
        seq=seq,
        role=role,
        content=content,
        tool_calls=_json_field(raw, "tool_calls", list, where),
        tool_call_id=tool_call_id,
        citations=_json_field(raw, "citations", list, where),
        usage=_json_field(raw, "usage", dict, where),
        run_id=run_id,
        created_at=now,
    )


def _json_field(raw: dict[str, Any], name: str, kind: type, where: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, kind):
        raise InvalidRequest(f"{where}.{name} is a JSON {kind.__name__}.", field=where)
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"{where}.{name} is not JSON data.", field=where) from exc


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _iso(moment: datetime) -> str:
    return moment.isoformat()
