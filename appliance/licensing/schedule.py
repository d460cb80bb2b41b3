"""The daily license check on a timer, so that an idle appliance (no model calls at all) still
moves valid → expiring → grace → read-only, gives its expiry notices, grants the monthly
credits and releases expired reservations.

One daemon thread per unsealed appliance wakes every ``poll_s`` seconds and runs the check when
it is due (a day after the last one, by the license service's clock — which tests inject). A
short poll rather than one long sleep keeps the schedule right across a suspended machine or a
clock that jumps. An error is logged and retried at the next poll; it never stops the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from appliance.errors import EnclaveError

log = structlog.get_logger(__name__)
POLL_SECONDS = 600.0


class DailyCheck:
    """Calls ``due()`` every ``poll_s`` seconds and ``run()`` whenever it says True."""

    def __init__(
        self,
        due: Callable[[], bool],
        run: Callable[[], None],
        *,
        poll_s: float = POLL_SECONDS,
        name: str = "license-daily-check",
    ) -> None:
        self._due = due
        self._run = run
        self.poll_s = poll_s
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # completed checks (for the admin's diagnostics and the tests)

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, waiting for a check in progress to finish."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                if self._due():
                    self._run()
                    self.runs += 1
            except EnclaveError as exc:  # e.g. the disk is full: try again at the next poll
                log.error("license.daily_check_failed", code=exc.code, reason=exc.message)
            except Exception:  # a bug must not end the schedule; it is logged in full
                log.exception("license.daily_check_crashed")
