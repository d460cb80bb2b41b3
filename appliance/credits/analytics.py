"""Usage analytics with DuckDB: who spent what, when it runs out, and how to spend less.

``calls`` counts model calls: a call's token counts sit on its first ``settle`` entry only (a
charge beyond the reservation is a second entry without them; tool time has none). What a
call reserved is on its settle entry too: the charge plus ``released``, the rest given back.

DuckDB cannot open the SQLCipher file, so the rows move over as Arrow tables: the ledger's
charges (``settle`` entries), users and group memberships are read through the normal
encrypted connection, handed to an in-memory DuckDB as Arrow, and queried there; nothing is
written to disk in clear.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import func, select

from appliance.credits.meter import CreditMeter
from appliance.credits.models import CreditLedgerEntry
from appliance.errors import InvalidRequest, NotFound
from appliance.identity.models import Group, GroupMember, User
from appliance.licensing.document import micro_to_credits
from appliance.store.database import Database

# One fixed query per dimension (never assembled from input).
USAGE_QUERIES = {
    "user": """
        SELECT CASE WHEN s.user_id IS NULL THEN '(system)'
                    ELSE coalesce(u.username, 'user:' || s.user_id || ' (deleted)') END AS key,
               count(s.prompt_tokens) AS calls,
               sum(coalesce(s.prompt_tokens, 0)) AS prompt_tokens,
               sum(coalesce(s.completion_tokens, 0)) AS completion_tokens, sum(s.amount) AS amount
        FROM charges s LEFT JOIN users u ON u.id = s.user_id
        GROUP BY 1 ORDER BY amount DESC""",
    "group": """
        SELECT a.group_name AS key, sum(a.calls) AS calls, sum(a.prompt_tokens) AS prompt_tokens,
               sum(a.completion_tokens) AS completion_tokens, sum(a.amount) AS amount
        FROM attributed a GROUP BY 1 ORDER BY amount DESC""",
    "agent": """
        SELECT coalesce(s.agent_id, '(none)') AS key, count(s.prompt_tokens) AS calls,
               sum(coalesce(s.prompt_tokens, 0)) AS prompt_tokens,
               sum(coalesce(s.completion_tokens, 0)) AS completion_tokens, sum(s.amount) AS amount
        FROM charges s GROUP BY 1 ORDER BY amount DESC""",
    "model": """
        SELECT s.provider || '/' || s.model AS key, count(s.prompt_tokens) AS calls,
               sum(coalesce(s.prompt_tokens, 0)) AS prompt_tokens,
               sum(coalesce(s.completion_tokens, 0)) AS completion_tokens, sum(s.amount) AS amount
        FROM charges s GROUP BY 1 ORDER BY amount DESC""",
    "day": """
        SELECT strftime(CAST(s.created_at AS DATE), '%Y-%m-%d') AS key,
               count(s.prompt_tokens) AS calls,
               sum(coalesce(s.prompt_tokens, 0)) AS prompt_tokens,
               sum(coalesce(s.completion_tokens, 0)) AS completion_tokens, sum(s.amount) AS amount
        FROM charges s GROUP BY 1 ORDER BY 1""",
}
DAILY = """
    SELECT CAST(created_at AS DATE) AS day, sum(amount) AS amount FROM charges GROUP BY 1
"""
REMOTE_AGENTS = """
    SELECT coalesce(agent_id, '(none)') AS agent, provider || '/' || model AS model,
           count(*) AS calls, sum(amount) AS amount,
           sum(coalesce(prompt_tokens, 0)) AS prompt_tokens,
           sum(coalesce(completion_tokens, 0)) AS completion_tokens,
           avg(coalesce(completion_tokens, 0)) AS avg_completion
    FROM charges WHERE provider NOT IN ('local', 'tool') AND prompt_tokens IS NOT NULL
    GROUP BY 1, 2 HAVING count(*) >= 3 ORDER BY amount DESC
"""
# Settles that closed a hold carry what it held beyond the charge (``released``; settles
# written before migration 0012 have none and are not counted here).
OVER_RESERVED = """
    SELECT coalesce(agent_id, '(none)') AS agent, provider || '/' || model AS model,
           count(*) AS calls, sum(amount + released) AS reserved, sum(amount) AS settled
    FROM charges WHERE released IS NOT NULL
    GROUP BY 1, 2 HAVING count(*) >= 5 AND sum(amount) * 4 < sum(amount + released)
    ORDER BY reserved DESC
