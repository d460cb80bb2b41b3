"""Tables of agents (with their immutable versions) and of conversations (messages, feedback).

An agent row is the mutable head: owner, which version is active, archived or not. Every save
adds an ``agent_version`` row that is never updated or deleted while the agent exists, so the
history can always be diffed and rolled back. Definitions and message content are stored as
text inside the encrypted database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from appliance.identity.models import UtcDateTime
from appliance.store.schema import Base, utcnow


class Agent(Base):
    """An agent: its owner and the version that runs."""

    __tablename__ = "agent"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # The name of the active version, copied here so lists need not parse documents.
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    active_version: Mapped[int] = mapped_column(Integer, nullable=False)
    latest_version: Mapped[int] = mapped_column(Integer, nullable=False)
    archived: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    # ``host:port`` destinations the agent's code tools may reach (a JSON list), set by an
    # administrator only (appliance.agents.tool_network); NULL: no network. Not versioned.
    tool_network_allowlist: Mapped[str | None] = mapped_column(Text, nullable=True)


class AgentVersion(Base):
    """One saved definition of an agent (immutable)."""

    __tablename__ = "agent_version"

    agent_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("agent.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The definition document as JSON text (sorted keys).
    document: Mapped[str] = mapped_column(Text, nullable=False)
    author_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    change_note: Mapped[str] = mapped_column(String(500), nullable=False, default="")


class Conversation(Base):
    """A user's conversation with one agent (private to that user)."""

    __tablename__ = "conversation"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # NULL once the agent is deleted: the user's history stays theirs.
    agent_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("agent.id", ondelete="SET NULL"), index=True
    )
    agent_version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)


class Message(Base):
    """One message of a conversation, in order (``seq`` 1, 2, 3, … per conversation)."""

    __tablename__ = "message"
    __table_args__ = (UniqueConstraint("conversation_id", "seq", name="uq_message_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("conversation.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # JSON texts; NULL when absent.
    tool_calls: Mapped[str | None] = mapped_column(Text)
    tool_call_id: Mapped[str | None] = mapped_column(String(100))
    citations: Mapped[str | None] = mapped_column(Text)
    usage: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)


class Feedback(Base):
    """A user's thumbs up or down (and comment) on one message; one per user and message."""

    __tablename__ = "message_feedback"

    message_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("message.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    thumbs: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    comment: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
