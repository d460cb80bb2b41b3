"""Spending budgets per user and per group, per day or month (UTC): ``soft`` ones notify when
reached, ``hard`` ones refuse a call whose worst case would exceed them.

A group's spending is that of its current members. Open reservations count as spent, so
concurrent calls cannot together overrun a hard budget.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.credits.errors import BudgetExceeded
from appliance.credits.models import CreditBudget
from appliance.credits.notifications import notify, user_audience
from appliance.credits.tx import Tx, as_tx, in_clause
from appliance.errors import Conflict, InvalidRequest, NotFound
from appliance.identity.models import Group, User
from appliance.licensing.document import credits_to_micro, micro_to_credits
from appliance.store.database import Database
from appliance.store.schema import utcnow

SCOPES = ("user", "group")
PERIODS = ("day", "month")
MODES = ("soft", "hard")
RELOAD_EVERY = 5.0
ADJECTIVE = {"day": "daily", "month": "monthly"}


def period_start(period: str, now: datetime) -> datetime:
    """The start (UTC) of the day or month ``now`` is in."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_key(period: str, now: datetime) -> str:
    return now.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


@dataclass(frozen=True)
class Budget:
    id: int
    scope: str
    subject_id: int
    period: str
    mode: str
    limit: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope,
            "subject_id": self.subject_id,
            "period": self.period,
            "mode": self.mode,
            "limit": micro_to_credits(self.limit),
        }


def _of(row: CreditBudget) -> Budget:
    return Budget(row.id, row.scope, row.subject_id, row.period, row.mode, row.limit)


SETTLED_SQL = (
    "SELECT COALESCE(SUM(amount), 0) FROM credit_ledger "
    "WHERE user_id IN {users} AND created_at >= :since AND kind = 'settle'"
)
HELD_SQL = (
    "SELECT COALESCE(SUM(amount), 0) FROM credit_reservation "
    "WHERE user_id IN {users} AND state = 'open'"
)


def spent(unit: Session | Tx, user_ids: list[int], since: datetime) -> int:
    """Settled charges since ``since`` plus open reservations of these users."""
    if not user_ids:
        return 0
    tx = as_tx(unit)
    users, params = in_clause("u", user_ids)
    settled = tx.one(SETTLED_SQL.format(users=users), {**params, "since": tx.time(since)})
    held = tx.one(HELD_SQL.format(users=users), params)
    return int(settled[0] if settled else 0) + int(held[0] if held else 0)


class BudgetService:
    """Budgets of ``db`` (cached; reloaded every few seconds and after a change here)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._cache: list[Budget] | None = None
        self._loaded = 0.0

    # --- CRUD -------------------------------------------------------------------------------

    def all(self) -> list[Budget]:
        """Every budget."""
        with self.db.read() as session:
            return [_of(r) for r in session.scalars(select(CreditBudget).order_by(CreditBudget.id))]

    def create(self, scope: str, subject_id: int, period: str, mode: str, limit: Any) -> Budget:
        """A new budget; Conflict when one with the same scope, subject, period and mode exists."""
        amount = _check(scope, period, mode, limit)
        now = utcnow()
        row = CreditBudget(
            scope=scope,
            subject_id=subject_id,
            period=period,
            mode=mode,
            limit=amount,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.db.write() as session:
                model = User if scope == "user" else Group
                if session.get(model, subject_id) is None:
                    raise NotFound(f"There is no such {scope}.", field="subject_id")
                session.add(row)
        except IntegrityError as exc:
            raise Conflict("Such a budget already exists; change its limit instead.") from exc
        self._cache = None
        return _of(row)

    def update(self, budget_id: int, limit: Any) -> Budget:
        """Change a budget's limit."""
        amount = _limit(limit)
        with self.db.write() as session:
            row = session.get(CreditBudget, budget_id)
            if row is None:
                raise NotFound("There is no such budget.")
            row.limit, row.updated_at = amount, utcnow()
            budget = _of(row)
        self._cache = None
        return budget

    def delete(self, budget_id: int) -> None:
        """Remove a budget."""
        with self.db.write() as session:
            row = session.get(CreditBudget, budget_id)
            if row is None:
                raise NotFound("There is no such budget.")
            session.delete(row)
        self._cache = None

    def forget_subject(self, session: Session, scope: str, subject_id: int) -> None:
        """Delete the budgets of a user or group being deleted, in that deletion's
        transaction: a budget never outlives what it limits."""
        session.execute(
            delete(CreditBudget).where(
                CreditBudget.scope == scope, CreditBudget.subject_id == subject_id
            )
        )
        self._cache = None

    # --- enforcement ------------------------------------------------------------------------

    def _cached(self) -> list[Budget]:
        cache = self._cache
        if cache is not None and time.monotonic() - self._loaded < RELOAD_EVERY:
            return cache
        fresh = self.all()
        with self._lock:
            self._cache, self._loaded = fresh, time.monotonic()
        return fresh

    def applicable(self, unit: Session | Tx, user_id: int | None) -> list[tuple[Budget, list[int]]]:
        """The budgets that cover ``user_id``, each with the users whose spending counts."""
        budgets = self._cached()
        if user_id is None or not budgets:
            return []
        found: list[tuple[Budget, list[int]]] = [
            (b, [user_id]) for b in budgets if b.scope == "user" and b.subject_id == user_id
        ]
        if any(b.scope == "group" for b in budgets):
            tx = as_tx(unit)
            rows = tx.all("SELECT group_id FROM group_member WHERE user_id = :u", {"u": user_id})
            groups = {row[0] for row in rows}
            for budget in budgets:
                if budget.scope == "group" and budget.subject_id in groups:
                    members = tx.all(
                        "SELECT user_id FROM group_member WHERE group_id = :g",
                        {"g": budget.subject_id},
                    )
                    found.append((budget, [row[0] for row in members]))
        return found

    def check(
        self, unit: Session | Tx, user_id: int | None, amount: int, now: datetime
    ) -> BudgetExceeded | None:
        """The refusal when ``amount`` more would pass a hard budget (its notice is added in
        this transaction; the caller commits, then raises), else None."""
        for budget, users in self.applicable(unit, user_id):
            if budget.mode != "hard":
                continue
            used = spent(unit, users, period_start(budget.period, now))
            if used + amount > budget.limit:
                if used >= budget.limit:
                    _notify_reached(unit, budget, users, now)
                else:  # only this call's worst case would pass it: refused, not reached
                    _notify_refused(unit, budget, users, now)
                return BudgetExceeded(
                    f"This request (up to {micro_to_credits(amount):g} credits) would exceed "
                    f"the {ADJECTIVE[budget.period]} {budget.scope} budget of "
                    f"{micro_to_credits(budget.limit):g} credits ({micro_to_credits(used):g} "
                    "used). Wait for the next period, lower max_tokens, or ask an "
                    "administrator to raise the budget.",
                    budget_id=budget.id,
                )
        return None

    def after_charge(self, unit: Session | Tx, user_id: int | None, now: datetime) -> None:
        """Notify once per period when a budget has been reached."""
        for budget, users in self.applicable(unit, user_id):
            if spent(unit, users, period_start(budget.period, now)) >= budget.limit:
                _notify_reached(unit, budget, users, now)


