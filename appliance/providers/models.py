"""The table of configured model endpoints (OpenAI-compatible and Anthropic remotes).

The API key is stored encrypted (see :mod:`appliance.providers.secrets`) in ``api_key_sealed``;
every other setting is plain JSON in ``options`` inside the (itself encrypted) database. The
last capability probe's result is kept as JSON with its time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from appliance.identity.models import UtcDateTime
from appliance.store.schema import Base, utcnow


class ProviderEndpoint(Base):
    """One remote model endpoint and how to reach it."""

    __tablename__ = "provider_endpoint"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(80), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    base_url: Mapped[str] = mapped_column(String(500), nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    # Timeouts, retries, circuit, TLS and wire options as sorted JSON.
    options: Mapped[str] = mapped_column(Text, nullable=False)
    # key id (8) + nonce (12) + AES-GCM ciphertext of the API key; NULL when there is none.
    api_key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    probe: Mapped[str | None] = mapped_column(Text)
    probed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
