"""The NumberYo HTTP client: typed answers, precise errors, retries that never double-charge.

One :class:`NumberYoClient` owns one ``requests.Session``; share it between worker threads (size
``pool_size`` to their number). Retry decisions live in :mod:`numberyo_provider.retry`, the rate
limit in :mod:`numberyo_provider.ratelimit`; the behaviour is summarised in ``docs/client.md``.

Every rule that decides behaviour (token and URL cleaning, headers, the size limit, decoding, the
status -> exception mapping, what is retried) lives in :class:`_ClientCore`, which the asyncio path
(:mod:`numberyo_provider.async_client`) shares: a transport only sends one attempt.

The token never appears in a message, a log line, a ``repr`` or an exception chain: it lives only
in the session's auth object, requests' own exceptions (which hold the request and its headers) are
reduced to a redacted description before we raise, and our exceptions are raised outside of the
``except`` block so they do not carry requests' exception as ``__context__``.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import requests.auth
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict

from numberyo_provider import __version__
from numberyo_provider.config import TOKEN_ENV
from numberyo_provider.deadline import Deadline, DeadlineAdapter, armed, attach_response
from numberyo_provider.errors import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    InsufficientCreditsError,
    NotFoundError,
    NumberYoAPIError,
    OutcomeUnknownError,
    RateLimitedError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
    UnsupportedCheckTypeError,
    ValidationError,
    validation_details,
)
from numberyo_provider.models import (
    Check,
    CheckPage,
    CheckResults,
    CreatedCheck,
    canonical_check_type,
)
from numberyo_provider.ratelimit import RateLimiter
from numberyo_provider.retry import (
    IDEMPOTENT_METHODS,
    Failure,
    RetryPolicy,
    classify_failure,
    may_retry,
    parse_retry_after,
)

DEFAULT_BASE_URL = "https://www.numberyo.tech"
#: Where users are told to put the token (the Airflow hook reads the connection password).
TOKEN_ENV_VAR = TOKEN_ENV
USER_AGENT = f"airflow-provider-numberyo/{__version__} (+python-requests/{requests.__version__})"

CHECKS_PATH = "/api/checks"

#: Seconds one attempt may take, from connect to the last byte of the answer.
DEFAULT_TIMEOUT = 30.0
#: Seconds to establish the connection (capped by the total timeout).
DEFAULT_CONNECT_TIMEOUT = 5.0
#: The largest answer read, in MiB: a results page is a few KiB, a listing page about 5 KiB.
DEFAULT_MAX_RESPONSE_MB = 32.0
#: JSON nested deeper than this is refused: a real answer is about 4 levels deep.
MAX_JSON_DEPTH = 64

log = logging.getLogger("numberyo_provider.client")

_TRANSPORT_ERRORS = (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException)
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: safe in a header
_REDACTED = "***"
_MAX_SNIPPET = 300
#: How much of an error answer (non-2xx) is read: enough for any message, never a flood.
_MAX_ERROR_BODY = 64 * 1024
_CHUNK = 64 * 1024
_MIB = 1024 * 1024


class _BearerAuth(requests.auth.AuthBase):
    """Adds the Authorization header at send time, so the token sits in no headers dict we own."""

    __slots__ = ("_header", "_token")

    def __init__(self, token: str) -> None:
        self._token = token
        self._header = f"Bearer {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    @property
    def header(self) -> str:
        """The Authorization header's value, for a transport that sets headers itself."""
        return self._header

    def __repr__(self) -> str:
        return f"<BearerAuth {_REDACTED}>"

    def redact(self, value: Any) -> Any:
        """``value`` (text, or JSON made of dicts and lists) with every copy of the token masked."""
        if isinstance(value, str):
            return value.replace(self._token, _REDACTED) if self._token in value else value
        if isinstance(value, Mapping):
            return {self.redact(k): self.redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        return value


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    headers: CaseInsensitiveDict[str]
    content: bytes | bytearray


@dataclass(frozen=True)
class _Failed:
    failure: Failure
    detail: str


@dataclass(frozen=True)
class _TooLarge:
    """A 2xx answer over the size limit: refused, never retried (it would be as large again)."""

    status: int
    declared: int | None
    received: int


@dataclass(frozen=True)
class _Step:
    """What one attempt means: a 2xx answer's ``(status, body)``, or the wait before the next."""

    status: int = 0
    body: Any = None
    retry_in: float | None = None


class _Body:
    """An answer's body as it arrives, under the size limit: the one reading rule of both the
    sync and the async transport (a 2xx over the limit is refused, an error answer is cut)."""

    __slots__ = ("content", "declared", "limit", "size", "status", "success")

    def __init__(self, status: int, headers: Mapping[str, str], max_bytes: int) -> None:
        self.status = status
        self.success = 200 <= status < 300
        self.limit = max_bytes if self.success else min(max_bytes, _MAX_ERROR_BODY)
        self.declared = _content_length(headers)
        # One piece (the usual, small answer) stays as it came; more are appended to one
        # bytearray, which grows in place (no second copy of a large body at the end).
        self.content: bytes | bytearray = b""
        self.size = 0

    def refused(self) -> _TooLarge | None:
        """A 2xx announcing more than the limit: refused before a byte of its body is read."""
        if self.success and self.declared is not None and self.declared > self.limit:
            return _TooLarge(self.status, self.declared, 0)
        return None

    def add(self, chunk: bytes) -> _TooLarge | bool:
        """Take one piece; ``True`` when reading must stop (an error answer cut at its limit),
        a ``_TooLarge`` for a 2xx that grew past the limit, ``False`` to read on."""
        self.size += len(chunk)
        if self.size > self.limit:
            if self.success:
                return _TooLarge(self.status, self.declared, self.size)
            self.content = bytes(self.content) + chunk[: len(chunk) - (self.size - self.limit)]
            return True
        if not self.content:
            self.content = chunk
        else:
            if isinstance(self.content, bytes):
                self.content = bytearray(self.content)
            self.content += chunk
        return False


# --- input validation (all before any request: no money at risk) ----------------------------


def _clean_token(token: Any) -> str:
    if not isinstance(token, str):
        raise ConfigurationError(
            f"the NumberYo API token must be a string, got {type(token).__name__}: set "
            f"{TOKEN_ENV_VAR} or the password of the Airflow connection"
        )
    # Pasted with its header prefix ("Bearer abc"): keep the token only.
    text = re.sub(r"^bearer(?:\s+|$)", "", token.strip(), flags=re.IGNORECASE)
    if not text:
        raise ConfigurationError(
            f"the NumberYo API token is empty: set {TOKEN_ENV_VAR} or the password of the Airflow "
            "connection (generate a token on the NumberYo dashboard)"
        )
    if not _TOKEN_CHARS.fullmatch(text):
        raise ConfigurationError(
            "the NumberYo API token contains spaces, control or non-ASCII characters (not shown "
            f"here): copy it again from the dashboard into {TOKEN_ENV_VAR} or the connection"
        )
    return text


def _likely_scheme(host_and_port: str) -> str:
    """``http`` for a loopback or private address (a simulator, a local proxy), else ``https``."""
    import ipaddress

    host = host_and_port.split("/", 1)[0]
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host.strip("[]")
    if host.lower() == "localhost":
        return "http"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "https"
    return "http" if address.is_loopback or address.is_private else "https"


def _clean_base_url(base_url: Any) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigurationError(
            f"base_url is empty: use the API's address, e.g. {DEFAULT_BASE_URL!r}"
        )
    text = base_url.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigurationError(f"base_url {base_url!r} is not a valid URL: {exc}") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "base_url must not contain credentials (user:password@); pass the API token as the "
            "token instead"
        )
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        hint = f"; did you mean '{_likely_scheme(text)}://{text}'?" if "://" not in text else ""
        raise ConfigurationError(
            f"base_url {base_url!r} needs an http:// or https:// scheme and a host, e.g. "
            f"{DEFAULT_BASE_URL!r}{hint}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url {base_url!r} must not have a query or a fragment")
    path = parts.path.rstrip("/")
    if path.lower().endswith("/api"):
        raise ConfigurationError(
            f"base_url {base_url!r} ends with /api, but the client adds /api/... itself: use "
            f"{parts.scheme}://{parts.netloc}{path[:-4]!s}"
        )
    return f"{parts.scheme.lower()}://{parts.netloc}{path}"


