"""The search log (analytics rows), written in batches off the search's path.

A write to the database between two searches costs the next one more than the write itself:
SQLite empties every reader's page cache when another connection commits, and the search then
reads (and SQLCipher decrypts) its FTS5 pages again — ~4 ms a search at 100k chunks, against
0.4 ms for the insert. So a search only queues its row; a timer writes what has queued at most
``DELAY_S`` later, in one transaction (at once when ``BATCH`` rows wait). The analytics reads
flush first, so they always see every search of this process, and sealing writes the queue
before the database closes. A row can be lost only when the process dies within that second
(and nothing is written once sealed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from appliance.knowledge.models import KnowledgeSearch
from appliance.store.database import Database

log = structlog.get_logger(__name__)

DELAY_S = 1.0
BATCH = 200


class SearchLog:
    """Queued ``KnowledgeSearch`` rows and the timer that writes them."""

    def __init__(
        self, db: Database, delay_s: float = DELAY_S, alive: Callable[[], bool] = lambda: True
    ) -> None:
        self.db = db
        self.delay_s = delay_s
        # False once the appliance is sealed (or the database replaced): nothing is written.
        self.alive = alive
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._timer: threading.Timer | None = None

    def add(self, **row: Any) -> None:
        """Queue one row (the columns of ``KnowledgeSearch``)."""
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= BATCH
            if not full and self._timer is None:
                self._timer = threading.Timer(self.delay_s, self._flush_quietly)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()

    def flush(self) -> None:
        """Write every queued row now."""
        with self._lock:
            rows, self._rows = self._rows, []
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()  # harmless when the timer itself is flushing
        if not rows:
            return
        if not self.alive():
            log.warning("knowledge.search_log_dropped", rows=len(rows), reason="sealed")
            return
        try:
            self._write(rows)
        except IntegrityError:
            # A searcher deleted since (user_id): write the rest, that row without its user.
            for row in rows:
                try:
                    self._write([row])
                except IntegrityError:
                    self._write([{**row, "user_id": None}])

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.db.write() as session:
            session.add_all([KnowledgeSearch(**row) for row in rows])

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:  # sealed meanwhile, disk full...: analytics never take a thread down
            log.warning("knowledge.search_log_not_written", exc_info=True)
