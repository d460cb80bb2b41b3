"""The price table: credits per 1,000 input/output tokens per model, per second per tool.

A model's price is the row ``provider/model``, else ``provider/*``, else the built-in default
(local models cheap, remote ones dearer). Prices are micro-credits; costs round up to the next
micro-credit. Admins edit the table; every change is audited by the caller.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from appliance.credits.models import CreditPrice
from appliance.errors import InvalidRequest, NotFound
from appliance.licensing.document import credits_to_micro, micro_to_credits
from appliance.store.database import Database
from appliance.store.schema import utcnow

NAME_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,64}/(\*|[A-Za-z0-9._:@/-]{1,128})$")
RELOAD_EVERY = 30.0


@dataclass(frozen=True)
class Price:
    """Micro-credits per 1,000 input and output tokens, and per tool-second."""

    name: str
    input_per_1k: int = 0
    output_per_1k: int = 0
    per_second: int = 0

    def tokens_cost(self, prompt_tokens: int, completion_tokens: int) -> int:
        """What a call with these token counts costs (each part rounded up)."""
        return math.ceil(prompt_tokens * self.input_per_1k / 1000) + math.ceil(
            completion_tokens * self.output_per_1k / 1000
        )

    def seconds_cost(self, seconds: float) -> int:
        return math.ceil(max(seconds, 0.0) * self.per_second)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_per_1k": micro_to_credits(self.input_per_1k),
            "output_per_1k": micro_to_credits(self.output_per_1k),
            "per_second": micro_to_credits(self.per_second),
        }


DEFAULT_LOCAL = Price("local/*", input_per_1k=10_000, output_per_1k=20_000)
DEFAULT_REMOTE = Price("*/*", input_per_1k=1_000_000, output_per_1k=2_000_000)
DEFAULT_TOOL = Price("tool/*", per_second=1_000)


class PriceTable:
    """Prices of ``db``, cached (reloaded every 30 s and after a change made here)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._rows: dict[str, Price] | None = None
        self._loaded = 0.0

    def _table(self) -> dict[str, Price]:
        rows = self._rows
        if rows is not None and time.monotonic() - self._loaded < RELOAD_EVERY:
            return rows
        with self.db.read() as session:
            fresh = {
                r.name: Price(r.name, r.input_per_1k, r.output_per_1k, r.per_second)
                for r in session.scalars(select(CreditPrice))
            }
        with self._lock:
            self._rows, self._loaded = fresh, time.monotonic()
        return fresh

    def for_model(self, provider: str, model: str) -> Price:
        """The price that applies to ``model`` of ``provider``."""
        table = self._table()
        found = table.get(f"{provider}/{model}") or table.get(f"{provider}/*")
        if found is not None:
            return found
        return DEFAULT_LOCAL if provider == "local" else DEFAULT_REMOTE

    def for_tool(self, tool: str) -> Price:
        """The per-second price of a sandbox tool."""
        table = self._table()
        return table.get(f"tool/{tool}") or table.get("tool/*") or DEFAULT_TOOL

    def list(self) -> list[dict[str, Any]]:
        """The stored prices and the built-in defaults (marked ``default``)."""
        table = self._table()
        rows = [dict(p.as_dict(), default=False) for _, p in sorted(table.items())]
        for built_in in (DEFAULT_LOCAL, DEFAULT_REMOTE, DEFAULT_TOOL):
            if built_in.name not in table:
                rows.append(dict(built_in.as_dict(), default=True))
        return rows

    def set(
        self,
        name: str,
        input_per_1k: float | str = 0,
        output_per_1k: float | str = 0,
        per_second: float | str = 0,
    ) -> Price:
        """Create or change one price (credits, up to six decimals)."""
        if not NAME_RE.fullmatch(name):
            raise InvalidRequest(
                "A price name is `provider/model`, `provider/*`, `tool/<name>` or `tool/*`.",
                field="name",
            )
        micro: list[int] = []
        amounts = (
            ("input_per_1k", input_per_1k),
            ("output_per_1k", output_per_1k),
            ("per_second", per_second),
        )
        for field, amount in amounts:
            try:
                micro.append(credits_to_micro(amount))
            except ValueError as exc:
                raise InvalidRequest(f"Invalid price {field}: {exc}.", field=field) from exc
        price = Price(name, *micro)
        with self.db.write() as session:
            row = session.get(CreditPrice, name)
            if row is None:
                row = CreditPrice(name=name)
                session.add(row)
            row.input_per_1k, row.output_per_1k = price.input_per_1k, price.output_per_1k
            row.per_second, row.updated_at = price.per_second, utcnow()
        self._rows = None
        return price

    def remove(self, name: str) -> None:
        """Delete a stored price (the default applies again)."""
        with self.db.write() as session:
            result = session.execute(delete(CreditPrice).where(CreditPrice.name == name))
            if not int(getattr(result, "rowcount", 0) or 0):
                raise NotFound("There is no such price.")
        self._rows = None
