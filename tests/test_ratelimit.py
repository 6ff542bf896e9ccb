"""The client-side rate limit, on an injected clock (no wall-clock timing)."""

from __future__ import annotations

import threading

import pytest

from numberyo_provider.api.ratelimit import RateLimiter
from numberyo_provider.errors import ConfigurationError


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it (or a test advances it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def test_evenly_spaced() -> None:
    fake = FakeClock()
    limiter = RateLimiter(4, clock=fake.clock, sleep=fake.sleep)
    waits = [limiter.acquire() for _ in range(5)]
    # Five calls at the same instant: the n-th waits n * 0.25 s.
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert fake.sleeps == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_time_passing_frees_slots_but_does_not_bank_them() -> None:
    fake = FakeClock()
    limiter = RateLimiter(2, clock=fake.clock, sleep=fake.sleep)
    assert limiter.acquire() == 0.0
    fake.advance(0.2)
    assert limiter.acquire() == pytest.approx(0.3)  # next slot at +0.5
    fake.advance(10.0)  # idle for long: no burst of 20 saved up
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(0.5)


def test_burst() -> None:
    fake = FakeClock()
    limiter = RateLimiter(10, burst=3, clock=fake.clock, sleep=fake.sleep)
    waits = [limiter.acquire() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_threads_each_get_their_own_slot() -> None:
    fake = FakeClock()
    limiter = RateLimiter(5, clock=fake.clock, sleep=fake.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            w = limiter.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 80 reservations at one instant: exactly the slots 0, 0.2, ..., 15.8, none shared.
    assert sorted(round(w, 6) for w in waits) == [round(i * 0.2, 6) for i in range(80)]


@pytest.mark.parametrize("rps", [0, -1, float("inf"), float("nan"), True, "5"])
def test_rejects_bad_rate(rps: object) -> None:
    with pytest.raises(ConfigurationError, match="requests_per_second"):
        RateLimiter(rps)  # type: ignore[arg-type]


def test_rejects_bad_burst() -> None:
    with pytest.raises(ConfigurationError, match="burst"):
        RateLimiter(1, burst=0)