def _positive(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _clean_timeout(timeout: Any) -> tuple[float, float]:
    """``(connect, total)`` seconds; one number is the total, with the default connect cap."""
    if isinstance(timeout, tuple | list):
        if len(timeout) != 2:
            raise ConfigurationError(
                f"timeout must be seconds or a (connect, total) pair, got {timeout!r}"
            )
        connect, total = _positive("connect timeout", timeout[0]), _positive("timeout", timeout[1])
    else:
        total = _positive("timeout", timeout)
        connect = DEFAULT_CONNECT_TIMEOUT
    return min(connect, total), total


def _clean_max_response_mb(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"max_response_mb must be a number of MiB > 0, got {value!r}")
    return max(1, int(value * _MIB))


def _clean_phone_number(phone_number: Any) -> str:
    if isinstance(phone_number, int) and not isinstance(phone_number, bool):
        phone_number = str(phone_number)
    if not isinstance(phone_number, str):
        raise ConfigurationError(
            f"phone_number must be a string of digits, got {type(phone_number).__name__}"
        )
    digits = "".join(phone_number.split())
    if digits.startswith("+"):
        digits = digits[1:]
    if not re.fullmatch(r"[0-9]+", digits):
        raise ConfigurationError(
            f"phone_number {phone_number!r} must be digits in international format, e.g. "
            "32456789023 or +32 456789023; normalise numbers before sending them"
        )
    return digits


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    return value


# --- response helpers ------------------------------------------------------------------------


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SNIPPET else text[: _MAX_SNIPPET - 3] + "..."


def _snippet(content: bytes | bytearray) -> str:
    return _clip(" ".join(content.decode("utf-8", "replace").split()))


def _error_body(content: bytes | bytearray) -> Any:
    """An error answer's body: its JSON when it has some, else a short excerpt of the text."""
    if not content:
        return None
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return _snippet(content)
    return body if _depth_at_most(body, MAX_JSON_DEPTH) else _snippet(content)


def _depth_at_most(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests at most ``limit`` levels; iterative, so it cannot recurse."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("Content-Length")
    if value is None or not value.strip().isdigit() or len(value.strip()) > 30:
        return None  # absent or unreadable: http.client then reads to the end; we still count
    return int(value.strip())


def _server_message(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return None
    for key in ("error", "message"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _says_no_credits(body: Any) -> bool:
    if not isinstance(body, Mapping):
        return False
    return any(
        isinstance(body.get(k), str) and "enough credits" in body[k].lower()
        for k in ("error", "message")
    )


def _innermost(exc: BaseException) -> BaseException:
    """The informative end of requests' wrapping (``MaxRetryError.reason``, etc.)."""
    current = exc
    for _ in range(5):
        inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        reason = getattr(inner, "reason", None)
        if isinstance(reason, BaseException):
            inner = reason
        if inner is None:
            break
        current = inner
    return current


class _ClientCore:
    """Everything that decides behaviour, shared by :class:`NumberYoClient` (requests, threads)
    and :class:`~numberyo_provider.async_client.AsyncNumberYoClient` (httpx, asyncio): the
    cleaned token, base URL, timeouts and limits, the headers, the retry policy and rate limit,
    and what an attempt's result means (:meth:`_settle`: decode, retry or which error). A
    transport only sends one attempt and reads its body through :class:`_Body`."""

    def __init__(
        self,
        token: str,
        base_url: str,
        *,
        timeout: float | tuple[float, float],
        max_response_mb: float,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        retry_after_max: float,
        requests_per_second: float | None,
        rate_limiter: RateLimiter | None,
        limiter_sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._auth = _BearerAuth(_clean_token(token))
        self._base_url = _clean_base_url(base_url)
        self._timeout = _clean_timeout(timeout)
        self._max_response_mb = max_response_mb
        self._max_bytes = _clean_max_response_mb(max_response_mb)
        self._policy = RetryPolicy(
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
        )
        if rate_limiter is not None and requests_per_second is not None:
            raise ConfigurationError("pass requests_per_second or rate_limiter, not both")
        if requests_per_second is not None:
            rate_limiter = RateLimiter(requests_per_second, sleep=limiter_sleep)
        self._limiter = rate_limiter
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        # The base URL as it goes on the wire (an international host name IDNA-encoded), once.
        wire = requests.PreparedRequest()
        wire.prepare_url(self._base_url, None)
        self._wire_base_url = str(wire.url).rstrip("/")

    def _environment(self, verify_ssl: bool) -> tuple[dict[str, str], bool | str]:
        """Proxies for base_url and the TLS verification setting, read from the environment
        once (``HTTPS_PROXY``/``NO_PROXY``, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``)."""
        proxies = dict(requests.utils.get_environ_proxies(self._base_url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        return proxies, ((ca_bundle or True) if verify_ssl else False)

    # --- plumbing ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._policy

    @property
    def rate_limiter(self) -> RateLimiter | None:
        return self._limiter

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, total)`` seconds of one attempt."""
        return self._timeout

    @property
    def max_response_bytes(self) -> int:
        return self._max_bytes

    def longest_request_seconds(self) -> float:
        """The longest one call can take against a dead or dripping server: every attempt cut
        off at the timeout, plus the longest backoff before each retry (client-side rate-limit
        waits not included). A ``Retry-After`` can stretch each wait up to ``retry_after_max``:
        see :meth:`RetryPolicy.longest_waits`."""
        attempts = self._policy.max_retries + 1
        return attempts * self._timeout[1] + self._policy.longest_waits(retry_after=False)

    # --- the rules -----------------------------------------------------------------------------

    def _settle(
        self,
        method: str,
        shown: str,
        result: _Answer | _Failed | _TooLarge,
        attempt: int,
        elapsed_ms: float,
    ) -> _Step:
        """What attempt number ``attempt`` came to: a 2xx answer's decoded body, or the wait
        before the next attempt; raises the error when the request is over. Called outside any
        ``except`` block, so what it raises carries no transport exception as ``__context__``."""
        retry_after: float | None = None
        if isinstance(result, _TooLarge):
            log.debug("%s %s -> %d, too large", method, shown, result.status)
            raise ResponseTooLargeError(
                self._max_bytes,
                declared=result.declared,
                received=result.received,
                method=method,
                path=shown,
                status=result.status,
            )
        if isinstance(result, _Answer):
            log.debug("%s %s -> %d in %.1f ms", method, shown, result.status, elapsed_ms)
            if 200 <= result.status < 300:
                return _Step(result.status, self._decode(method, shown, result))
            outcome: int | Failure = result.status
            what = f"{result.status} {result.reason}".strip()
            if result.status == 429 or result.status >= 500:
                retry_after = parse_retry_after(result.headers.get("Retry-After"))
        else:
            log.debug("%s %s -> %s in %.1f ms", method, shown, result.failure.value, elapsed_ms)
            outcome = result.failure
            what = f"{result.failure.value} ({result.detail})"

        delay = self._policy.delay(attempt, retry_after) if may_retry(method, outcome) else None
        if delay is None:
            tried = f"gave up after {attempt} attempts" if attempt > 1 else None
            if isinstance(result, _Answer):
                raise self._status_error(method, shown, result, retry_after, tried)
            raise self._transport_error(method, shown, result, tried)
        log.warning(
            "%s %s -> %s (attempt %d/%d); retrying in %.2f s",
            method,
            shown,
            what,
            attempt,
            self._policy.max_retries + 1,
            delay,
        )
        return _Step(retry_in=delay)

    def _decode(self, method: str, shown: str, answer: _Answer) -> Any:
        if not answer.content:
            raise BadResponseError(
                "empty body, expected JSON", method=method, path=shown, status=answer.status
            )
        try:
            body = json.loads(answer.content)
        except ValueError:
            detail = f"body is not JSON: {self._auth.redact(_snippet(answer.content))!r}"
        except RecursionError:
            detail = f"JSON nested deeper than {MAX_JSON_DEPTH} levels (Python cannot parse it)"
        else:
            # A real answer is about 4 levels deep; anything past the limit is hostile or broken
            # and would blow the stack of whatever walks it later.
            content = answer.content
            if content.count(b"[") + content.count(b"{") <= MAX_JSON_DEPTH or _depth_at_most(
                body, MAX_JSON_DEPTH
            ):
                return body
            detail = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        raise BadResponseError(detail, method=method, path=shown, status=answer.status)

    def _status_error(
        self,
        method: str,
        shown: str,
        answer: _Answer,
        retry_after: float | None,
        tried: str | None = None,
    ) -> NumberYoAPIError:
        status = answer.status
        raw_body = _error_body(answer.content)
        # Classify on what the server said, then redact: masking a (short) token could
        # otherwise mangle the very words we look for.
        no_credits = _says_no_credits(raw_body)
        body = self._auth.redact(raw_body)
        message = _server_message(body) or (answer.reason or None)
        # A paid POST that failed server-side may still have been charged (500 after the charge,
        # a gateway timing out on a busy origin); 429/503 and 501/505 mean nothing was done.
        may_exist = method == "POST" and status >= 500 and status not in (501, 503, 505)
        args = (method, shown, status, message, body)
        if status in (401, 403):
            return AuthenticationError(*args)
        if status == 404:
            return NotFoundError(*args)
        if status == 400:
            return UnsupportedCheckTypeError(*args)
        if status == 422:
            if no_credits:
                return InsufficientCreditsError(*args)
            return ValidationError(*args, details=validation_details(body))
        if status == 429:
            return RateLimitedError(*args, details=tried, retry_after=retry_after)
        if status >= 500:
            return ServerError(*args, details=tried, check_may_exist=may_exist)
        if 300 <= status < 400:
            location = answer.headers.get("Location", "")
            return NumberYoAPIError(
                method,
                shown,
                status,
                f"redirect to {location or 'an unnamed location'} not followed",
                body,
                details="redirects are not followed so the token only goes to base_url; point "
                "base_url at the final address",
            )
        return NumberYoAPIError(*args)

    def _transport_error(
        self, method: str, shown: str, failed: _Failed, tried: str | None = None
    ) -> TransportError:
        failure, detail = failed.failure, failed.detail
        if tried:
            detail = f"{detail}; {tried}"
        total_s = self._timeout[1]
        if failure is Failure.CONNECT_FAILED:
            return TransportError(
                method,
                shown,
                f"could not connect to {self._base_url} (nothing was sent): {detail}",
            )
        if failure is Failure.CERTIFICATE:
            return TransportError(
                method,
                shown,
                f"the TLS certificate of {self._base_url} was rejected (nothing was sent): "
                f"{detail}. For a private server set REQUESTS_CA_BUNDLE, or verify_ssl=False.",
            )
        if failure is Failure.INVALID_REQUEST:
            raise ConfigurationError(f"{method} {shown}: the request could not be built: {detail}")
        what = (
            f"no complete answer within the {total_s:g} s timeout (connect plus the whole answer)"
            if failure is Failure.READ_TIMEOUT
            else "the connection was lost after it was established"
        )
        if method in IDEMPOTENT_METHODS:
            return TransportError(method, shown, f"{what}: {detail}")
        return OutcomeUnknownError(
            method,
            shown,
            f"{what}; the request may have reached the server. The check MAY have been "
            f"created and charged: list recent checks to reconcile before sending this number "
            f"again ({detail})",
        )

    def _page(self, status: int, body: Any, page: int) -> CheckPage:
        try:
            return CheckPage.from_api(body)
        except BadResponseError as exc:
            raise exc.with_context("GET", f"{CHECKS_PATH}?page={page}", status) from None


class NumberYoClient(_ClientCore):
    """Client for the NumberYo API (``/api/checks``): list, read results, create paid checks.

    ``timeout`` is the total seconds one attempt may take, from connect to the last byte of the
    answer (a server dripping bytes is cut off there), or a ``(connect, total)`` pair; connecting
    alone is capped at 5 s by default. An answer larger than ``max_response_mb`` MiB is refused
    (``ResponseTooLargeError``) without being read whole. Failed requests are retried up to
    ``max_retries`` times with exponential backoff and full jitter (``backoff_base`` doubling,
    capped at ``backoff_max``); a ``Retry-After`` is obeyed up to ``retry_after_max`` seconds.
    Paid POSTs are only resent when the server provably did nothing (see :meth:`create_check`).
    ``requests_per_second`` turns on a client-side rate limit for every attempt (or pass a shared
    ``rate_limiter``). ``sleep`` is how the client waits (inject a recorder in tests).
    """

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_response_mb: float = DEFAULT_MAX_RESPONSE_MB,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: float = 300.0,
        requests_per_second: float | None = None,
        rate_limiter: RateLimiter | None = None,
        pool_size: int = 10,
        verify_ssl: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            token,
            base_url,
            timeout=timeout,
            max_response_mb=max_response_mb,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
            requests_per_second=requests_per_second,
            rate_limiter=rate_limiter,
            limiter_sleep=sleep,
        )
        self._pool_size = _positive_int("pool_size", pool_size)
        self._sleep = sleep

        session = requests.Session()
        session.auth = self._auth
        # requests re-reads proxy and CA-bundle variables from the environment on every request
        # (trust_env), a measurable share of the CPU a request costs at hundreds of requests a
        # second: read them once here instead. (.netrc is not consulted: we authenticate by token.)
        session.trust_env = False
        proxies, self._verify = self._environment(verify_ssl)
        session.proxies.update(proxies)
        session.verify = self._verify
        session.headers.update(self._headers)
        # max_retries=0: urllib3 must not resend anything on its own; RetryPolicy decides.
        # Its connections hand their socket to the attempt's Deadline (see _send).
        adapter = DeadlineAdapter(
            pool_connections=self._pool_size, pool_maxsize=self._pool_size, max_retries=0
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self._session = session

    def __repr__(self) -> str:
        return (
            f"NumberYoClient(base_url={self._base_url!r}, timeout={self._timeout!r}, "
            f"max_response_mb={self._max_response_mb!r}, "
            f"max_retries={self._policy.max_retries}, rate_limiter={self._limiter!r}, "
            f"pool_size={self._pool_size})"
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> NumberYoClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- one attempt over requests -----------------------------------------------------------

    def _send(
        self, method: str, url: str, params: Mapping[str, Any] | None, payload: Any
    ) -> _Answer | _Failed | _TooLarge:
        """One attempt, within the total timeout. Returns instead of raising, so that what we
        raise later does not carry requests' exception (and the request headers it holds) as
        ``__context__``."""
        deadline = Deadline(self._timeout[1])
        try:
            with armed(deadline):
                # Straight to the session's adapter (its pool, proxies and TLS settings): the
                # Session.request layer re-merges settings, cookies and hooks on every call,
                # about a third of the CPU a request costs, and we need none of it. Redirects
                # are never followed, so the token goes nowhere but base_url.
                # The request is built by hand: ``url`` is already ASCII (the host was encoded
                # once in __init__), the only parameter is an integer page and the body our own
                # JSON, so PreparedRequest.prepare's generic URL and body handling has nothing
                # to do.
                session = self._session
                prepared = requests.PreparedRequest()
                prepared.method = method
                prepared.url = f"{url}?{urlencode(params)}" if params else url
                prepared.headers = CaseInsensitiveDict(self._headers)
                if payload is not None:
                    prepared.body = json.dumps(payload, allow_nan=False).encode("utf-8")
                    prepared.headers["Content-Length"] = str(len(prepared.body))
                self._auth(prepared)
                # stream=True: the body is read by _receive, under the deadline and the limit.
                response = session.get_adapter(url).send(
                    prepared,
                    stream=True,
                    timeout=self._timeout,
                    verify=self._verify,
                    proxies=session.proxies,
                )
                return self._receive(response, deadline)
        except _TRANSPORT_ERRORS as exc:
            failure = classify_failure(exc)
            if deadline.finish() and failure is not Failure.CONNECT_FAILED:
                # The watchdog shut the socket: what surfaced is an "end of stream".
                return _Failed(Failure.READ_TIMEOUT, "the client closed the connection")
            inner = _innermost(exc)
            # urllib3 puts the connection object first and the human sentence last.
            texts = [a for a in inner.args if isinstance(a, str)]
            detail = _clip(f"{type(inner).__name__}: {texts[-1] if texts else inner}")
            return _Failed(failure, self._auth.redact(detail))
        finally:
            deadline.finish()

    def _receive(
        self, response: requests.Response, deadline: Deadline
    ) -> _Answer | _Failed | _TooLarge:
        """Read the body streamed, at most the size limit (64 KiB of an error answer), and give
        the connection back to the pool only when the answer was read whole in time."""
        raw = response.raw
        attach_response(raw)
        status = response.status_code
        body = _Body(status, response.headers, self._max_bytes)
        reusable = False
        try:
            refused = body.refused()
            if refused is not None:
                return refused
            for chunk in raw.stream(_CHUNK, decode_content=True):
                stop = body.add(chunk)
                if isinstance(stop, _TooLarge):
                    return stop
                if stop:
                    break
                if deadline.remaining() <= 0:
                    return _Failed(
                        Failure.READ_TIMEOUT, f"cut off after {body.size:,} bytes of the answer"
                    )
            else:
                reusable = True
            if deadline.finish():
                # The watchdog shut the socket: an answer "ended" by that is not trustworthy
                # (a body read to the end of the stream, headers cut short).
                return _Failed(Failure.READ_TIMEOUT, "the client closed the connection")
            return _Answer(
                status,
                response.reason or "",
                CaseInsensitiveDict(response.headers),
                body.content,
            )
        finally:
            if deadline.finish() or not reusable:
                raw.close()  # a half-read or cut-off connection must not serve another request
            raw.release_conn()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        payload: Any = None,
    ) -> tuple[int, Any]:
        """Send with retries; returns ``(status, JSON body)`` of a 2xx answer or raises."""
        shown = f"{path}?{urlencode(params)}" if params else path
        url = self._wire_base_url + path
        attempt = 0
        while True:
            attempt += 1
            if self._limiter is not None:
                self._limiter.acquire()
            started = time.perf_counter()
            result = self._send(method, url, params, payload)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            step = self._settle(method, shown, result, attempt, elapsed_ms)
            if step.retry_in is None:
                return step.status, step.body
            self._sleep(step.retry_in)

    # --- the API ------------------------------------------------------------------------------

    def list_checks(self, page: int = 1) -> CheckPage:
        """One page of the account's checks, newest first (10 a page). Free."""
        page = _positive_int("page", page)
        status, body = self._request("GET", CHECKS_PATH, params={"page": page})
        return self._page(status, body, page)

    def iter_pages(self, start_page: int = 1) -> Iterator[CheckPage]:
        """Pages from ``start_page`` to the last (as each page's own pagination says) or the first
        empty one."""
        page_number = _positive_int("start_page", start_page)
        while True:
            page = self.list_checks(page_number)
            if page.pagination.current_page != page_number:
                # An API ignoring ?page= would otherwise be paged forever.
                raise BadResponseError(
                    f"asked for page {page_number}, the server answered page "
                    f"{page.pagination.current_page}",
                    method="GET",
                    path=f"{CHECKS_PATH}?page={page_number}",
                    status=200,
                )
            if not page.checks:
                return
            yield page
            if page_number >= page.pagination.total_pages:
                return
            page_number += 1

    def iter_checks(self, start_page: int = 1) -> Iterator[Check]:
        """Every check, newest first, each once even if new checks shift the pages meanwhile."""
        seen: set[int] = set()
        for page in self.iter_pages(start_page):
            for check in page.checks:
                if check.id not in seen:
                    seen.add(check.id)
                    yield check

    def get_results(self, check_id: int) -> CheckResults:
        """The results of one check (HLR or Verify). Free; NotFoundError for another account's."""
        check_id = _positive_int("check_id", check_id)
        path = f"{CHECKS_PATH}/{check_id}/results"
        status, body = self._request("GET", path)
        try:
            return CheckResults.from_api(body)
        except BadResponseError as exc:
            raise exc.with_context("GET", path, status) from None

    def create_check(self, phone_number: str, check_type: str) -> CreatedCheck:
        """Create a PAID check of ``phone_number`` (digits, optional leading +) and return it with
        its results.

        ``check_type`` is ``"HLR"`` or ``"Verify"`` (any case); bad input raises
        ConfigurationError before anything is sent.

        Money safety: the POST is resent only when the server provably did nothing: the
        connection was never established (refused, DNS failure, connect timeout) or the server
        answered 429 or 503. It is never resent after a timeout (no complete answer within
        ``timeout``, a drip cut off included), a connection dropped after sending, or a
        500/502/504. Then:

        - ``OutcomeUnknownError``: the request may have reached the server (timeout, dropped
          connection, or a 2xx answer we could not read, too large included). The check MAY
          exist and MAY be charged.
        - ``ServerError`` with ``check_may_exist=True``: a 5xx other than 501/503/505.

        In both cases do not resend: list recent checks (:meth:`iter_checks`) to reconcile.
        ``InsufficientCreditsError`` (422) carries the server's text; nothing was charged.
        """
        check_type = canonical_check_type(check_type)
        digits = _clean_phone_number(phone_number)
        payload = {"phone_number": digits, "type": check_type}
        problem: BadResponseError
        try:
            status, body = self._request("POST", CHECKS_PATH, payload=payload)
        except BadResponseError as exc:  # a 2xx: the check exists, its answer is unreadable
            problem = exc
        else:
            try:
                return CreatedCheck.from_api(body)
            except BadResponseError as exc:
                problem = exc.with_context("POST", CHECKS_PATH, status)
        raise OutcomeUnknownError(
            "POST",
            CHECKS_PATH,
            f"the server answered {problem.status} (success) but the answer could not be read "
            f"({problem.detail}). The check exists and was charged: list recent checks to find "
            "it; do not send this number again",
            status=problem.status,
        ) from problem


__all__ = ["DEFAULT_BASE_URL", "TOKEN_ENV_VAR", "USER_AGENT", "NumberYoClient"]
