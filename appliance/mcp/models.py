"""The table of registered MCP servers and the tools they offered at their last refresh."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from appliance.identity.models import UtcDateTime
from appliance.store.schema import Base, utcnow


class McpServer(Base):
    """One MCP server: a stdio command (run in the sandbox) or a streamable-HTTP URL."""

    __tablename__ = "mcp_server"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    transport: Mapped[str] = mapped_column(String(8), nullable=False)
    # JSON list of argv strings (stdio) — never run outside the sandbox.
    command: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(500))
    timeout_s: Mapped[float] = mapped_column(Float, nullable=False, default=30.0)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # JSON list of {"name", "remote", "description", "parameters"} from the last refresh.
    tools: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    refreshed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
