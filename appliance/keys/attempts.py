"""Wrong-passphrase counting with exponential backoff, persisted so a restart does not reset it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from appliance.errors import TooManyAttempts
from appliance.store.files import atomic_write_bytes

MAX_DELAY_S = 15 * 60


class UnsealAttempts:
    """Counts failed unseals in a small plain file (it holds no secret: a count and a time)."""

    def __init__(self, path: Path, free_attempts: int) -> None:
        self.path = path
        self.free_attempts = free_attempts

    def _load(self) -> tuple[int, float]:
        try:
            doc = json.loads(self.path.read_text("utf-8"))
            return int(doc["failed"]), float(doc["last_failure"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0.0

    @property
    def failed(self) -> int:
        """Failed attempts since the last success."""
        return self._load()[0]

    def retry_after(self, now: float | None = None) -> float:
        """Seconds to wait before the next attempt is allowed (0 when allowed)."""
        failed, last = self._load()
        if failed < self.free_attempts:
            return 0.0
        delay = min(MAX_DELAY_S, 2 ** (failed - self.free_attempts + 1))
        remaining = last + delay - (now if now is not None else time.time())
        return max(0.0, remaining)

    def check(self) -> None:
        """Raise TooManyAttempts while the backoff window is open."""
        wait = self.retry_after()
        if wait > 0:
            raise TooManyAttempts(
                f"Too many wrong passphrases. Try again in {int(wait) + 1} seconds.",
                retry_after=int(wait) + 1,
            )

    def record_failure(self) -> int:
        """Count one failure; returns the new count."""
        failed, _ = self._load()
        failed += 1
        doc = {"failed": failed, "last_failure": time.time()}
        atomic_write_bytes(self.path, json.dumps(doc).encode(), mode=0o600)
        return failed

    def reset(self) -> None:
        """Forget failures after a successful unseal."""
        self.path.unlink(missing_ok=True)