def _notify_reached(unit: Session | Tx, budget: Budget, users: list[int], now: datetime) -> None:
    """Tell the admins, and every user the budget limits (a group budget: each current
    member), once per period each, that the budget has been reached."""
    message = (
        f"The {budget.mode} {ADJECTIVE[budget.period]} budget of {_subject(unit, budget)} "
        f"({micro_to_credits(budget.limit):g} credits) has been reached."
    )
    _tell(unit, "budget_reached", message, budget, users, now, "")


def _notify_refused(unit: Session | Tx, budget: Budget, users: list[int], now: datetime) -> None:
    """Tell them, once per period, that a call was refused before the budget was reached
    (its worst case would have passed it): a later "reached" notice is still given."""
    message = (
        f"A call was refused: its worst case would pass the hard {ADJECTIVE[budget.period]} "
        f"budget of {_subject(unit, budget)} ({micro_to_credits(budget.limit):g} credits). "
        "Smaller calls (a lower max_tokens) can still run."
    )
    _tell(unit, "budget_refused", message, budget, users, now, ":refused")


def _tell(
    unit: Session | Tx,
    kind: str,
    message: str,
    budget: Budget,
    users: list[int],
    now: datetime,
    variant: str,
) -> None:
    key = f"budget:{budget.id}:{period_key(budget.period, now)}{variant}"
    if not notify(unit, kind, message, dedupe_key=key, now=now):
        return  # given this period already, with the users' own notices (same transaction)
    for user_id in users:
        # A user budget keeps its original key (``:user``), so no notice repeats on upgrade.
        suffix = "user" if budget.scope == "user" else f"member:{user_id}"
        notify(
            unit,
            kind,
            message,
            audience=user_audience(user_id),
            dedupe_key=f"{key}:{suffix}",
            now=now,
        )


# The name of a budget's subject, by scope (fixed statements; the id is a parameter).
SUBJECT_NAMES = {
    "user": 'SELECT username FROM "user" WHERE id = :id',
    "group": 'SELECT name FROM "group" WHERE id = :id',
}


def _subject(unit: Session | Tx, budget: Budget) -> str:
    """``user alice`` / ``group team`` (``user 7`` should the row be gone)."""
    row = as_tx(unit).one(SUBJECT_NAMES[budget.scope], {"id": budget.subject_id})
    return f"{budget.scope} {row[0] if row else budget.subject_id}"


def _limit(limit: Any) -> int:
    try:
        amount = credits_to_micro(limit)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid budget limit: {exc}.", field="limit") from exc
    return amount


def _check(scope: str, period: str, mode: str, limit: Any) -> int:
    if scope not in SCOPES:
        raise InvalidRequest("scope is `user` or `group`.", field="scope")
    if period not in PERIODS:
        raise InvalidRequest("period is `day` or `month`.", field="period")
    if mode not in MODES:
        raise InvalidRequest("mode is `soft` or `hard`.", field="mode")
    return _limit(limit)
