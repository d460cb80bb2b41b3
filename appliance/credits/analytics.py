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
from sqlalchemy import select

from appliance.credits.meter import CreditMeter
from appliance.credits.models import CreditLedgerEntry
from appliance.errors import InvalidRequest
from appliance.identity.models import Group, GroupMember, User
from appliance.licensing.document import micro_to_credits
from appliance.store.database import Database

# One fixed query per dimension (never assembled from input).
USAGE_QUERIES = {
    "user": """
        SELECT coalesce(u.username, 'system') AS key, count(s.prompt_tokens) AS calls,
               sum(coalesce(s.prompt_tokens, 0)) AS prompt_tokens,
               sum(coalesce(s.completion_tokens, 0)) AS completion_tokens, sum(s.amount) AS amount
        FROM charges s LEFT JOIN users u ON u.id = s.user_id
        GROUP BY 1 ORDER BY amount DESC""",
    "group": """
        SELECT g.name AS key, count(s.prompt_tokens) AS calls,
               sum(coalesce(s.prompt_tokens, 0)) AS prompt_tokens,
               sum(coalesce(s.completion_tokens, 0)) AS completion_tokens, sum(s.amount) AS amount
        FROM charges s JOIN members m ON m.user_id = s.user_id JOIN groups g ON g.id = m.group_id
        GROUP BY 1 ORDER BY amount DESC""",
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
STATEMENT = """
    SELECT g.name AS group_name, coalesce(u.username, CAST(s.user_id AS VARCHAR)) AS username,
           s.provider || '/' || s.model AS model, count(s.prompt_tokens) AS calls,
           sum(coalesce(s.prompt_tokens, 0)) AS prompt_tokens,
           sum(coalesce(s.completion_tokens, 0)) AS completion_tokens, sum(s.amount) AS amount
    FROM charges s JOIN members m ON m.user_id = s.user_id JOIN groups g ON g.id = m.group_id
    LEFT JOIN users u ON u.id = s.user_id
    WHERE s.created_at >= $start AND s.created_at < $end AND ($group_id IS NULL OR g.id = $group_id)
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
STATEMENT_COLUMNS = (
    "group",
    "user",
    "model",
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "credits",
)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class Forecast:
    """When the free balance runs out at the recent daily rate, with a ~95 % band."""

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
        con = duckdb.connect(":memory:")
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
        return con

    def usage(
        self, by: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Charges grouped by ``user``, ``group``, ``agent``, ``model`` or ``day``."""
        query = USAGE_QUERIES.get(by)
        if query is None:
            raise InvalidRequest(f"by is one of {', '.join(USAGE_QUERIES)}.", field="by")
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
        """The depletion date at the mean daily spend of the last ``days`` days (days without
        spending count as zero), with a band from the daily spread."""
        if not 1 <= days <= 366:
            raise InvalidRequest("days is from 1 to 366.", field="days")
        now = now or datetime.now(UTC)
        today = now.astimezone(UTC).date()
        start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), UTC)
        con = self._connect(start, None)
        try:
            per_day = {d: int(a) for d, a in con.execute(DAILY).fetchall()}
        finally:
            con.close()
        series = [per_day.get(today - timedelta(days=i), 0) for i in range(days)]
        available = self.meter.balance().available
        rate = statistics.fmean(series)
        spread = statistics.stdev(series) if len(series) > 1 else 0.0
        margin = 1.96 * spread / math.sqrt(len(series))

        def when(per_day_rate: float) -> date | None:
            if per_day_rate <= 0:
                return None
            return today + timedelta(days=int(available / per_day_rate))

        return Forecast(available, rate, days, when(rate), when(rate + margin), when(rate - margin))

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
        """The month's (``YYYY-MM``) charges per group, user and model as CSV (chargeback)."""
        try:
            start = datetime.strptime(month, "%Y-%m")
        except ValueError as exc:
            raise InvalidRequest("month is YYYY-MM.", field="month") from exc
        end = (start + timedelta(days=32)).replace(day=1)
        con = self._connect(start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
        try:
            rows = con.execute(
                STATEMENT, {"start": start, "end": end, "group_id": group_id}
            ).fetchall()
        finally:
            con.close()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(STATEMENT_COLUMNS)
        for group, user, model, calls, prompt, completion, amount in rows:
            writer.writerow(
                [
                    _cell(group),
                    _cell(user),
                    _cell(model),
                    calls,
                    prompt,
                    completion,
                    f"{micro_to_credits(int(amount)):.6f}",
                ]
            )
        return out.getvalue()


def _arrow(rows: Any, schema: tuple[tuple[str, pa.DataType], ...]) -> pa.Table:
    """Rows (tuples) as an Arrow table with explicit column types (also when empty)."""
    return pa.table(
        {name: pa.array([row[i] for row in rows], kind) for i, (name, kind) in enumerate(schema)}
    )


def _cell(value: Any) -> str:
    cell = str(value)
    # A cell a spreadsheet would run as a formula is quoted (OWASP CSV injection).
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
