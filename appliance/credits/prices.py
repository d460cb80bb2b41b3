"""The price table: credits per 1,000 input/output tokens per model, per second per tool.

A model's price is the row ``provider/model``, else ``provider/*``, else the built-in default
(local models cheap, remote ones dearer). Prices are micro-credits; costs round up to the next
micro-credit. Admins edit the table; every change is audited by the caller.

Within the license: a license may set a minimum price per class of use (``local`` models,
``remote`` ones, ``tool`` seconds; ``min_prices``). Setting a price below it is refused
(``price_below_license``), and every price charged is raised to it — a stored price or a
default lower than the minimum of a license imported later included.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import delete, select

from appliance.credits.errors import PriceBelowLicense
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

    def at_least(self, floor: tuple[int, int, int] | None) -> Price:
        """This price with each part raised to ``floor`` (input, output, per second)."""
        if floor is None:
            return self
        low_in, low_out, low_s = floor
        least = (
            self.input_per_1k >= low_in
            and self.output_per_1k >= low_out
            and self.per_second >= low_s
        )
        if least:
            return self
        return replace(
            self,
            input_per_1k=max(self.input_per_1k, low_in),
            output_per_1k=max(self.output_per_1k, low_out),
            per_second=max(self.per_second, low_s),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_per_1k": micro_to_credits(self.input_per_1k),
            "output_per_1k": micro_to_credits(self.output_per_1k),
            "per_second": micro_to_credits(self.per_second),
        }


def price_class(name: str) -> str:
    """The license's class of a price name: ``tool``, ``local`` or ``remote``."""
    provider = name.split("/", 1)[0]
    return provider if provider in ("tool", "local") else "remote"


# The license's minimum per class: input, output (per 1k tokens), per second; micro-credits.
Floors = Mapping[str, tuple[int, int, int]]


DEFAULT_LOCAL = Price("local/*", input_per_1k=10_000, output_per_1k=20_000)
DEFAULT_REMOTE = Price("*/*", input_per_1k=1_000_000, output_per_1k=2_000_000)
DEFAULT_TOOL = Price("tool/*", per_second=1_000)


class PriceTable:
    """Prices of ``db``, cached (reloaded every 30 s and after a change made here)."""

    def __init__(self, db: Database, floors: Callable[[], Floors] = dict) -> None:
        self.db = db
        # The license in force's minimum prices (licensing wires this; none by default).
        self.floors = floors
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
        if found is None:
            found = DEFAULT_LOCAL if provider == "local" else DEFAULT_REMOTE
        return found.at_least(self.floors().get("local" if provider == "local" else "remote"))

    def for_tool(self, tool: str) -> Price:
        """The per-second price of a sandbox tool."""
        table = self._table()
        found = table.get(f"tool/{tool}") or table.get("tool/*") or DEFAULT_TOOL
        return found.at_least(self.floors().get("tool"))

    def list(self) -> list[dict[str, Any]]:
        """The stored prices and the built-in defaults (marked ``default``), each with the
        license's ``minimum`` for its class (None without one) and what is ``charged``."""
        table, floors = self._table(), self.floors()
        listed = [(p, False) for _, p in sorted(table.items())]
        for built_in in (DEFAULT_LOCAL, DEFAULT_REMOTE, DEFAULT_TOOL):
            if built_in.name not in table:
                listed.append((built_in, True))
        rows = []
        for price, default in listed:
            floor = floors.get(price_class(price.name))
            minimum = None if floor is None else Price(price.name, *floor).as_dict()
            charged = price.at_least(floor).as_dict()
            rows.append(dict(price.as_dict(), default=default, minimum=minimum, charged=charged))
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
        floor = self.floors().get(price_class(name))
        if floor is not None:
            for field, value, least in zip(
                ("input_per_1k", "output_per_1k", "per_second"), micro, floor, strict=True
            ):
                if value < least:
                    raise PriceBelowLicense(
                        f"The license sets a minimum of {micro_to_credits(least):g} credits for "
                        f"{field} of {price_class(name)} use; {micro_to_credits(value):g} is "
                        "below it. Set at least the minimum, or import a license without it.",
                        field=field,
                    )
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