"""
# Charges per user and model, each attributed to the user's groups (as they are now): a user
# in k groups puts 1/k of the credits on each (whole micro-credits; the remainder goes to the
# first groups by name, so the parts add up to the charge); a user in no group, a deleted
# user and charges without a user go to "(no group)". Calls and tokens are the user's own,
# on every row of theirs.
ATTRIBUTED = """
    WITH per_user AS (
        SELECT s.user_id, s.provider || '/' || s.model AS model, count(s.prompt_tokens) AS calls,
               sum(coalesce(s.prompt_tokens, 0)) AS prompt_tokens,
               sum(coalesce(s.completion_tokens, 0)) AS completion_tokens, sum(s.amount) AS amount
        FROM charges s GROUP BY 1, 2
    ), placed AS (
        SELECT m.user_id, g.id AS group_id, g.name AS group_name,
               count(*) OVER (PARTITION BY m.user_id) AS parts,
               row_number() OVER (PARTITION BY m.user_id ORDER BY g.name) AS part
        FROM members m JOIN groups g ON g.id = m.group_id
    )
    SELECT p.group_id, coalesce(p.group_name, '(no group)') AS group_name,
           CASE WHEN c.user_id IS NULL THEN '(system)'
                ELSE coalesce(u.username, 'user:' || c.user_id || ' (deleted)') END AS username,
           c.user_id, c.model, coalesce(p.parts, 1) AS parts, c.calls, c.prompt_tokens,
           c.completion_tokens,
           c.amount // coalesce(p.parts, 1)
               + CASE WHEN coalesce(p.part, 1) <= c.amount % coalesce(p.parts, 1) THEN 1 ELSE 0 END
               AS amount
    FROM per_user c LEFT JOIN placed p ON p.user_id = c.user_id
    LEFT JOIN users u ON u.id = c.user_id
"""
STATEMENT = """
    SELECT group_name, username, user_id, model, parts, calls, prompt_tokens, completion_tokens,
           amount
    FROM attributed WHERE $group_id IS NULL OR group_id = $group_id
    ORDER BY group_name, username, model
"""
STATEMENT_COLUMNS = (
    "group",
    "user",
    "model",
    "share",
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "credits",
)
TOTAL_ROW = "(total)"
# The band needs this many complete days of history; with fewer it is left open.
MIN_BAND_DAYS = 3
# Statements cover these years (the month after the last must exist).
FIRST_YEAR, LAST_YEAR = 1970, 9998


def t_quantile(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom: the normal quantile
    corrected by the Cornish-Fisher series (Abramowitz & Stegun 26.7.5; within 1 % from
    df = 2, exact to 0.1 % from df = 3)."""
    z = 1.959964
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(term / df ** (power + 1) for power, term in enumerate(terms))


def _aware_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class Forecast:
    """When the free balance runs out at the recent daily rate, with a ~95 % band
    (``earliest``/``latest``; None while there are fewer than three complete days of
    history, and ``latest`` None when the upper end does not run out)."""

    available: int
    daily_rate: float
    days_observed: int
    runs_out_on: date | None
    earliest: date | None
    latest: date | None

    def as_dict(self) -> dict[str, Any]:
        def iso(d: date | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "available": micro_to_credits(self.available),
            "daily_rate": round(self.daily_rate / 1_000_000, 6),
            "days_observed": self.days_observed,
            "runs_out_on": iso(self.runs_out_on),
            "earliest": iso(self.earliest),
            "latest": iso(self.latest),
        }


