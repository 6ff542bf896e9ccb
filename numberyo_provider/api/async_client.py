"""The NumberYo client's asyncio path: ``GET /api/checks`` over ``httpx.AsyncClient``.

For code that runs on an event loop (an Airflow trigger). It is a second *transport*, not a second
client: token and base-URL cleaning, the headers, the per-attempt deadline, the size limit, JSON
decoding and its guards, the status -> exception mapping and the retry decisions all come from
:class:`numberyo_provider.api.core._ClientCore`, and the body is read by
:class:`numberyo_provider.api.answers._Body`, exactly as :class:`NumberYoClient` uses them. Only
sending one attempt and waiting are asynchronous here. It lists checks and nothing else: it
never creates (pays for) one.

It lives apart from ``client.py`` so that importing the sync client (the CLI, every worker) does not
import httpx (about 0.1 s); nor does it import ``client.py`` (the urllib3 transport and its
deadline watchdog).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx
from requests.structures import CaseInsensitiveDict
from requests.utils import select_proxy

from numberyo_provider.api.answers import _CHUNK, _Answer, _Body, _clip, _Failed, _TooLarge
from numberyo_provider.api.auth import _BearerAuth
from numberyo_provider.api.core import CHECKS_PATH, _ClientCore
from numberyo_provider.api.inputs import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RESPONSE_MB,
    DEFAULT_TIMEOUT,
    _positive_int,
)
from numberyo_provider.api.models import CheckPage
from numberyo_provider.api.ratelimit import RateLimiter
from numberyo_provider.api.retry import Failure, _chain
from numberyo_provider.errors import ConfigurationError

#: Answers larger than this are decoded in a worker thread, so JSON parsing never holds the loop
#: (a listing page is about 5 KiB; the size limit allows up to ``max_response_mb``).
_DECODE_ON_LOOP_MAX = 256 * 1024


def classify_httpx_failure(exc: httpx.HTTPError) -> Failure:
    """Map an httpx exception to the :class:`~numberyo_provider.api.retry.Failure` the retry
    rules need, erring towards "maybe sent" exactly as
    :func:`~numberyo_provider.api.retry.classify_failure` does for requests: only a connection
    never established is CONNECT_FAILED."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        if any(isinstance(e, ssl.SSLCertVerificationError) for e in _chain(exc)):
            return Failure.CERTIFICATE
        return Failure.CONNECT_FAILED
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        return Failure.READ_TIMEOUT
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return Failure.INVALID_REQUEST
    return Failure.CONNECTION_LOST


class _HttpxBearer(httpx.Auth):
    """The client's bearer auth for httpx: the header is added per request, held nowhere else."""

    def __init__(self, bearer: _BearerAuth) -> None:
        self._bearer = bearer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._bearer.header
        yield request

    def __repr__(self) -> str:
        return repr(self._bearer)


def _ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """The TLS setting the sync client uses, as httpx wants it (a CA path becomes a context)."""
    if verify is False:
        return False
    if verify is True:
        return httpx.create_ssl_context(verify=True, trust_env=False)  # certifi, like requests
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


