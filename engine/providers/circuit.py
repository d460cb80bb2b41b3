"""A circuit breaker per remote endpoint: stop hammering an endpoint that keeps failing.

``closed`` (normal) → ``open`` after ``failure_threshold`` consecutive failures: requests fail at
once with :class:`~engine.errors.CircuitOpen` → ``half_open`` when ``cooldown`` seconds have
passed: one trial request is let through → ``closed`` if it succeeds, ``open`` again (a fresh
cool-down) if it fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from engine.errors import CircuitOpen

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Consecutive-failure circuit breaker; ``clock`` is injectable for tests."""

    def __init__(
        self,
        name: str,
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown >= 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        """The state now (an open circuit whose cool-down has passed reads ``half_open``)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return self._failures

    def before_request(self) -> None:
        """Raise :class:`CircuitOpen` unless a request may go to the endpoint now."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return
        assert self._opened_at is not None
        wait = max(0.0, self.cooldown - (self._clock() - self._opened_at))
        raise CircuitOpen(
            f"Endpoint {self.name!r} failed {self._failures} times in a row; it is tried again "
            f"in {wait:.0f} s.",
            endpoint=self.name,
            retry_after=wait,
        )

    def record_success(self) -> None:
        """The endpoint answered properly: close the circuit."""
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        """The endpoint failed (connection, timeout, 5xx): count it, open at the threshold."""
        self._failures += 1
        if self._trial_in_flight or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._trial_in_flight = False

    def release_trial(self) -> None:
        """A half-open trial ended with neither success nor endpoint failure (e.g. 401)."""
        self._trial_in_flight = False
