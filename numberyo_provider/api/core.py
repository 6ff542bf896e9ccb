"""The client's rules, shared by both transports: one place decides what a request does.

:class:`_ClientCore` holds every setting an attempt follows (the cleaned token, base URL,
timeouts and size limit, the headers, the retry policy and rate limit) and decides what an
attempt's result means (:meth:`_ClientCore._settle`): the decoded JSON of a 2xx, the wait before
the next attempt, or the exception to raise (the status -> exception mapping is here).
:class:`~numberyo_provider.api.client.NumberYoClient` (http.client, threads) and
:class:`~numberyo_provider.api.async_client.AsyncNumberYoClient` (httpx, asyncio) derive from it
and each only sends one attempt: a behaviour that differs between them is a bug.

The token never appears in a message, a log line, a ``repr`` or an exception chain: it lives only
in the auth object (:mod:`numberyo_provider.api.auth`), what a server echoes back is redacted, and
:meth:`_ClientCore._settle` is called outside any ``except`` block, so what it raises carries no
transport exception (which holds the request headers) as ``__context__``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from numberyo_provider import __version__
from numberyo_provider.api.answers import (
    MAX_JSON_DEPTH,
    _Answer,
    _depth_at_most,
    _error_body,
    _Failed,
    _snippet,
    _TooLarge,
)
from numberyo_provider.api.auth import _BearerAuth, _clean_token
from numberyo_provider.api.inputs import _clean_base_url, _clean_max_response_mb, _clean_timeout
from numberyo_provider.api.models import CheckPage
from numberyo_provider.api.ratelimit import RateLimiter
from numberyo_provider.api.retry import (
    IDEMPOTENT_METHODS,
    Failure,
    RetryPolicy,
    may_retry,
    parse_retry_after,
)
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

#: Names us and the Python, not the HTTP library: the sync and async clients send the same one.
USER_AGENT = (
    f"airflow-provider-numberyo/{__version__} (Python {sys.version_info[0]}.{sys.version_info[1]})"
)

CHECKS_PATH = "/api/checks"

#: Named for the module the client was before it moved into ``api/``: logging setups keep working.
log = logging.getLogger("numberyo_provider.client")


@dataclass(frozen=True)
class _Step:
    """What one attempt means: a 2xx answer's ``(status, body)``, or the wait before the next."""

    status: int = 0
    body: Any = None
    retry_in: float | None = None


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


class _ClientCore:
    """Everything that decides behaviour, shared by
    :class:`~numberyo_provider.api.client.NumberYoClient` (http.client, threads) and
    :class:`~numberyo_provider.api.async_client.AsyncNumberYoClient` (httpx, asyncio): the
    cleaned token, base URL, timeouts and limits, the headers, the retry policy and rate limit,
    and what an attempt's result means (:meth:`_settle`: decode, retry or which error). A
    transport only sends one attempt and reads its body through
    :class:`~numberyo_provider.api.answers._Body`."""

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


__all__ = ["CHECKS_PATH", "USER_AGENT"]
