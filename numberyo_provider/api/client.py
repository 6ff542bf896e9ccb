"""The NumberYo HTTP client: typed answers, precise errors, retries that never double-charge.

One :class:`NumberYoClient` owns one pool of connections; share it between worker threads (size
``pool_size`` to their number). It is a transport (sending one attempt: over http.client's
keep-alive connections, :mod:`numberyo_provider.api.connections`, or over urllib3 when the
environment names a proxy) on top of the rules both clients share
(:mod:`numberyo_provider.api.core`: the settings, what an attempt's result means, which error),
plus the API's calls. Retry decisions live in :mod:`numberyo_provider.api.retry`, the rate limit
in :mod:`numberyo_provider.api.ratelimit`, the checks of the arguments in
:mod:`numberyo_provider.api.inputs`; the behaviour is summarised in ``docs/client.md``. The
asyncio path (:mod:`numberyo_provider.api.async_client`) is the other transport over the same
rules.

The token never appears in a message, a log line, a ``repr`` or an exception chain: it lives only
in the client's auth object (added to each request's headers at send time), the transport's own
exceptions (which hold the connection) are reduced to a redacted description before we raise, and
our exceptions are raised outside of the ``except`` block so they do not carry the transport's
exception as ``__context__``.

Why not requests' ``Session``: requests adds nothing this client uses (no cookies, redirects,
auth flows, hooks or environment re-reads: the proxy and CA settings are read once), yet its
adapter layer cost about 40% of the CPU of a request (0.96 ms against 0.57 ms per GET on
loopback), and urllib3's own layers, on a direct connection, about half of what was left
(``docs/benchmarks.md``). At the thousands of requests a sync sends, that CPU, not the API, is
the limit on a busy worker. requests still lends its environment rules (``get_environ_proxies``,
``select_proxy``) so proxies behave exactly as before; urllib3 still carries proxied requests.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import certifi
import requests.utils
import urllib3
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict
from urllib3.response import BaseHTTPResponse

from numberyo_provider.api.answers import _CHUNK, _Answer, _Body, _clip, _Failed, _TooLarge
from numberyo_provider.api.auth import TOKEN_ENV_VAR
from numberyo_provider.api.connections import ConnectionPool, Exchange, TransportFailure
from numberyo_provider.api.core import CHECKS_PATH, USER_AGENT, _ClientCore
from numberyo_provider.api.deadline import POOL_CLASSES, Deadline, armed, attach_response
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
    canonical_check_type,
)
from numberyo_provider.api.ratelimit import RateLimiter
from numberyo_provider.api.retry import Failure, classify_failure
from numberyo_provider.errors import BadResponseError, ConfigurationError, OutcomeUnknownError

_TRANSPORT_ERRORS = (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException)


def _innermost(exc: BaseException) -> BaseException:
    """The informative end of urllib3's wrapping (``ProxyError``'s cause, etc.)."""
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


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """One TLS context for every connection, as requests builds it: certifi's bundle by default,
    a ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` file or directory if set, nothing if off."""
    context = urllib3.util.ssl_.create_urllib3_context()
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context.verify_mode = ssl.CERT_REQUIRED
    bundle = verify if isinstance(verify, str) else certifi.where()
    if os.path.isdir(bundle):
        context.load_verify_locations(capath=bundle)
    else:
        context.load_verify_locations(cafile=bundle)
    return context


def _proxy_manager(
    base_url: str, proxies: Mapping[str, str], context: ssl.SSLContext, size: int
) -> urllib3.PoolManager | None:
    """urllib3's pools through the environment's proxy for ``base_url``, or None when no proxy
    applies (then the direct :class:`~numberyo_provider.api.connections.ConnectionPool` sends).
    Every connection but a SOCKS one hands its socket to the attempt's deadline from connect on."""
    proxy = requests.utils.select_proxy(base_url, dict(proxies))
    if proxy is None:
        return None
    options: dict[str, Any] = {
        "num_pools": 4,
        "maxsize": size,
        "retries": False,  # urllib3 never resends on its own: RetryPolicy decides
        "ssl_context": context,
        "cert_reqs": "CERT_REQUIRED" if context.verify_mode != ssl.CERT_NONE else "CERT_NONE",
    }
    manager: urllib3.PoolManager
    if proxy.lower().startswith("socks"):
        try:  # here: only a SOCKS proxy needs PySocks, an optional dependency
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError as exc:
            raise ConfigurationError(
                "the environment names a SOCKS proxy for the NumberYo API, which needs PySocks: "
                "pip install pysocks (or unset ALL_PROXY/HTTPS_PROXY for this host)"
            ) from exc
        return SOCKSProxyManager(proxy, **options)  # only the body is under the deadline
    else:
        proxy = requests.utils.prepend_scheme_if_needed(proxy, "http")
        user, password = requests.utils.get_auth_from_url(proxy)
        headers = urllib3.util.make_headers(proxy_basic_auth=f"{user}:{password}") if user else None
        manager = urllib3.ProxyManager(proxy, proxy_headers=headers, **options)
    manager.pool_classes_by_scheme = dict(POOL_CLASSES)
    return manager


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

        # Proxy and CA-bundle variables are read once, here (.netrc is not consulted: we
        # authenticate by token).
        proxies, self._verify = self._environment(verify_ssl)
        context = _tls_context(self._verify)
        # The direct transport unless the environment names a proxy for the API's host.
        self._transport: ConnectionPool | urllib3.PoolManager = _proxy_manager(
            self._wire_base_url, proxies, context, self._pool_size
        ) or ConnectionPool(
            self._wire_base_url, ssl_context=context, maxsize=self._pool_size, timeout=self._timeout
        )
        self._wire_timeout = urllib3.Timeout(connect=self._timeout[0], read=self._timeout[1])

    def __repr__(self) -> str:
        return (
            f"NumberYoClient(base_url={self._base_url!r}, timeout={self._timeout!r}, "
            f"max_response_mb={self._max_response_mb!r}, "
            f"max_retries={self._policy.max_retries}, rate_limiter={self._limiter!r}, "
            f"pool_size={self._pool_size})"
        )

    def close(self) -> None:
        if isinstance(self._transport, ConnectionPool):
            self._transport.close()
        else:
            self._transport.clear()

    def __enter__(self) -> NumberYoClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- one attempt over the transport --------------------------------------------------------

    def _send(
        self, method: str, path: str, params: Mapping[str, Any] | None, payload: Any
    ) -> _Answer | _Failed | _TooLarge:
        """One attempt, within the total timeout. Returns instead of raising, so that what we
        raise later does not carry the transport's exception (and the connection it holds) as
        ``__context__``."""
        deadline = Deadline(self._timeout[1])
        # ``path`` is already ASCII (the host was encoded once in __init__), the only parameter
        # an integer page and the body our own JSON. Redirects are never followed, so the token
        # goes nowhere but base_url.
        target = f"{path}?{urlencode(params)}" if params else path
        headers = dict(self._headers)
        headers["Authorization"] = self._auth.header
        body = None
        if payload is not None:
            body = json.dumps(payload, allow_nan=False).encode("utf-8")
        try:
            with armed(deadline):
                if isinstance(self._transport, ConnectionPool):
                    exchange = self._transport.send(method, target, body, headers, deadline)
                    return self._receive_direct(exchange, deadline)
                # preload_content=False: the body is read by _read, under the deadline and the
                # limit.
                response = self._transport.urlopen(
                    method,
                    self._wire_base_url + target,
                    body=body,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    timeout=self._wire_timeout,
                )
                return self._receive_proxied(response, deadline)
        except TransportFailure as exc:  # the direct transport classified it where it happened
            if deadline.finish() and exc.failure is not Failure.CONNECT_FAILED:
                return _Failed(Failure.READ_TIMEOUT, "the client closed the connection")
            return _Failed(exc.failure, self._auth.redact(_clip(exc.detail)))
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

    def _read(
        self,
        status: int,
        reason: str,
        headers: Mapping[str, str],
        chunks: Iterator[bytes],
        deadline: Deadline,
    ) -> tuple[_Answer | _Failed | _TooLarge, bool]:
        """Read the body streamed, at most the size limit (64 KiB of an error answer); the result
        and whether the answer was read whole in time (only then may its connection be reused)."""
        body = _Body(status, headers, self._max_bytes)
        refused = body.refused()
        if refused is not None:
            return refused, False
        whole = False
        for chunk in chunks:
            stop = body.add(chunk)
            if isinstance(stop, _TooLarge):
                return stop, False
            if stop:  # an error answer, cut at its limit
                break
            if deadline.remaining() <= 0:
                cut = f"cut off after {body.size:,} bytes of the answer"
                return _Failed(Failure.READ_TIMEOUT, cut), False
        else:
            whole = True
        if deadline.finish():
            # The watchdog shut the socket: an answer "ended" by that is not trustworthy (a
            # body read to the end of the stream, headers cut short).
            return _Failed(Failure.READ_TIMEOUT, "the client closed the connection"), False
        if not isinstance(headers, CaseInsensitiveDict):  # the direct transport's already is
            headers = CaseInsensitiveDict(headers)
        return _Answer(status, reason, headers, body.content), whole

    def _receive_direct(
        self, exchange: Exchange, deadline: Deadline
    ) -> _Answer | _Failed | _TooLarge:
        reusable = False
        try:
            result, reusable = self._read(
                exchange.status,
                exchange.reason,
                exchange.headers,
                exchange.chunks(_CHUNK),
                deadline,
            )
            return result
        finally:
            # A half-read or cut-off connection must not serve another request.
            exchange.release(reusable and not deadline.finish())

    def _receive_proxied(
        self, raw: BaseHTTPResponse, deadline: Deadline
    ) -> _Answer | _Failed | _TooLarge:
        attach_response(raw)
        reusable = False
        try:
            chunks = raw.stream(_CHUNK, decode_content=True)
            result, reusable = self._read(
                raw.status, raw.reason or "", raw.headers, chunks, deadline
            )
            return result
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
        attempt = 0
        while True:
            attempt += 1
            if self._limiter is not None:
                self._limiter.acquire()
            started = time.perf_counter()
            result = self._send(method, path, params, payload)
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