class UsageAnalytics:
    """Analytics over one appliance's credit ledger."""

    def __init__(self, db: Database, meter: CreditMeter) -> None:
        self.db = db
        self.meter = meter

    def _connect(self, since: datetime | None, until: datetime | None) -> duckdb.DuckDBPyConnection:
        charges = select(
            CreditLedgerEntry.created_at,
            CreditLedgerEntry.user_id,
            CreditLedgerEntry.agent_id,
            CreditLedgerEntry.provider,
            CreditLedgerEntry.model,
            CreditLedgerEntry.prompt_tokens,
            CreditLedgerEntry.completion_tokens,
            CreditLedgerEntry.amount,
            CreditLedgerEntry.released,
        ).where(CreditLedgerEntry.kind == "settle")
        if since is not None:
            charges = charges.where(CreditLedgerEntry.created_at >= since)
        if until is not None:
            charges = charges.where(CreditLedgerEntry.created_at < until)
        with self.db.read() as session:
            rows = session.execute(charges).all()
            members = session.execute(select(GroupMember.group_id, GroupMember.user_id)).all()
            groups = session.execute(select(Group.id, Group.name)).all()
            users = session.execute(select(User.id, User.username)).all()
        # Nothing leaves memory: no spilling to a temp directory (it would be plaintext on
        # disk; a query too big for memory fails instead), and no file or network access.
        con = duckdb.connect(":memory:", config={"temp_directory": ""})
        con.execute("SET enable_external_access = false")
        con.register(
            "charges",
            pa.table(
                {
                    "created_at": pa.array([_naive_utc(r[0]) for r in rows], pa.timestamp("us")),
                    "user_id": pa.array([r[1] for r in rows], pa.int64()),
                    "agent_id": pa.array([r[2] for r in rows], pa.string()),
                    "provider": pa.array([r[3] for r in rows], pa.string()),
                    "model": pa.array([r[4] for r in rows], pa.string()),
                    "prompt_tokens": pa.array([r[5] for r in rows], pa.int64()),
                    "completion_tokens": pa.array([r[6] for r in rows], pa.int64()),
                    "amount": pa.array([r[7] for r in rows], pa.int64()),
                    "released": pa.array([r[8] for r in rows], pa.int64()),
                }
            ),
        )
        text, integer = pa.string(), pa.int64()
        con.register("members", _arrow(members, (("group_id", integer), ("user_id", integer))))
        con.register("groups", _arrow(groups, (("id", integer), ("name", text))))
        con.register("users", _arrow(users, (("id", integer), ("username", text))))
        con.execute(f"CREATE TEMP VIEW attributed AS {ATTRIBUTED}")
        return con

    def usage(
        self, by: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Charges grouped by ``user``, ``group``, ``agent``, ``model`` or ``day``."""
        query = USAGE_QUERIES.get(by)
        if query is None:
            raise InvalidRequest(f"by is one of {', '.join(USAGE_QUERIES)}.", field="by")
        if since is not None and until is not None and _naive_utc(since) >= _naive_utc(until):
            raise InvalidRequest("since must be before until.", field="until")
        con = self._connect(since, until)
        try:
            result = con.execute(query).fetchall()
        finally:
            con.close()
        return [
            {
                by: key,
                "calls": int(calls),
                "prompt_tokens": int(prompt),
                "completion_tokens": int(completion),
                "credits": micro_to_credits(int(amount)),
            }
            for key, calls, prompt, completion, amount in result
        ]

    def forecast(self, days: int = 14, now: datetime | None = None) -> Forecast:
        """The depletion date at the mean daily spend of the last ``days`` days, with a 95 %
        band from the spread of the complete days (Student's t).

        The window starts no earlier than the ledger's first entry (a new appliance is not
        credited with days it did not exist) and spans at least one day; today counts for the
        part of it that has passed."""
        if not 1 <= days <= 366:
            raise InvalidRequest("days is from 1 to 366.", field="days")
        now = (now or datetime.now(UTC)).astimezone(UTC)
        today = now.date()
        start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), UTC)
        with self.db.read() as session:
            # The ledger's first entry, and its first charge (by the settle-time index; a
            # charge recorded with an earlier clock than the first entry's counts): two index
            # lookups, never a scan of the whole ledger.
            firsts = [
                session.scalar(
                    select(CreditLedgerEntry.created_at).order_by(CreditLedgerEntry.id).limit(1)
                ),
                session.scalar(
                    select(func.min(CreditLedgerEntry.created_at)).where(
                        CreditLedgerEntry.kind == "settle"
                    )
                ),
            ]
        available = self.meter.balance().available
        known = [_aware_utc(moment) for moment in firsts if moment is not None]
        if not known:
            return Forecast(available, 0.0, 0, None, None, None)
        start = max(start, min(known))
        con = self._connect(start, None)
        try:
            per_day = {d: int(a) for d, a in con.execute(DAILY).fetchall()}
        finally:
            con.close()
        elapsed = max((now - start).total_seconds() / 86_400, 1.0)
        rate = sum(per_day.values()) / elapsed
        # Whole days only: not today, nor the first day when the ledger began during it.
        first_whole = start.date() + timedelta(days=int(start.time() != datetime.min.time()))
        complete = [
            per_day.get(first_whole + timedelta(days=i), 0)
            for i in range((today - first_whole).days)
        ]

        def when(per_day_rate: float) -> date | None:
            if per_day_rate <= 0:
                return None
            return today + timedelta(days=int(available / per_day_rate))

        observed = (today - start.date()).days + 1
        if len(complete) < MIN_BAND_DAYS:
            return Forecast(available, rate, observed, when(rate), None, None)
        margin = t_quantile(len(complete) - 1) * statistics.stdev(complete)
        margin /= math.sqrt(len(complete))
        return Forecast(
            available, rate, observed, when(rate), when(rate + margin), when(rate - margin)
        )

    def recommendations(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Ways to spend less: agents whose remote traffic a local model could serve, and
        calls whose reservations far exceed what they settle (lower max_tokens)."""
        local = self.meter.prices.for_model("local", "*")
        con = self._connect(since, None)
        try:
            remote = con.execute(REMOTE_AGENTS).fetchall()
            over = con.execute(OVER_RESERVED).fetchall()
        finally:
            con.close()
        found: list[dict[str, Any]] = []
        for agent, model, calls, amount, prompt, completion, avg_completion in remote:
            local_cost = local.tokens_cost(int(prompt), int(completion))
            if local_cost < int(amount):
                found.append(
                    {
                        "kind": "use_local_model",
                        "agent": agent,
                        "model": model,
                        "calls": int(calls),
                        "credits": micro_to_credits(int(amount)),
                        "credits_if_local": micro_to_credits(local_cost),
                        "message": (
                            f"Agent {agent} spent {micro_to_credits(int(amount)):g} credits on "
                            f"{model} over {calls} calls (answers of {avg_completion:.0f} tokens "
                            f"on average); a local model would cost about "
                            f"{micro_to_credits(local_cost):g}."
                        ),
                    }
                )
        for agent, model, calls, reserved, settled in over:
            found.append(
                {
                    "kind": "lower_max_tokens",
                    "agent": agent,
                    "model": model,
                    "calls": int(calls),
                    "reserved": micro_to_credits(int(reserved)),
                    "settled": micro_to_credits(int(settled)),
                    "message": (
                        f"Agent {agent} on {model} settles {100 * int(settled) / int(reserved):.0f} % "
                        "of what it reserves: a lower max_tokens would hold fewer credits."
                    ),
                }
            )
        return found

    def statement(self, month: str, group_id: int | None = None) -> str:
        """The month's (``YYYY-MM``) charges per group, user and model as CSV (chargeback),
        ending with a ``(total)`` row. Without ``group_id`` the credits column adds up to the
        month's charges in the ledger (see ``ATTRIBUTED`` for users in several groups)."""
        start = _month_start(month)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        con = self._connect(start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
        try:
            if (
                group_id is not None
                and not con.execute(
                    "SELECT id FROM groups WHERE id = $g", {"g": group_id}
                ).fetchall()
            ):
                raise NotFound("There is no such group.", field="group_id")
            rows = con.execute(STATEMENT, {"group_id": group_id}).fetchall()
        finally:
            con.close()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(STATEMENT_COLUMNS)
        totals = [0, 0, 0, 0]
        counted: set[tuple[int | None, str]] = set()
        for group, user, user_id, model, parts, calls, prompt, completion, amount in rows:
            writer.writerow(
                [
                    _cell(group),
                    _cell(user),
                    _cell(model),
                    f"1/{parts}",
                    calls,
                    prompt,
                    completion,
                    f"{micro_to_credits(int(amount)):.6f}",
                ]
            )
            totals[3] += int(amount)
            if (user_id, model) not in counted:  # a user's calls count once in the total
                counted.add((user_id, model))
                totals[0] += int(calls)
                totals[1] += int(prompt)
                totals[2] += int(completion)
        writer.writerow([TOTAL_ROW, "", "", "", *totals[:3], f"{micro_to_credits(totals[3]):.6f}"])
        return out.getvalue()


def _month_start(month: str) -> datetime:
    """The first instant (naive UTC) of ``YYYY-MM``; InvalidRequest otherwise."""
    message = f"month is YYYY-MM, from {FIRST_YEAR}-01 to {LAST_YEAR}-12."
    if not isinstance(month, str) or len(month) != 7 or month[4] != "-":
        raise InvalidRequest(message, field="month")
    try:
        start = datetime.strptime(month, "%Y-%m")
    except ValueError as exc:
        raise InvalidRequest(message, field="month") from exc
    if not FIRST_YEAR <= start.year <= LAST_YEAR:
        raise InvalidRequest(message, field="month")
    return start


def _arrow(rows: Any, schema: tuple[tuple[str, pa.DataType], ...]) -> pa.Table:
    """Rows (tuples) as an Arrow table with explicit column types (also when empty)."""
    return pa.table(
        {name: pa.array([row[i] for row in rows], kind) for i, (name, kind) in enumerate(schema)}
    )


def _cell(value: Any) -> str:
    cell = str(value)
    # A cell a spreadsheet would run as a formula is quoted (OWASP CSV injection).
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
