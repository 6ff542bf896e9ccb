"""When the client may send a request again, and how long it waits first.

``POST /api/checks`` creates a *paid* check, so the decision is not "was it an error?" but "can
we prove the server did nothing?". :func:`may_retry` is that decision, as one pure function;
:func:`classify_failure` turns a transport exception into the facts it needs. The full matrix is in
``docs/client.md``.
"""

from __future__ import annotations

import random
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum

import urllib3.exceptions

from numberyo_provider.errors import ConfigurationError

#: Methods that change nothing on the server: any failure may be retried.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Statuses for which the server promises it did nothing, so even a paid POST may be resent.
POST_RETRY_STATUSES = frozenset({429, 503})
#: 5xx that say "this will never work" rather than "try later".
_PERMANENT_5XX = frozenset({501, 505})


class Failure(str, Enum):  # noqa: UP042 - StrEnum would print a member as its value, not Failure.NAME
    """What went wrong below HTTP, in the terms the retry decision needs."""

    #: The connection was never established (refused, DNS, connect timeout): nothing was sent.
    CONNECT_FAILED = "connect_failed"
    #: Connected, then no (complete) answer: reset, dropped, cut body, TLS failure mid-way.
    CONNECTION_LOST = "connection_lost"
    #: The request was sent; no complete answer within the timeout (a silent or dripping server,
    #: cut off at the client's deadline).
    READ_TIMEOUT = "read_timeout"
    #: The server's TLS certificate was rejected: nothing sent, and retrying will not help.
    CERTIFICATE = "certificate"
    #: The request could not be built (a URL urllib3 cannot send): nothing sent, permanent.
    INVALID_REQUEST = "invalid_request"


def may_retry(method: str, outcome: int | Failure) -> bool:
    """Whether sending ``method`` again after ``outcome`` (an HTTP status or a Failure) is safe.

    Idempotent requests are retried on every transient failure. Anything else (a paid POST) only
    when the request provably never reached the server (CONNECT_FAILED) or the server said it did
    nothing (429, 503). Never after a read timeout, a dropped connection or a 500/502/504: the
    check may exist.
    """
    idempotent = method.upper() in IDEMPOTENT_METHODS
    if isinstance(outcome, Failure):
        if outcome in (Failure.CERTIFICATE, Failure.INVALID_REQUEST):
            return False
        return outcome is Failure.CONNECT_FAILED or idempotent
    if idempotent:
        return outcome in (408, 429) or (500 <= outcome <= 599 and outcome not in _PERMANENT_5XX)
    return outcome in POST_RETRY_STATUSES


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (args, causes, urllib3's ``reason``), each once."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack and len(seen) < 50:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [*current.args, current.__cause__, current.__context__]
        nested.append(getattr(current, "reason", None))
        stack.extend(e for e in nested if isinstance(e, BaseException))


def classify_failure(exc: BaseException) -> Failure:
    """Map an exception of one urllib3 attempt to a :class:`Failure`, erring towards "maybe sent".

    Only a connection that was never established counts as CONNECT_FAILED: urllib3 raises
    ``NewConnectionError`` (refused, DNS, via ``NameResolutionError``) or ``ConnectTimeoutError``
    before a byte of the request is written. A reset, a ``RemoteDisconnected``, a proxy that
    failed (it may have forwarded the request) or a timeout while reading all happen after
    sending, or may have.
    """
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):  # NewConnectionError included
        return Failure.CONNECT_FAILED
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return Failure.READ_TIMEOUT
    chain = list(_chain(exc))
    if isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError):
        if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
            return Failure.CERTIFICATE
        return Failure.CONNECTION_LOST
    if isinstance(exc, urllib3.exceptions.LocationValueError):  # a URL urllib3 cannot send
        return Failure.INVALID_REQUEST
    return Failure.CONNECTION_LOST


_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    ``None`` when absent or unreadable (the caller then uses its own backoff); a date in the past
    means 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff and full jitter.

    ``max_retries`` counts resends, so a request is tried at most ``max_retries + 1`` times. A
    server's ``Retry-After`` is obeyed as given, even above ``backoff_max``; when it asks for more
    than ``retry_after_max`` the client stops and raises (carrying ``retry_after``) rather than
    block a worker for that long or come back early.
    """

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 300.0
    #: Source of jitter in [0, 1); injectable for deterministic tests.
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ConfigurationError(f"max_retries must be an integer, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("backoff_base", "backoff_max", "retry_after_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")

    def longest_waits(self, *, retry_after: bool) -> float:
        """The most all retry waits of one request can add up to: each backoff at its ceiling,
        or, with ``retry_after``, each wait a ``Retry-After`` of up to ``retry_after_max``."""
        total = 0.0
        for n in range(1, self.max_retries + 1):
            ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(n - 1, 62))
            total += max(ceiling, self.retry_after_max) if retry_after else ceiling
        return total

    def backoff(self, retry_number: int) -> float:
        """Full jitter: uniform in [0, min(backoff_max, backoff_base * 2**(retry_number - 1)))."""
        exponent = min(max(retry_number - 1, 0), 62)
        ceiling = min(self.backoff_max, self.backoff_base * 2.0**exponent)
        return self.random() * ceiling

    def delay(self, retry_number: int, retry_after: float | None = None) -> float | None:
        """Seconds to sleep before retry ``retry_number`` (1-based); ``None``: do not retry."""
        if retry_number > self.max_retries:
            return None
        if retry_after is not None:
            if retry_after > self.retry_after_max:
                return None
            return max(0.0, retry_after)
        return self.backoff(retry_number)


__all__ = [
    "IDEMPOTENT_METHODS",
    "POST_RETRY_STATUSES",
    "Failure",
    "RetryPolicy",
    "classify_failure",
    "may_retry",
    "parse_retry_after",
]
