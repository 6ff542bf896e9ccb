"""A client-side request rate limit shared by every thread that uses one client.

Keeps a large backfill or a wide ``create_check`` fan-out under the account's allowance instead of
learning it from 429s. It is a GCRA (the "virtual scheduling" form of a token bucket): each caller
reserves the next free slot under a lock and sleeps outside it, so threads never wait on each other
longer than their own slot.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from numberyo_provider.errors import ConfigurationError


class RateLimiter:
    """At most ``requests_per_second`` on average, with up to ``burst`` requests at once."""

    def __init__(
        self,
        requests_per_second: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if (
            isinstance(requests_per_second, bool)
            or not isinstance(requests_per_second, int | float)
            or not math.isfinite(requests_per_second)
            or requests_per_second <= 0
        ):
            raise ConfigurationError(
                f"requests_per_second must be a number > 0 (or None for no limit), "
                f"got {requests_per_second!r}"
            )
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(f"burst must be an integer >= 1, got {burst!r}")
        self.requests_per_second = float(requests_per_second)
        self.burst = burst
        self._interval = 1.0 / self.requests_per_second
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot: float | None = None  # the "theoretical arrival time"

    def __repr__(self) -> str:
        return f"RateLimiter(requests_per_second={self.requests_per_second:g}, burst={self.burst})"

    def reserve(self) -> float:
        """Claim the next slot; returns how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            slot = now if self._next_slot is None else max(self._next_slot, now)
            wait = max(0.0, slot - self._tolerance - now)
            self._next_slot = slot + self._interval
        return wait

    def acquire(self) -> float:
        """Block until this caller may send; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


__all__ = ["RateLimiter"]
