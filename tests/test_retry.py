"""The retry decision, the backoff and the Retry-After parser (pure functions, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from numberyo_provider.api.retry import Failure, RetryPolicy, may_retry, parse_retry_after
from numberyo_provider.errors import ConfigurationError

# The matrix in docs/client.md, row by row: (method, outcome, retried?).
MATRIX = [
    ("GET", Failure.CONNECT_FAILED, True),
    ("GET", Failure.READ_TIMEOUT, True),
    ("GET", Failure.CONNECTION_LOST, True),
    ("GET", Failure.CERTIFICATE, False),
    ("GET", Failure.INVALID_REQUEST, False),
    ("GET", 408, True),
    ("GET", 429, True),
    ("GET", 500, True),
    ("GET", 502, True),
    ("GET", 503, True),
    ("GET", 504, True),
    ("GET", 501, False),
    ("GET", 505, False),
    ("GET", 400, False),
    ("GET", 401, False),
    ("GET", 403, False),
    ("GET", 404, False),
    ("GET", 422, False),
    ("POST", Failure.CONNECT_FAILED, True),
    ("POST", Failure.READ_TIMEOUT, False),
    ("POST", Failure.CONNECTION_LOST, False),
    ("POST", Failure.CERTIFICATE, False),
    ("POST", Failure.INVALID_REQUEST, False),
    ("POST", 429, True),
    ("POST", 503, True),
    ("POST", 408, False),
    ("POST", 500, False),
    ("POST", 502, False),
    ("POST", 504, False),
    ("POST", 400, False),
    ("POST", 401, False),
    ("POST", 422, False),
]


@pytest.mark.parametrize(("method", "outcome", "expected"), MATRIX)
def test_retry_matrix(method: str, outcome: int | Failure, expected: bool) -> None:
    assert may_retry(method, outcome) is expected
    assert may_retry(method.lower(), outcome) is expected


def test_retry_after_delta_seconds() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("1.5") == 1.5


def test_retry_after_http_date() -> None:
    now = datetime(2025, 3, 30, 14, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=120), usegmt=True)
    assert header == "Sun, 30 Mar 2025 14:02:00 GMT"
    assert parse_retry_after(header, now=now) == 120.0
    # A date already past means "now", not a negative sleep.
    assert parse_retry_after("Sun, 30 Mar 2025 13:00:00 GMT", now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1e3", "Mon, 99 Foo 2025"])
def test_retry_after_unreadable_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_backoff_is_exponential_capped_and_jittered() -> None:
    top = RetryPolicy(backoff_base=0.5, backoff_max=5.0, max_retries=10, random=lambda: 1.0)
    assert [top.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    half = RetryPolicy(backoff_base=0.5, backoff_max=5.0, random=lambda: 0.5)
    assert half.backoff(3) == 1.0
    zero = RetryPolicy(random=lambda: 0.0)
    assert zero.backoff(4) == 0.0
    # Real jitter stays inside [0, ceiling).
    real = RetryPolicy(backoff_base=0.5, backoff_max=5.0)
    assert all(0.0 <= real.backoff(3) < 2.0 for _ in range(200))
    assert RetryPolicy(random=lambda: 1.0).backoff(10_000) == 30.0  # no overflow


def test_delay_obeys_retry_after_and_bounds() -> None:
    policy = RetryPolicy(max_retries=2, backoff_base=0.1, backoff_max=1.0, retry_after_max=60.0)
    assert policy.delay(1, retry_after=7.0) == 7.0  # above backoff_max: still obeyed
    assert policy.delay(1, retry_after=60.0) == 60.0
    assert policy.delay(1, retry_after=61.0) is None  # too long: give up, caller reschedules
    assert policy.delay(3) is None  # past max_retries
    assert RetryPolicy(max_retries=0).delay(1) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"backoff_base": -0.1},
        {"backoff_max": float("nan")},
        {"retry_after_max": "300"},
    ],
)
def test_policy_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
