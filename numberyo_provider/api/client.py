"""The NumberYo HTTP client: typed answers, precise errors, retries that never double-charge.

One :class:`NumberYoClient` owns one ``requests.Session``; share it between worker threads (size
``pool_size`` to their number). It is a transport (sending one attempt over requests) on top of
the rules both clients share (:mod:`numberyo_provider.api.core`: the settings, what an attempt's
result means, which error), plus the API's calls. Retry decisions live in
:mod:`numberyo_provider.api.retry`, the rate limit in :mod:`numberyo_provider.api.ratelimit`, the
checks of the arguments in :mod:`numberyo_provider.api.inputs`; the behaviour is summarised in
``docs/client.md``. The asyncio path (:mod:`numberyo_provider.api.async_client`) is the other
transport over the same rules.

The token never appears in a message, a log line, a ``repr`` or an exception chain: it lives only
in the session's auth object, requests' own exceptions (which hold the request and its headers) are
reduced to a redacted description before we raise, and our exceptions are raised outside of the
``except`` block so they do not carry requests' exception as ``__context__``.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict

from numberyo_provider.api.answers import _CHUNK, _Answer, _Body, _clip, _Failed, _TooLarge
from numberyo_provider.api.auth import TOKEN_ENV_VAR
from numberyo_provider.api.core import CHECKS_PATH, USER_AGENT, _ClientCore
from numberyo_provider.api.deadline import Deadline, DeadlineAdapter, armed, attach_response
from numberyo_provider.api.inputs import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_MB,
    DEFAULT_TIMEOUT,
    _clean_phone_number,
    _positive_int,
)
from numberyo_provider.api.models import (
    Check,
    CheckPage,
    CheckResults,
    CreatedCheck,
    normalize_check_type,
)
from numberyo_provider.api.ratelimit import RateLimiter
from numberyo_provider.api.retry import Failure, classify_failure
from numberyo_provider.errors import BadResponseError, OutcomeUnknownError

_TRANSPORT_ERRORS = (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException)


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
        check_type = normalize_check_type(check_type)
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


__all__ = [
    "CHECKS_PATH",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_MB",
    "DEFAULT_TIMEOUT",
    "TOKEN_ENV_VAR",
    "USER_AGENT",
    "NumberYoClient",
]
