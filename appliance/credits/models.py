"""Credit tables: the hash-chained ledger, reservations, prices, budgets and notifications.

Amounts are integer micro-credits (1 credit = 1,000,000), so sums are exact.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from appliance.identity.models import UtcDateTime
from appliance.store.schema import Base, utcnow


class CreditLedgerEntry(Base):
    """One movement of credits. ``id`` is the position in the chain (1, 2, 3, … no gaps);
    ``balance_after``/``reserved_after`` are the account after this entry (the last entry is
    the balance); ``entry_hash`` = HMAC(key, prev_hash || canonical JSON of the other fields).

    Kinds and their effect: ``grant``/``voucher`` +balance; ``adjustment`` ±balance;
    ``reserve`` +reserved; ``settle`` −balance and, with a reservation, −reserved (by the
    charge plus ``released``, the rest of the hold it gives back); ``release`` −reserved.
    """

    __tablename__ = "credit_ledger"
    __table_args__ = (
        CheckConstraint("balance_after >= 0", name="ck_credit_ledger_balance"),
        CheckConstraint(
            "reserved_after >= 0 AND reserved_after <= balance_after",
            name="ck_credit_ledger_reserved",
        ),
        # Partial indexes (migration 0012): a reserve or release entry touches none of them,
        # a settle only the two time indexes — fewer pages for SQLCipher to encrypt per commit.
        Index(
            "ix_credit_ledger_settle_time",
            "created_at",
            sqlite_where=text("kind = 'settle'"),
            postgresql_where=text("kind = 'settle'"),
        ),
        Index(
            "ix_credit_ledger_settle_user",
            "user_id",
            "created_at",
            sqlite_where=text("kind = 'settle'"),
            postgresql_where=text("kind = 'settle'"),
        ),
        Index(
            "ix_credit_ledger_topup",
            "id",
            sqlite_where=text("kind IN ('grant', 'voucher')"),
            postgresql_where=text("kind IN ('grant', 'voucher')"),
        ),
        # grant/voucher: what it came from (a voucher or a monthly grant applies once).
        Index(
            "uq_credit_ledger_reference",
            "reference",
            unique=True,
            sqlite_where=text("reference IS NOT NULL"),
            postgresql_where=text("reference IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    balance_after: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reserved_after: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reservation_id: Mapped[str | None] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(128))
    principal: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(Integer)
    agent_id: Mapped[str | None] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # A settle of a reservation: what of the hold it gave back (the hold minus the charge), so
    # one entry closes the reservation; None on every other entry (and on settles before 0012,
    # which were followed by a ``release`` entry).
    released: Mapped[int | None] = mapped_column(BigInteger)


class CreditReservation(Base):
    """Credits held for one model call until it settles, is released, or expires.

    Only open holds live here, and expired ones for 30 days (a settle arriving after its hold
    expired is still charged): a settle or release deletes its hold, whose history is in the
    ledger. The table stays as small as the number of calls in flight, so it needs no index
    (migration 0014; docs/DESIGN.md, D-credits-open-holds)."""

    __tablename__ = "credit_reservation"
    # Keyed by its id alone: one B-tree, not a rowid table plus a key index.
    __table_args__ = ({"sqlite_with_rowid": False},)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    principal: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(Integer)
    agent_id: Mapped[str | None] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    run_id: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[int | None] = mapped_column(Integer)
    # The process that made the hold (appliance/credits/owners.py; migration 0016).
    owner: Mapped[str | None] = mapped_column(String(160))


class CreditPrice(Base):
    """What one model (``provider/model``, or ``provider/*`` for every model of a provider)
    costs per 1,000 input and output tokens, or one sandbox tool (``tool/<name>`` or
    ``tool/*``) per second."""

    __tablename__ = "credit_price"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    input_per_1k: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    output_per_1k: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    per_second: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)


class CreditBudget(Base):
    """A spending limit for one user or group per day or month: ``soft`` notifies when reached,
    ``hard`` refuses calls that would exceed it."""

    __tablename__ = "credit_budget"
    __table_args__ = (
        UniqueConstraint("scope", "subject_id", "period", "mode", name="uq_credit_budget"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), nullable=False)
    subject_id: Mapped[int] = mapped_column(Integer, nullable=False)
    period: Mapped[str] = mapped_column(String(8), nullable=False)
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    limit: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)


class Notification(Base):
    """An in-app notice (low balance, budget reached, license expiring, clock rollback) for
    the admins (``audience`` = ``admins``) or one user (``user:<id>``). ``dedupe_key`` keeps a
    notice from repeating (e.g. once per threshold per top-up)."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), nullable=False, default=utcnow, index=True
    )
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    audience: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
