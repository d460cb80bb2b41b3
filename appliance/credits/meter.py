"""The credit meter: reserve → settle → release, grants and vouchers, over the hash-chained
ledger. Every movement reads the ledger's tail and appends to it inside one write transaction
(``BEGIN IMMEDIATE``), so the balance check and the entry that uses it are atomic across
threads and processes: the balance can never go negative (the table's CHECK constraints are
the last line of defence).

Each reservation records the process that made it (:func:`process_owner`). A hold whose
process has ended (a crash, a kill -9) is released at the next start and at every poll of the
schedule, by :meth:`CreditMeter.expire_stale`, which also releases any hold older than
``reservation_ttl``. A live process's holds (a server's, while a CLI command unseals the same
home) are never released early.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.credits import ledger
from appliance.credits.budgets import BudgetService
from appliance.credits.errors import CreditsExhausted
from appliance.credits.group_commit import GroupCommit
from appliance.credits.models import CreditLedgerEntry
from appliance.credits.notifications import notify
from appliance.credits.owners import owner_ended, process_owner
from appliance.credits.prices import PriceTable
from appliance.credits.tx import Tx, as_tx, write_tx
from appliance.errors import EnclaveError
from appliance.licensing.document import LicensePayload, VoucherPayload, micro_to_credits
from appliance.licensing.errors import LicenseReadOnly, VoucherAlreadyRedeemed
from appliance.licensing.service import LicenseService
from appliance.store.database import Database
from appliance.store.schema import utcnow

LOW_BALANCE = (20, 5)
USER_PRINCIPAL = re.compile(r"^user:(\d+)$")
REFERENCE_TTL = 30.0


def hold_id() -> str:
    """A new reservation id: 32 hex digits, the time in milliseconds then 80 random bits. Ids
    that grow with time land at the right edge of the indexes on them (the reservation's key
    and the ledger's ``reservation_id``), where random ones would touch a random page of an
    ever larger index on every call."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def user_id_of(principal: str | None) -> int | None:
    """The user id in a ``user:<id>`` principal (None for a system principal)."""
    match = USER_PRINCIPAL.match(principal or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Hold:
    """Credits reserved for one call."""

    id: str
    amount: int


@dataclass(frozen=True)
class Balance:
    """The account: credits held by the organisation, those reserved, and what is free."""

    balance: int
    reserved: int
    entries: int

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    def as_dict(self) -> dict[str, Any]:
        return {
            "balance": micro_to_credits(self.balance),
            "reserved": micro_to_credits(self.reserved),
            "available": micro_to_credits(self.available),
            "balance_micro": self.balance,
            "reserved_micro": self.reserved,
            "available_micro": self.available,
        }


class CreditMeter:
    """Credits of one appliance."""

    def __init__(
        self,
        db: Database,
        key: bytes,
        prices: PriceTable,
        budgets: BudgetService,
        licensing: LicenseService,
        *,
        reservation_ttl: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self._key = key
        self.prices = prices
        self.budgets = budgets
        self.licensing = licensing
        self.reservation_ttl = reservation_ttl
        self._clock = clock
        self._ref_lock = threading.Lock()
        self._reference: tuple[int, int] | None = None
        self._reference_at = 0.0
        self._writes = GroupCommit(db)
        self._noticed: set[str] = set()
        licensing.grant_listeners.append(self.grant_license_credits)

    # --- reads ------------------------------------------------------------------------------

    def balance(self) -> Balance:
        """The account after the last ledger entry."""
        with self.db.read() as session:
            tail = ledger.read_tail(session)
        return Balance(tail.balance, tail.reserved, tail.id)

    def verify(self) -> ledger.VerifyResult:
        """Check the ledger's chain and replayed balances."""
        return ledger.verify(self.db, self._key)

    def entries(self, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Ledger entries after position ``after``, oldest first."""
        stmt = (
            select(CreditLedgerEntry)
            .where(CreditLedgerEntry.id > after)
            .order_by(CreditLedgerEntry.id)
            .limit(limit)
        )
        with self.db.read() as session:
            return [_entry_dict(e) for e in session.scalars(stmt)]

    # --- reserve / settle / release ---------------------------------------------------------

    def reserve(
        self,
        *,
        principal: str | None,
        provider: str,
        model: str,
        prompt_tokens: int,
        max_tokens: int,
        agent_id: str | None = None,
        run_id: str | None = None,
        step: int | None = None,
        fallbacks: Sequence[tuple[str, str]] = (),
    ) -> Hold | None:
        """Set aside the worst case of a call (prompt + max output tokens at the model's price,
        the dearest of the model and its ``fallbacks``, which may answer instead) in one write
        transaction; None when unlicensed (unmetered). Raises :class:`CreditsExhausted`,
        :class:`BudgetExceeded` or :class:`LicenseReadOnly`."""
        status = self.licensing.status()
        if status.read_only:
            raise LicenseReadOnly()
        if not status.metered:
            return None
        amount = self.prices.for_model(provider, model).tokens_cost(prompt_tokens, max_tokens)
        for other_provider, other_model in fallbacks:
            other = self.prices.for_model(other_provider, other_model)
            amount = max(amount, other.tokens_cost(prompt_tokens, max_tokens))
        owner = process_owner()
        user_id = user_id_of(principal)
        hold = Hold(hold_id(), amount)
        now = self._clock()

        # Run by the group commit: may share a transaction with concurrent calls, and may run
        # twice (see GroupCommit), so it only touches the database and returns the refusal.
        def write(tx: Tx) -> EnclaveError | None:
            tail = ledger.read_tail(tx)
            if tail.available < amount:
                self._notify_low(tx, tail.available, now, exhausted=True)
                return CreditsExhausted(
                    f"This request needs up to {micro_to_credits(amount):g} credits; "
                    f"{micro_to_credits(tail.available):g} are available. Ask an administrator "
                    "to redeem a top-up voucher, or lower max_tokens.",
                )
            denial = self.budgets.check(tx, user_id, amount, now)
            if denial is None:
                fields = _call_fields(principal, user_id, agent_id, provider, model)
                ledger.append(
                    tx, self._key, tail, "reserve", amount, now, reservation_id=hold.id, **fields
                )
                tx.run(
                    RESERVE_SQL,
                    {
                        **fields,
                        "id": hold.id,
                        "created_at": tx.time(now),
                        "expires_at": tx.time(now + self.reservation_ttl),
                        "amount": amount,
                        "run_id": run_id,
                        "step": step,
                        "owner": owner,
                    },
                )
            return denial

        denial = self._writes.run(write)
        if denial is not None:
            raise denial
        return hold

    def settle(
        self,
        hold_id: str,
        prompt_tokens: int,
        completion_tokens: int,
        answered: tuple[str, str] | None = None,
    ) -> int:
        """Charge the real usage of a reserved call and release the rest; returns the charge.
        ``answered`` is the (provider, model) that answered when not the reserved one (a
        fallback): the call is priced and recorded as that model's.

        A reservation the expiry sweep already released is charged directly, as far as the
        free balance goes (the shortfall is recorded). A hold already settled or released (or
        never made) is no longer held: settling it changes nothing and returns 0."""
        now = self._clock()

        def write(tx: Tx) -> int:
            # The usual case in one statement: the open hold is taken (deleted) and read back.
            row = tx.one(TAKE_OPEN_SQL, {"id": hold_id})
            if row is not None:
                res = _Held(*row)
            else:
                expired = tx.one(EXPIRED_HOLD_SQL, {"id": hold_id})
                if expired is None:
                    return 0
                res = _Held(*expired)
            if answered is not None and answered != (res.provider, res.model):
                res = dataclasses.replace(res, provider=answered[0], model=answered[1])
            cost = self.prices.for_model(res.provider, res.model).tokens_cost(
                prompt_tokens, completion_tokens
            )
            fields = res.fields()
            fields.update(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            tail = ledger.read_tail(tx)
            extra = cost
            if res.state == "open":
                # One entry charges what the hold covers and gives back the rest of it.
                covered = min(cost, res.amount)
                tail = ledger.append(
                    tx,
                    self._key,
                    tail,
                    "settle",
                    covered,
                    now,
                    reservation_id=hold_id,
                    released=res.amount - covered,
                    **fields,
                )
                extra = cost - covered
            charged = cost - extra
            if extra:
                direct = min(extra, tail.available)
                details = {"reservation": hold_id, "uncovered": extra - direct}
                if res.state == "open":  # the tokens are already on the covered settle
                    fields.update(prompt_tokens=None, completion_tokens=None)
                if direct:
                    tail = ledger.append(
                        tx,
                        self._key,
                        tail,
                        "settle",
                        direct,
                        now,
                        details=json.dumps(details, sort_keys=True),
                        **fields,
                    )
                charged += direct
            if res.state != "open":  # charged now: the expired hold is done with
                tx.run(DROP_SQL, {"id": hold_id})
            self.budgets.after_charge(tx, res.user_id, now)
            self._notify_low(tx, tail.available, now)
            return charged

        return self._writes.run(write)

    def release(self, hold_id: str, reason: str = "released") -> None:
        """Give back everything reserved for a call that produced no usage (no-op if closed)."""
        now = self._clock()

        def write(tx: Tx) -> None:
            row = tx.one(TAKE_OPEN_SQL, {"id": hold_id})
            if row is not None:
                self._release_entry(tx, _Held(*row), now, reason)

        self._writes.run(write)

    def _release_entry(self, tx: Tx, res: _Held, now: datetime, reason: str) -> None:
        tail = ledger.read_tail(tx)
        ledger.append(
            tx,
            self._key,
            tail,
            "release",
            res.amount,
            now,
            reservation_id=res.id,
            details=json.dumps({"reason": reason}),
            **res.fields(),
        )

    def expire_stale(self) -> int:
        """Release every open reservation past its expiry or whose process has ended (left by
        a crash; :func:`owner_ended`); returns how many. Each is kept as ``expired`` for
        :data:`EXPIRED_KEPT` (a late settle still charges it); older expired holds are deleted
        here. Reads first and writes only when there is something to do (it runs at every
        poll of the schedule)."""
        now = self._clock()
        with self.db.read() as session:
            reader = as_tx(session)
            rows = reader.all(STALE_SQL, {"now": reader.time(now)})
            before = {"before": reader.time(now - EXPIRED_KEPT)}
            forget = reader.one(FORGETTABLE_SQL, before) is not None
        ended: dict[str, bool] = {}
        closing: list[tuple[str, str]] = []
        for hold, owner, stale in rows:
            if stale:
                closing.append((hold, "expired"))
            elif owner is not None:
                if owner not in ended:
                    ended[owner] = owner_ended(owner)
                if ended[owner]:
                    closing.append((hold, "process_ended"))
        if not closing and not forget:
            return 0
        released = 0
        with write_tx(self.db) as tx:
            for hold, reason in closing:
                row = tx.one(EXPIRE_SQL, {"id": hold})  # None: settled meanwhile
                if row is not None:
                    self._release_entry(tx, _Held(*row), now, reason)
                    released += 1
            if forget:
                tx.run(FORGET_SQL, {"before": tx.time(now - EXPIRED_KEPT)})
        return released

    def charge_tool(
        self, principal: str | None, tool: str, seconds: float, agent_id: str | None
    ) -> int:
        """Charge sandbox time (after the fact, as far as the free balance goes)."""
        status = self.licensing.status()
        if not status.metered:
            return 0
        cost = self.prices.for_tool(tool).seconds_cost(seconds)
        if cost <= 0:
            return 0
        now = self._clock()
        user_id = user_id_of(principal)

        def write(tx: Tx) -> int:
            tail = ledger.read_tail(tx)
            direct = min(cost, tail.available)
            if direct:
                fields = _call_fields(principal, user_id, agent_id, "tool", tool)
                details = json.dumps({"seconds": round(seconds, 3), "uncovered": cost - direct})
                tail = ledger.append(
                    tx, self._key, tail, "settle", direct, now, details=details, **fields
                )
                self.budgets.after_charge(tx, user_id, now)
                self._notify_low(tx, tail.available, now)
            return direct

        return self._writes.run(write)

    # --- credits in -------------------------------------------------------------------------

    def grant_license_credits(self, unit: Session | Tx, lic: LicensePayload, now: datetime) -> None:
        """The license's one-off grant and this month's grant, each applied once (a
        :class:`LicenseService` grant listener: runs in its write transaction)."""
        tx = as_tx(unit)
        grants = [(f"license:{lic.license_id}:once", lic.once_micro)]
        if lic.monthly_micro and now >= lic.not_before:
            grants.append((f"license:{lic.license_id}:month:{now:%Y-%m}", lic.monthly_micro))
        for reference, amount in grants:
            if amount <= 0 or _has_reference(tx, reference):
                continue
            tail = ledger.read_tail(tx)
            ledger.append(tx, self._key, tail, "grant", amount, now, reference=reference)
        self._reference = None

    def redeem(self, voucher: VoucherPayload, principal: str | None = None) -> Balance:
        """Credit a verified voucher, once."""
        now = self._clock()
        reference = f"voucher:{voucher.voucher_id}"
        with write_tx(self.db) as tx:
            if _has_reference(tx, reference):
                raise VoucherAlreadyRedeemed(
                    f"Voucher {voucher.voucher_id} was already redeemed; a voucher is single-use."
                )
            tail = ledger.read_tail(tx)
            tail = ledger.append(
                tx,
                self._key,
                tail,
                "voucher",
                voucher.micro,
                now,
                reference=reference,
                principal=principal,
                details=json.dumps({"license_id": voucher.license_id}),
            )
        self._reference = None
        return Balance(tail.balance, tail.reserved, tail.id)

    def adjust(self, amount: int, reason: str, principal: str | None) -> Balance:
        """A manual correction (positive or negative micro-credits) with its reason."""
        now = self._clock()
        with write_tx(self.db) as tx:
            tail = ledger.read_tail(tx)
            if tail.available + amount < 0:
                raise CreditsExhausted("The adjustment would take more than the free balance.")
            tail = ledger.append(
                tx,
                self._key,
                tail,
                "adjustment",
                amount,
                now,
                principal=principal,
                details=json.dumps({"reason": reason}),
            )
        return Balance(tail.balance, tail.reserved, tail.id)

    # --- notices ----------------------------------------------------------------------------

    def _reference_level(self, tx: Tx) -> tuple[int, int] | None:
        """(entry id, free balance) right after the latest grant or voucher: 100 % for the
        low-balance notices."""
        if self._reference is not None and time.monotonic() - self._reference_at < REFERENCE_TTL:
            return self._reference
        row = tx.one(TOPUP_SQL)
        with self._ref_lock:
            self._reference = None if row is None else (int(row[0]), int(row[1]))
            self._reference_at = time.monotonic()
        return self._reference

    def _notice(self, tx: Tx, kind: str, message: str, dedupe_key: str, now: datetime) -> None:
        """A deduplicated admin notice; keys known to be stored are not asked for again (a
        notice is never deleted, so once seen committed it stays)."""
        if dedupe_key in self._noticed:
            return
        if not notify(tx, kind, message, dedupe_key=dedupe_key, now=now):
            self._noticed.add(dedupe_key)  # already there before this transaction

    def _notify_low(self, tx: Tx, available: int, now: datetime, exhausted: bool = False) -> None:
        ref = self._reference_level(tx)
        if ref is None or ref[1] <= 0:
            return
        ref_id, level = ref
        if exhausted:
            self._notice(
                tx,
                "credits_exhausted",
                "A request was refused: the credits are used up. Redeem a top-up voucher.",
                f"credits_exhausted:{ref_id}",
                now,
            )
            return
        for pct in LOW_BALANCE:
            if available * 100 <= level * pct:
                self._notice(
                    tx,
                    "low_balance",
                    f"Credits are low: {micro_to_credits(available):g} left, {pct} % or less "
                    "of the last top-up. Redeem a top-up voucher before they run out.",
                    f"low_balance:{pct}:{ref_id}",
                    now,
                )


def _call_fields(
    principal: str | None,
    user_id: int | None,
    agent_id: str | None,
    provider: str | None,
    model: str | None,
) -> dict[str, Any]:
    return {
        "principal": principal,
        "user_id": user_id,
        "agent_id": agent_id,
        "provider": provider,
        "model": model,
    }


def _has_reference(tx: Tx, reference: str) -> bool:
    found = tx.one("SELECT id FROM credit_ledger WHERE reference = :r", {"r": reference})
    return found is not None


@dataclass(frozen=True)
class _Held:
    """The columns of a reservation the meter needs."""

    id: str
    amount: int
    state: str
    principal: str | None
    user_id: int | None
    agent_id: str | None
    provider: str
    model: str

    def fields(self) -> dict[str, Any]:
        return _call_fields(self.principal, self.user_id, self.agent_id, self.provider, self.model)


# The reservation table holds only open holds and, for EXPIRED_KEPT, expired ones: a few rows
# however long the history, read without an index (migration 0014).
STALE_SQL = (
    "SELECT id, owner, expires_at < :now FROM credit_reservation WHERE state = 'open' "
    "ORDER BY created_at"
)
RESERVE_SQL = (
    "INSERT INTO credit_reservation (id, created_at, expires_at, amount, state, principal, "
    "user_id, agent_id, provider, model, run_id, step, owner) VALUES (:id, :created_at, "
    ":expires_at, :amount, 'open', :principal, :user_id, :agent_id, :provider, :model, :run_id, "
    ":step, :owner)"
)
TOPUP_SQL = (
    "SELECT id, balance_after - reserved_after FROM credit_ledger "
    "WHERE kind IN ('grant', 'voucher') ORDER BY id DESC LIMIT 1"
)
# A settle or release takes its open hold out and reads it back in one statement.
TAKE_OPEN_SQL = (
    "DELETE FROM credit_reservation WHERE id = :id AND state = 'open' "
    "RETURNING id, amount, state, principal, user_id, agent_id, provider, model"
)
EXPIRED_HOLD_SQL = (
    "SELECT id, amount, state, principal, user_id, agent_id, provider, model "
    "FROM credit_reservation WHERE id = :id AND state = 'expired'"
)
# The expiry sweep closes a hold still open and reads it back in one statement.
EXPIRE_SQL = (
    "UPDATE credit_reservation SET state = 'expired' WHERE id = :id AND state = 'open' "
    "RETURNING id, amount, state, principal, user_id, agent_id, provider, model"
)
DROP_SQL = "DELETE FROM credit_reservation WHERE id = :id"
FORGET_SQL = "DELETE FROM credit_reservation WHERE state = 'expired' AND expires_at < :before"
FORGETTABLE_SQL = (
    "SELECT 1 FROM credit_reservation WHERE state = 'expired' AND expires_at < :before LIMIT 1"
)
EXPIRED_KEPT = timedelta(days=30)


def _entry_dict(entry: CreditLedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "created_at": entry.created_at.isoformat(),
        "kind": entry.kind,
        "amount": micro_to_credits(entry.amount),
        "balance_after": micro_to_credits(entry.balance_after),
        "reserved_after": micro_to_credits(entry.reserved_after),
        "reservation_id": entry.reservation_id,
        "reference": entry.reference,
        "principal": entry.principal,
        "agent_id": entry.agent_id,
        "provider": entry.provider,
        "model": entry.model,
        "prompt_tokens": entry.prompt_tokens,
        "completion_tokens": entry.completion_tokens,
        "released": None if entry.released is None else micro_to_credits(entry.released),
        "details": json.loads(entry.details) if entry.details else None,
        "entry_hash": entry.entry_hash,
    }
