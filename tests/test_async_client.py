"""The async path is the sync client over another transport: same requests, same errors.

Each scenario is served by ``tests/hostile_server.py`` on loopback to :class:`NumberYoClient` and
to :class:`AsyncNumberYoClient` alike, and the two must raise the same exception class with the
same message (for transport failures, whose low-level detail names the library, the same class
and the same message up to that detail), send the same headers, and retry the same number of
times with the same waits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer, Reply, Request, flood

from numberyo_provider.api.async_client import AsyncNumberYoClient
from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.api.models import CheckPage
from numberyo_provider.errors import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    InsufficientCreditsError,
    NotFoundError,
    NumberYoAPIError,
    NumberYoError,
    RateLimitedError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
    ValidationError,
)

pytestmark = pytest.mark.timeout(60)

TOKEN = "parity-token"
MIB = 1024 * 1024
PAGE = {
    "checks": [{"id": 7, "type": "HLR", "created_at": "2025-03-30T14:21:00.000000Z"}],
    "pagination": {"current_page": 1, "total_pages": 1, "total": 1},
}


class _Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class _AsyncSleeps(_Sleeps):
    async def __call__(self, seconds: float) -> None:  # type: ignore[override]
        self.calls.append(seconds)


def _both(url: str, **kwargs: Any) -> list[tuple[str, Any, _Sleeps]]:
    """``list_checks(1)`` of each client as a plain call, with its recorded sleeps."""
    sync_sleeps, async_sleeps = _Sleeps(), _AsyncSleeps()
    sync_client = NumberYoClient(TOKEN, url, sleep=sync_sleeps, **kwargs)

    async def via_async() -> CheckPage:
        async with await AsyncNumberYoClient.open(
            TOKEN, url, sleep=async_sleeps, **kwargs
        ) as client:
            return await client.list_checks(1)

    return [
        ("sync", lambda: sync_client.list_checks(1), sync_sleeps),
        ("async", lambda: asyncio.run(via_async()), async_sleeps),
    ]


def _outcomes(
    url: str, sent: Callable[[], int] = lambda: 0, **kwargs: Any
) -> list[tuple[Any, list[float], int]]:
    """Per client: its page or the error it raised, its waits, and how many requests it sent."""
    out: list[tuple[Any, list[float], int]] = []
    for _name, call, sleeps in _both(url, **kwargs):
        before = sent()
        try:
            result: Any = call()
        except NumberYoError as exc:
            result = exc
        out.append((result, sleeps.calls, sent() - before))
    return out


def _transport_exceptions_in(exc: BaseException | None) -> list[BaseException]:
    found = []
    while exc is not None:
        if type(exc).__module__.split(".")[0] in ("httpx", "httpcore", "requests", "urllib3"):
            found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def _same_error(route: Callable[[Request], Reply], expected: type[Exception], **kwargs: Any) -> Any:
    kwargs.setdefault("max_retries", 0)
    with HostileServer(route) as server:
        (sync_exc, sync_sleeps, sync_sent), (async_exc, async_sleeps, async_sent) = _outcomes(
            server.url, server.count, **kwargs
        )
    assert type(sync_exc) is expected, sync_exc
    assert type(async_exc) is expected, async_exc
    assert str(async_exc) == str(sync_exc)
    for attr in ("method", "path", "status", "server_message", "body", "retry_after"):
        assert getattr(async_exc, attr, None) == getattr(sync_exc, attr, None), attr
    assert len(async_sleeps) == len(sync_sleeps)
    assert async_sent == sync_sent == 1  # none of these is retried
    assert not _transport_exceptions_in(async_exc)  # they hold the request and its token
    assert TOKEN not in str(async_exc)
    return async_exc


class _Flood:
    """A body that floods afresh for each request (a generator would be spent by the first)."""

    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes

    def __iter__(self) -> Iterator[bytes]:
        return iter(flood(self.total_bytes))


ERRORS: list[tuple[str, Reply, type[Exception]]] = [
    ("401", Reply.json({"message": "Unauthenticated."}, 401), AuthenticationError),
    ("403", Reply.json({"message": "Forbidden."}, 403), AuthenticationError),
    ("404", Reply.json({"message": "Not found."}, 404), NotFoundError),
    (
        "422 validation",
        Reply.json({"message": "Invalid.", "errors": {"page": ["must be >= 1"]}}, 422),
        ValidationError,
    ),
    (
        "422 no credits",
        Reply.json({"error": "You don't have enough credits to perform this action"}, 422),
        InsufficientCreditsError,
    ),
    (
        "429",
        Reply.json({"message": "Slow down."}, 429, headers={"Retry-After": "7"}),
        RateLimitedError,
    ),
    ("500", Reply(500, b"<html>boom</html>"), ServerError),
    ("502", Reply(502, b""), ServerError),
    ("503", Reply.json({"message": "Maintenance."}, 503), ServerError),
    ("501", Reply(501, b"no"), ServerError),
    (
        "302",
        Reply(302, headers={"Location": "https://elsewhere.example/api/checks"}),
        NumberYoAPIError,
    ),
    ("418", Reply(418, b"teapot"), NumberYoAPIError),
    ("200 not JSON", Reply(200, b"<html>login</html>"), BadResponseError),
    ("200 empty", Reply(200, b""), BadResponseError),
    ("200 wrong shape", Reply.json({"data": []}), BadResponseError),
    ("200 nested", Reply(200, b"[" * 100 + b"]" * 100), BadResponseError),
    ("200 too deep for Python", Reply(200, b"[" * 100_000 + b"]" * 100_000), BadResponseError),
    (
        "200 id too large",
        Reply.json({**PAGE, "checks": [{**PAGE["checks"][0], "id": 10**30}]}),
        BadResponseError,
    ),  # type: ignore[dict-item]
    (
        "200 too large (Content-Length)",
        Reply(200, b" " * 10, content_length=3 * MIB),
        ResponseTooLargeError,
    ),
    ("200 too large (chunked)", Reply(200, _Flood(3 * MIB)), ResponseTooLargeError),
]


@pytest.mark.parametrize(("reply", "expected"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_the_same_answer_is_the_same_error(reply: Reply, expected: type[Exception]) -> None:
    _same_error(lambda req: reply, expected, max_response_mb=1)


def test_a_token_echoed_by_the_server_is_masked_alike() -> None:
    exc = _same_error(
        lambda req: Reply.json({"message": f"bad token {TOKEN}"}, 401), AuthenticationError
    )
    assert "***" in str(exc)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(429, RateLimitedError), (500, ServerError), (502, ServerError), (503, ServerError)],
)
def test_retries_are_the_same(status: int, expected: type[Exception]) -> None:
    """Three attempts each, two waits each (jitter makes the waits differ, not their number)."""
    with HostileServer(lambda req: Reply.json({"message": "later"}, status)) as server:
        outcomes = _outcomes(server.url, server.count, max_retries=2)
    for exc, sleeps, sent in outcomes:
        assert type(exc) is expected and "gave up after 3 attempts" in str(exc)
        assert sent == 3 and len(sleeps) == 2
    assert str(outcomes[0][0]) == str(outcomes[1][0])


def test_retry_after_is_obeyed_alike_and_then_succeeds() -> None:
    answers = itertools.cycle(
        [Reply.json({"message": "busy"}, 503, headers={"Retry-After": "3"}), Reply.json(PAGE)]
    )
    with HostileServer(lambda req: next(answers)) as server:
        outcomes = _outcomes(server.url, server.count, max_retries=2)
    for page, sleeps, sent in outcomes:
        assert sent == 2
        assert isinstance(page, CheckPage) and page.checks[0].id == 7
        assert sleeps == [3.0]


def test_a_retry_after_above_the_maximum_is_raised_at_once_alike() -> None:
    exc = _same_error(
        lambda req: Reply.json({"message": "come back"}, 429, headers={"Retry-After": "900"}),
        RateLimitedError,
        max_retries=3,
    )
    assert exc.retry_after == 900.0


def test_a_dripping_server_is_cut_off_at_the_deadline_alike() -> None:
    def route(req: Request) -> Reply:
        return Reply(200, itertools.repeat(b" "), chunk_delay=0.1)

    with HostileServer(route) as server:
        outcomes = []
        for _name, call, sleeps in _both(server.url, timeout=0.5, max_retries=1):
            started = time.monotonic()
            with pytest.raises(TransportError) as info:
                call()
            outcomes.append((info.value, time.monotonic() - started, sleeps.calls))
        assert server.count("GET") == 4  # each: cut off, retried once, cut off again
    (sync_exc, sync_s, sync_sleeps), (async_exc, async_s, async_sleeps) = outcomes
    head = "GET /api/checks?page=1: no complete answer within the 0.5 s timeout"
    assert str(sync_exc).startswith(head) and str(async_exc).startswith(head)
    assert "gave up after 2 attempts" in str(async_exc)
    assert type(async_exc) is type(sync_exc) is TransportError
    assert len(async_sleeps) == len(sync_sleeps) == 1
    assert 0.95 <= async_s < 3.0 and 0.95 <= sync_s < 3.0


def test_a_refused_connection_is_the_same_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        outcomes = _outcomes(url, max_retries=2)
    (sync_exc, sync_sleeps, _), (async_exc, async_sleeps, _) = outcomes
    head = f"GET /api/checks?page=1: could not connect to {url} (nothing was sent)"
    assert type(async_exc) is type(sync_exc) is TransportError
    assert str(sync_exc).startswith(head) and str(async_exc).startswith(head)
    assert str(async_exc).endswith("gave up after 3 attempts")
    assert len(async_sleeps) == len(sync_sleeps) == 2


def test_the_wire_is_the_same() -> None:
    """Path, query, token and headers: the server cannot tell the two clients apart."""
    with HostileServer(lambda req: Reply.json(PAGE)) as server:
        for page, _sleeps, _sent in _outcomes(server.url):
            assert isinstance(page, CheckPage)
        sync_req, async_req = server.requests
    assert (async_req.method, async_req.path, async_req.query) == (
        sync_req.method,
        sync_req.path,
        sync_req.query,
    )
    for header in ("authorization", "user-agent", "accept", "content-type"):
        assert async_req.headers[header] == sync_req.headers[header], header
    assert async_req.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("token", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"  BEARER   {TOKEN} \n"])
def test_a_pasted_bearer_prefix_is_removed_alike(token: str) -> None:
    def route(req: Request) -> Reply:
        if req.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply.json({"message": "Unauthenticated."}, 401)
        return Reply.json(PAGE)

    async def via_async() -> CheckPage:
        async with await AsyncNumberYoClient.open(token, server.url) as client:
            return await client.list_checks(1)

    with HostileServer(route) as server:
        assert NumberYoClient(token, server.url).list_checks(1).checks[0].id == 7
        assert asyncio.run(via_async()).checks[0].id == 7


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token": ""},
        {"token": "two words"},
        {"base_url": "www.numberyo.tech"},
        {"base_url": "https://www.numberyo.tech/api"},
        {"timeout": 0},
        {"max_response_mb": -1},
        {"max_retries": -1},
        {"requests_per_second": 0},
    ],
)
def test_bad_settings_are_the_same_configuration_error(kwargs: dict[str, Any]) -> None:
    args = {"token": TOKEN, "base_url": "https://www.numberyo.tech", **kwargs}
    with pytest.raises(ConfigurationError) as sync_info:
        NumberYoClient(**args)
    with pytest.raises(ConfigurationError) as async_info:
        AsyncNumberYoClient(**args)
    assert str(async_info.value) == str(sync_info.value)


def test_the_rate_limit_waits_without_blocking() -> None:
    sleeps = _AsyncSleeps()

    async def three_pages(url: str) -> None:
        async with AsyncNumberYoClient(TOKEN, url, requests_per_second=2, sleep=sleeps) as client:
            for _ in range(3):
                await client.list_checks(1)

    with HostileServer(lambda req: Reply.json(PAGE)) as server:
        asyncio.run(three_pages(server.url))
        assert server.count("GET") == 3
    # The waits are recorded, not slept, so the slots add up: about 0.5 s, then about 1 s.
    assert len(sleeps.calls) == 2
    assert 0.3 < sleeps.calls[0] <= 0.5 and 0.8 < sleeps.calls[1] <= 1.0


def test_repr_and_errors_never_show_the_token() -> None:
    client = AsyncNumberYoClient(TOKEN, "http://127.0.0.1:9")
    assert TOKEN not in repr(client) and TOKEN not in repr(client._http.auth)


def test_a_large_answer_is_read_alike() -> None:
    """Over 256 KiB the async path decodes in a worker thread; the page is the same."""
    body = json.dumps(PAGE).encode()
    padded = body[:-1] + b" " * (300 * 1024) + body[-1:]
    with HostileServer(lambda req: Reply(200, padded)) as server:
        (sync_page, _, _), (async_page, _, _) = _outcomes(server.url)
    assert isinstance(async_page, CheckPage) and async_page == sync_page


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")  # urllib3's, for verify_ssl=False
@pytest.mark.parametrize("trusted", ["bundle", "unverified", "no"])
def test_tls_is_verified_alike(
    trusted: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUESTS_CA_BUNDLE and verify_ssl mean the same; a rejected certificate is the same
    error (not retried: nothing was sent and it would be rejected again)."""
    from test_client_limits import _self_signed  # type: ignore[import-not-found]

    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = HostileServer(lambda req: Reply.json(PAGE))
    server._httpd.socket = context.wrap_socket(server._httpd.socket, server_side=True)
    if trusted == "bundle":
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    kwargs = {"verify_ssl": False} if trusted == "unverified" else {}
    with server:
        url = server.url.replace("http://", "https://")
        (sync_result, _, sync_sent), (async_result, _, async_sent) = _outcomes(
            url, server.count, max_retries=2, **kwargs
        )
    if trusted == "no":
        head = (
            f"GET /api/checks?page=1: the TLS certificate of {url} was rejected (nothing was sent)"
        )
        assert type(async_result) is type(sync_result) is TransportError
        assert str(sync_result).startswith(head) and str(async_result).startswith(head)
        assert "gave up" not in str(async_result)
        assert async_sent == sync_sent == 0  # the handshake failed: no request reached it
    else:
        assert async_sent == sync_sent == 1
        assert isinstance(async_result, CheckPage) and async_result == sync_result