class AsyncNumberYoClient(_ClientCore):
    """List the account's checks from an event loop, by the sync client's rules.

    Arguments mean what they mean for :class:`~numberyo_provider.api.client.NumberYoClient`:
    ``timeout`` is the total seconds of one attempt (connect, headers and the whole answer, read
    streamed), ``max_response_mb`` the largest answer read, retries back off the same way and
    ``requests_per_second`` is the same rate limit. ``sleep`` is an async wait (tests inject a
    recorder). The constructor reads the CA bundle (file I/O): on a running loop create the client
    with ``await AsyncNumberYoClient.open(...)``, which builds it in a worker thread.
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
        pool_size: int = 1,
        verify_ssl: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        )
        self._pool_size = _positive_int("pool_size", pool_size)
        self._sleep = sleep
        proxies, verify = self._environment(verify_ssl)
        proxy = select_proxy(self._wire_base_url, proxies)
        connect, total = self._timeout
        try:
            self._http = httpx.AsyncClient(
                auth=_HttpxBearer(self._auth),
                headers=self._headers,
                timeout=httpx.Timeout(total, connect=connect),
                verify=_ssl_context(verify),
                proxy=proxy,
                trust_env=False,  # read once above, by the same rules as the sync client
                follow_redirects=False,  # the token goes nowhere but base_url
                limits=httpx.Limits(
                    max_connections=self._pool_size, max_keepalive_connections=self._pool_size
                ),
            )
        except ImportError as exc:  # a SOCKS proxy without httpx[socks]
            raise ConfigurationError(
                f"the proxy for {self._base_url} needs an extra package ({exc.name}): "
                "pip install 'httpx[socks]', or unset the proxy variable"
            ) from None

    @classmethod
    async def open(
        cls, token: str, base_url: str = DEFAULT_BASE_URL, **kwargs: Any
    ) -> AsyncNumberYoClient:
        """Build the client in a worker thread, so the loop never waits for its file I/O (the CA
        bundle, and the asyncio backend anyio would otherwise import on the first request)."""

        def build() -> AsyncNumberYoClient:
            with contextlib.suppress(ImportError):  # a private path: only a head start if moved
                importlib.import_module("anyio._backends._asyncio")
            return cls(token, base_url, **kwargs)

        return await asyncio.to_thread(build)

    def __repr__(self) -> str:
        return (
            f"AsyncNumberYoClient(base_url={self._base_url!r}, timeout={self._timeout!r}, "
            f"max_response_mb={self._max_response_mb!r}, "
            f"max_retries={self._policy.max_retries}, rate_limiter={self._limiter!r}, "
            f"pool_size={self._pool_size})"
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncNumberYoClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- the API ------------------------------------------------------------------------------

    async def list_checks(self, page: int = 1) -> CheckPage:
        """One page of the account's checks, newest first (10 a page). Free."""
        page = _positive_int("page", page)
        status, body = await self._get(CHECKS_PATH, {"page": page})
        return self._page(status, body, page)

    # --- one attempt over httpx ---------------------------------------------------------------

    async def _get(self, path: str, params: Mapping[str, Any]) -> tuple[int, Any]:
        """``GET`` with the sync client's retries; ``(status, JSON body)`` of a 2xx or raises."""
        shown = f"{path}?{urlencode(params)}"
        url = f"{self._wire_base_url}{shown}"
        attempt = 0
        while True:
            attempt += 1
            if self._limiter is not None:
                wait = self._limiter.reserve()
                if wait > 0:
                    await self._sleep(wait)
            started = time.perf_counter()
            result = await self._send(url)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            if isinstance(result, _Answer) and len(result.content) > _DECODE_ON_LOOP_MAX:
                step = await asyncio.to_thread(
                    self._settle, "GET", shown, result, attempt, elapsed_ms
                )
            else:
                step = self._settle("GET", shown, result, attempt, elapsed_ms)
            if step.retry_in is None:
                return step.status, step.body
            await self._sleep(step.retry_in)

    async def _send(self, url: str) -> _Answer | _Failed | _TooLarge:
        """One attempt under the total deadline. Returns instead of raising, so that what is
        raised later does not carry httpx's exception (which holds the request) as context."""
        received = [0]
        try:
            return await asyncio.wait_for(self._exchange(url, received), self._timeout[1])
        except TimeoutError:
            return _Failed(
                Failure.READ_TIMEOUT, f"cut off after {received[0]:,} bytes of the answer"
            )
        except httpx.HTTPError as exc:
            detail = _clip(f"{type(exc).__name__}: {exc}")
            return _Failed(classify_httpx_failure(exc), self._auth.redact(detail))

    async def _exchange(self, url: str, received: list[int]) -> _Answer | _TooLarge:
        """Send, then read the body streamed under the size limit (64 KiB of an error answer);
        ``received`` counts the bytes read so far, for the timeout's message."""
        request = self._http.build_request("GET", url)
        response = await self._http.send(request, stream=True)
        try:
            body = _Body(response.status_code, response.headers, self._max_bytes)
            refused = body.refused()
            if refused is not None:
                return refused
            async for chunk in response.aiter_bytes(_CHUNK):  # decoded: counts what we hold
                stop = body.add(chunk)
                received[0] = body.size
                if isinstance(stop, _TooLarge):
                    return stop
                if stop:
                    break
            return _Answer(
                response.status_code,
                response.reason_phrase or "",
                CaseInsensitiveDict(response.headers),
                body.content,
            )
        finally:
            await response.aclose()  # an unread or cut-off connection is discarded, not reused


__all__ = ["AsyncNumberYoClient", "classify_httpx_failure"]
