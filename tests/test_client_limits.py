"""What a hostile or broken server cannot do to the client: hang it, balloon it, or crash it.

Against ``tests/hostile_server.py`` over real HTTP on loopback: a total deadline per request (a
drip is cut off and retried, a paid POST cut off is never resent), a size limit on every answer
(memory measured in a child process), and parse guards (an id of 10^30, JSON nested 100,000 deep)
that turn into one ``BadResponseError`` naming the endpoint. The CLI tests run ``numberyo`` in a
subprocess.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer, Reply, Request, drip, flood

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.api.connections import ConnectionPool
from numberyo_provider.api.models import Check, CheckResults, Pagination
from numberyo_provider.api.retry import RetryPolicy
from numberyo_provider.errors import (
    BadResponseError,
    OutcomeUnknownError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
)

pytestmark = pytest.mark.timeout(60)

TOKEN = "limits-token"
MIB = 1024 * 1024
CHECK = {"id": 7, "type": "HLR", "created_at": "2025-03-30T14:21:00.000000Z"}


def _page(checks: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    count = len(checks) if total is None else total
    return {
        "checks": checks,
        "pagination": {"current_page": 1, "total_pages": 1 if count else 0, "total": count},
    }


def _endless_drip() -> Iterator[bytes]:
    """JSON whitespace, one byte at a time, for ever (the server stops when the test ends)."""
    return itertools.repeat(b" ")


class _Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def _client(server: HostileServer, **kwargs: Any) -> NumberYoClient:
    kwargs.setdefault("sleep", _Sleeps())
    return NumberYoClient(TOKEN, server.url, **kwargs)


class _RawServer:
    """A bare TCP listener on loopback for answers no HTTP server library would send: each
    connection is handed to ``serve(conn, n)`` on a thread of its own (``n`` counts from 1)."""

    def __init__(self, serve: Callable[[socket.socket, int], None]) -> None:
        self.stop = threading.Event()
        self.accepted: list[socket.socket] = []
        self._serve = serve
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.accepted.append(conn)
            n = len(self.accepted)
            threading.Thread(target=self._serve, args=(conn, n), daemon=True).start()

    def __enter__(self) -> _RawServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._listener.close()
        for conn in self.accepted:
            conn.close()


# --- the total deadline ----------------------------------------------------------------------


def test_a_dripping_get_is_cut_off_at_the_deadline_and_retried() -> None:
    def route(req: Request) -> Reply:
        return Reply(200, _endless_drip(), chunk_delay=0.2)

    with HostileServer(route) as server:
        client = _client(server, timeout=0.5, max_retries=2)
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"no complete answer within the 0\.5 s timeout"):
            client.list_checks(1)
        elapsed = time.monotonic() - started
        assert server.count("GET") == 3  # cut off, then retried like any timeout
    # Three attempts of 0.5 s each (the sleeps between them are recorded, not slept).
    assert 1.45 <= elapsed < 4.0
    assert client.longest_request_seconds() == 3 * 0.5 + 0.5 + 1.0


def test_a_drip_inside_the_headers_is_cut_off_too() -> None:
    """http.client reads headers line by line: only a watchdog can bound a header drip."""

    def serve(conn: socket.socket, n: int) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        while not server.stop.wait(0.2):
            try:
                conn.sendall(b"a")
            except OSError:
                break

    with _RawServer(serve) as server:
        client = NumberYoClient(TOKEN, server.url, timeout=1.0, max_retries=0, sleep=_Sleeps())
        started = time.monotonic()
        with pytest.raises(TransportError, match="1 s timeout"):
            client.list_checks(1)
        assert time.monotonic() - started < 3.0


def test_a_dripping_post_is_outcome_unknown_and_never_sent_again() -> None:
    def route(req: Request) -> Reply:
        return Reply(201, _endless_drip(), chunk_delay=0.2)

    with HostileServer(route) as server:
        client = _client(server, timeout=1.0, max_retries=5)
        started = time.monotonic()
        with pytest.raises(OutcomeUnknownError, match="MAY have been created") as info:
            client.create_check("32456789023", "HLR")
        assert time.monotonic() - started < 3.0
        assert info.value.check_may_exist
        assert server.count("POST") == 1  # money rule: cut off after sending = never resent


def test_a_slow_but_complete_answer_within_the_deadline_is_read() -> None:
    body = json.dumps(_page([CHECK])).encode()

    def route(req: Request) -> Reply:
        return Reply(200, drip(body, every=16), chunk_delay=0.01)

    with HostileServer(route) as server:
        page = _client(server, timeout=10.0).list_checks(1)
    assert [c.id for c in page.checks] == [7]


def test_the_connection_is_reused_after_a_complete_answer() -> None:
    def route(req: Request) -> Reply:
        return Reply.json(_page([CHECK]))

    with HostileServer(route) as server:
        client = _client(server)
        for _ in range(5):
            client.list_checks(1)
        # Five requests, one connection: the pool got it back after each complete answer.
        assert server.count("GET") == 5
        assert server.connections == 1


def test_the_pool_keeps_at_most_pool_size_connections_idle() -> None:
    body = json.dumps(_page([CHECK])).encode()

    def route(req: Request) -> Reply:  # each answer takes ~0.2 s: six threads overlap
        return Reply(200, drip(body, every=len(body) // 2 + 1), chunk_delay=0.1)

    with HostileServer(route) as server:
        client = _client(server, pool_size=2)
        with ThreadPoolExecutor(6) as pool:
            assert all(p.checks for p in pool.map(lambda _: client.list_checks(1), range(6)))
        assert server.connections == 6
        assert isinstance(client._transport, ConnectionPool)
        assert len(client._transport._idle) == 2  # the other four were closed, not kept
        for _ in range(3):
            client.list_checks(1)
        assert server.connections == 6  # the kept ones serve what follows


def test_a_cut_off_answer_does_not_leave_its_connection_in_the_pool() -> None:
    def route(req: Request) -> Reply:
        if req.param("page") == "1":
            return Reply(200, drip(json.dumps(_page([CHECK])).encode(), every=8), chunk_delay=0.2)
        return Reply.json(_page([CHECK]))

    with HostileServer(route) as server:
        client = _client(server, timeout=0.5, max_retries=0)
        with pytest.raises(TransportError, match=r"cut off|closed the connection"):
            client.list_checks(1)
        assert [c.id for c in client.list_checks(2).checks] == [7]
        assert server.connections == 2  # the cut-off one was closed, not reused


def test_an_answer_left_unread_never_lends_its_connection_to_the_next_request() -> None:
    """The release rule alone: the first answer announces a body over the size limit, so the
    client refuses it unread, and the server sends that body only later. The check before reuse
    finds nothing to read at that moment, so only the rule "back to the pool only when read
    whole" keeps the next request off this connection; without it, the late bytes (here shaped as
    an answer of their own) would be read as the next request's answer."""
    real = json.dumps(_page([CHECK])).encode()
    forged = json.dumps(_page([{**CHECK, "id": 666}])).encode()

    def head(length: int) -> bytes:
        return (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        ).encode()

    def serve(conn: socket.socket, n: int) -> None:
        conn.settimeout(5)
        first = n == 1
        while not server.stop.is_set():
            try:
                if not conn.recv(65536):
                    return
                if first:  # a body of 1 MiB announced, over the client's 0.5 MB limit
                    first = False
                    conn.sendall(head(MIB))
                    server.stop.wait(1.0)  # long after the check before reuse
                    conn.sendall(head(len(forged)) + forged)
                else:
                    conn.sendall(head(len(real)) + real)
            except OSError:
                return

    with _RawServer(serve) as server:
        client = NumberYoClient(
            TOKEN, server.url, max_response_mb=0.5, max_retries=0, sleep=_Sleeps()
        )
        with pytest.raises(ResponseTooLargeError):
            client.list_checks(1)
        assert [c.id for c in client.list_checks(2).checks] == [7]
        assert len(server.accepted) == 2  # the unread one was closed, not lent


def test_a_paid_post_never_goes_into_a_connection_the_server_closed_while_idle() -> None:
    """A keep-alive connection the server dropped after its last answer (its idle timeout, no
    ``Connection: close``) must not carry the next request: a POST written into it would be
    lost or unknowable, and its check charged or not without our knowing."""
    created = {
        "message": "ok",
        "check": {**CHECK, "id": 9, "source": "api", "user_cost": "0.02"},
        "results": {"type": "HLR", "results": []},
    }

    def route(req: Request) -> Reply:
        if req.method == "POST":
            return Reply.json(created, status=201)
        return Reply.json(_page([CHECK]), close_after=True)

    with HostileServer(route) as server:
        client = _client(server, max_retries=0)  # no second chance: the first send must work
        client.list_checks(1)
        time.sleep(0.2)  # the server's FIN has arrived; the connection sits idle in the pool
        assert client.create_check("+32 456789023", "HLR").check.id == 9
        assert server.count("POST") == 1
        assert server.connections == 2


# --- the size limit --------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate", "br"])
def test_an_answer_compressed_unasked_is_decoded_or_refused_as_unreadable(encoding: str) -> None:
    """We ask for ``identity``; a server that compresses anyway is read (gzip, deflate with or
    without its zlib header, as urllib3 read them), or its body is unreadable JSON (an encoding
    we cannot undo), never a crash or a wrong page."""
    body = json.dumps(_page([CHECK])).encode()
    wbits = {"gzip": 31, "deflate": 15, "raw deflate": -15}.get(encoding)
    if wbits is None:
        sent = b"\x8b\x07\x80" + body  # not brotli either: just bytes we cannot decode
    else:
        packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
        sent = packer.compress(body) + packer.flush()
    header = encoding.split()[-1]

    def route(req: Request) -> Reply:
        return Reply(200, sent, headers={"Content-Encoding": header})

    with HostileServer(route) as server:
        client = _client(server, max_retries=0)
        if wbits is None:
            with pytest.raises(BadResponseError, match="not JSON"):
                client.list_checks(1)
        else:
            assert [c.id for c in client.list_checks(1).checks] == [7]


def test_a_content_length_above_the_limit_is_refused_before_reading() -> None:
    def route(req: Request) -> Reply:
        return Reply(200, b"{}", content_length=400 * MIB)  # a lie: only 2 bytes follow

    with HostileServer(route) as server:
        client = _client(server, timeout=5.0)
        started = time.monotonic()
        with pytest.raises(ResponseTooLargeError) as info:
            client.get_results(5)
        assert time.monotonic() - started < 1.0  # refused at the headers, not timed out
        assert server.count() == 1  # not retried: it would be as large again
    message = str(info.value)
    assert "GET /api/checks/5/results -> 200" in message
    assert "32 MiB limit" in message and "max_response_mb" in message
    assert f"{400 * MIB:,} bytes" in message
    assert isinstance(info.value, BadResponseError)


def test_a_content_length_below_the_body_reads_only_what_it_announced() -> None:
    """The bytes past the announced length never reach the next request on that connection."""
    page = json.dumps(_page([CHECK])).encode()

    def route(req: Request) -> Reply:
        return Reply(200, page + b"HTTP/1.1 200 OK\r\n" + b"x" * 100_000, content_length=len(page))

    with HostileServer(route) as server:
        client = _client(server)
        assert [c.id for c in client.list_checks(1).checks] == [7]
        assert [c.id for c in client.list_checks(1).checks] == [7]
        assert server.count() == 2


def test_a_chunked_flood_stops_at_the_limit() -> None:
    def route(req: Request) -> Reply:
        return Reply(200, flood(2 * 1024 * MIB))

    with HostileServer(route) as server:
        client = _client(server, timeout=20.0, max_response_mb=4)
        with pytest.raises(ResponseTooLargeError, match=r"4 MiB limit: reading stopped after"):
            client.list_checks(1)
        assert server.count() == 1


def test_a_too_large_post_answer_is_outcome_unknown_not_resent() -> None:
    def route(req: Request) -> Reply:
        return Reply(201, flood(64 * MIB))

    with HostileServer(route) as server:
        client = _client(server, max_response_mb=1)
        with pytest.raises(OutcomeUnknownError, match="larger than the 1 MiB limit"):
            client.create_check("32456789023", "HLR")
        assert server.count("POST") == 1


def test_a_huge_error_answer_is_read_only_for_its_message() -> None:
    def route(req: Request) -> Reply:
        return Reply(503, flood(400 * MIB, chunk=b'{"error": "busy"}' + b" " * 65519))

    with HostileServer(route) as server:
        client = _client(server, timeout=5.0, max_retries=1)
        with pytest.raises(ServerError, match="503") as info:
            client.list_checks(1)
        assert server.count() == 2  # a 503 is still retried
    assert len(str(info.value)) < 1000


_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from numberyo_provider.api.client import NumberYoClient
    from numberyo_provider.errors import NumberYoError

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

    floor = status("VmHWM")
    # A safety net for this shared machine: a client that does balloon dies at +1 GiB.
    limit = status("VmSize") + 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    url, limit_mb, paths = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    client = NumberYoClient("t", url, timeout=60, max_retries=0, max_response_mb=limit_mb)
    out = {"floor": floor, "errors": []}
    for path in paths:
        try:
            client.get_results(int(path))
            out["errors"].append(None)
        except NumberYoError as exc:
            out["errors"].append(type(exc).__name__)
    out["peak"] = status("VmHWM")
    print(json.dumps(out))
    """
)


def _measure(url: str, limit_mb: float, *ids: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, url, str(limit_mb), *map(str, ids)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_memory_stays_bounded_whatever_the_server_sends() -> None:
    """400 MiB and 2 GB chunked answers, a 400 MiB error, a gzip bomb: the child's RSS peak
    stays within a few times the 32 MiB limit of its import floor (it was 5.7 and 9.5 GB)."""

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip: 128 MiB of spaces in ~130 KiB
    bomb = b"".join(packer.compress(b" " * (16 * MIB)) for _ in range(8)) + packer.flush()

    def route(req: Request) -> Reply:
        which = req.path.split("/")[3]
        if which == "4":  # sent compressed although the client asked for identity
            return Reply(200, bomb, headers={"Content-Encoding": "gzip"})
        size = {"1": 400 * MIB, "2": 2048 * MIB, "3": 400 * MIB}[which]
        return Reply(503 if which == "3" else 200, flood(size))

    with HostileServer(route) as server:
        started = time.monotonic()
        figures = _measure(server.url, 32, 1, 2, 3, 4)
        elapsed = time.monotonic() - started
    assert len(bomb) < MIB
    assert figures["errors"] == [
        "ResponseTooLargeError",
        "ResponseTooLargeError",
        "ServerError",
        "ResponseTooLargeError",
    ]
    assert figures["peak"] - figures["floor"] < 100 * MIB, figures
    assert elapsed < 30


# --- parse guards ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", [10**30, str(10**30), 1e30, "9" * 5000, 0, -3])
def test_an_id_that_does_not_fit_is_a_bad_response_naming_the_endpoint(bad_id: Any) -> None:
    def route(req: Request) -> Reply:
        return Reply.json(_page([{**CHECK, "id": bad_id}]))

    with HostileServer(route) as server, pytest.raises(BadResponseError) as info:
        _client(server).list_checks(1)
    message = str(info.value)
    assert message.startswith("GET /api/checks?page=1 -> 200: unexpected response: checks[0].id")
    assert len(message) < 300


def test_a_created_check_with_a_huge_id_is_outcome_unknown() -> None:
    created = {
        "message": "ok",
        "check": {**CHECK, "id": 10**30, "source": "api", "user_cost": "0.02"},
        "results": {"type": "HLR", "results": []},
    }

    def route(req: Request) -> Reply:
        return Reply.json(created, status=201)

    with HostileServer(route) as server:
        with pytest.raises(OutcomeUnknownError, match=r"check\.id: expected an integer from 1"):
            _client(server).create_check("32456789023", "HLR")
        assert server.count("POST") == 1


def test_every_integer_field_must_fit_in_64_bits() -> None:
    with pytest.raises(BadResponseError, match=r"pagination\.total: expected an integer"):
        Pagination.from_api({"current_page": 1, "total_pages": 1, "total": 2**63})
    assert Check.from_api({**CHECK, "id": 2**63 - 1}).id == 2**63 - 1
    # country_code lands in an INTEGER column.
    with pytest.raises(BadResponseError, match=r"results\[0\]\.country_code: .* \(32 bits\)"):
        CheckResults.from_api({"type": "HLR", "results": [{"country_code": 2**40}]})
    assert CheckResults.from_api({"type": "HLR", "results": [{"country_code": "32"}]})


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_is_a_bad_response(depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    body = b'{"checks": [], "pagination": {"current_page": 1, "total_pages": 0, "total": 0}, '
    body += b'"extra": ' + nested + b"}"

    def route(req: Request) -> Reply:
        return Reply(200, body, headers={"Content-Type": "application/json"})

    expected = pytest.raises(BadResponseError, match="nested deeper than 64 levels")
    with HostileServer(route) as server, expected as info:
        _client(server).list_checks(1)
    assert str(info.value).startswith("GET /api/checks?page=1 -> 200")


def test_deeply_nested_json_in_an_error_answer_is_just_text() -> None:
    def route(req: Request) -> Reply:
        return Reply(500, b"[" * 100_000 + b"]" * 100_000)

    with HostileServer(route) as server, pytest.raises(ServerError, match="500"):
        _client(server, max_retries=0).list_checks(1)


def test_retry_waits_are_bounded() -> None:
    policy = RetryPolicy(max_retries=5, backoff_base=0.5, backoff_max=30.0, retry_after_max=300.0)
    assert policy.longest_waits(retry_after=False) == 0.5 + 1 + 2 + 4 + 8
    assert policy.longest_waits(retry_after=True) == 5 * 300.0
    default = NumberYoClient(TOKEN, "http://127.0.0.1:1")
    assert default.timeout == (5.0, 30.0)
    assert default.max_response_bytes == 32 * MIB
    assert default.longest_request_seconds() == 6 * 30.0 + 15.5


# --- the CLI ---------------------------------------------------------------------------------


def _cli(command: str, args: list[str], url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBERYO_BASE_URL": url, "NUMBERYO_API_TOKEN": TOKEN}
    env.pop("NUMBERYO_PRIVACY_MODE", None)
    return subprocess.run(
        [sys.executable, "-m", "numberyo_provider.cli", command, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    assert TOKEN not in done.stderr + done.stdout
    assert len(lines) == 1 or all("WARNING" in line for line in lines[:-1]), done.stderr
    return lines[-1]


@pytest.mark.slow
def test_sync_against_a_dripping_server_stops_in_bounded_time(tmp_path: Path) -> None:
    def route(req: Request) -> Reply:
        return Reply(200, _endless_drip(), chunk_delay=0.2)

    with HostileServer(route) as server:
        started = time.monotonic()
        done = _cli(
            "sync",
            [
                *("--warehouse", f"duckdb:///{tmp_path / 'wh.duckdb'}"),
                *("--timeout", "1", "--max-retries", "1", "--no-progress"),
            ],
            server.url,
            tmp_path,
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    line = _one_clear_line(done)
    assert line.startswith("numberyo sync: error: GET /api/checks?page=1")
    assert "no complete answer within the 1 s timeout" in line
    # 2 attempts of 1 s + at most 0.5 s backoff + interpreter start-up.
    assert elapsed < 15


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (json.dumps(_page([{**CHECK, "id": 10**30}])).encode(), "checks[0].id"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64 levels"),
    ],
)
def test_sync_on_a_bad_answer_exits_1_with_one_line(
    body: bytes, expected: str, tmp_path: Path
) -> None:
    def route(req: Request) -> Reply:
        return Reply(200, body)

    with HostileServer(route) as server:
        done = _cli(
            "sync",
            ["--warehouse", f"duckdb:///{tmp_path / 'wh.duckdb'}", "--no-progress"],
            server.url,
            tmp_path,
        )
    assert done.returncode == 1, done.stderr
    assert expected in _one_clear_line(done)


@pytest.mark.slow
def test_sync_refuses_an_answer_over_max_response_mb(tmp_path: Path) -> None:
    def route(req: Request) -> Reply:
        return Reply(200, flood(8 * MIB))

    with HostileServer(route) as server:
        done = _cli(
            "sync",
            ["--warehouse", f"duckdb:///{tmp_path / 'wh.duckdb'}", "--max-response-mb", "2"],
            server.url,
            tmp_path,
        )
    assert done.returncode == 1, done.stderr
    assert "larger than the 2 MiB limit" in _one_clear_line(done)


@pytest.mark.slow
def test_check_cli_cut_off_post_is_sent_once_and_looked_up(tmp_path: Path) -> None:
    import duckdb

    source = tmp_path / "crm.duckdb"
    with duckdb.connect(str(source)) as con:
        con.execute("CREATE TABLE contacts (phone VARCHAR)")
        con.execute("INSERT INTO contacts VALUES ('+32456000001')")

    def route(req: Request) -> Reply:
        if req.method == "POST":
            return Reply(201, _endless_drip(), chunk_delay=0.2)
        return Reply.json(_page([]))  # reconciliation: the account holds no such check

    with HostileServer(route) as server:
        started = time.monotonic()
        done = _cli(
            "check",
            [
                *("--source", f"duckdb:///{source}", "--table", "contacts", "--column", "phone"),
                *("--type", "HLR", "--warehouse", f"duckdb:///{tmp_path / 'wh.duckdb'}"),
                *("--parquet-path", str(tmp_path / "pq"), "--no-progress"),
                *("--timeout", "1", "--reconcile-settle", "0.5"),
            ],
            server.url,
            tmp_path,
        )
        elapsed = time.monotonic() - started
        assert server.count("POST") == 1  # cut off after sending: looked up, never resent
        assert server.count("GET", "/api/checks") >= 1
    assert done.returncode == 0, done.stderr
    assert "not checked 1" in done.stdout
    assert "Traceback" not in done.stderr
    assert elapsed < 20


# --- the connection's extras -----------------------------------------------------------------


def test_connection_extras_set_the_deadline_and_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from numberyo_provider.hooks.numberyo import NumberYoHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_NY_LIMITS",
        "numberyo://:tok@127.0.0.1%3A1?timeout=2.5&connect_timeout=1&max_response_mb=0.5",
    )
    with NumberYoHook("ny_limits").get_client() as client:
        assert client.timeout == (1.0, 2.5)
        assert client.max_response_bytes == MIB // 2


@pytest.mark.parametrize(
    ("extra", "value"),
    [("timeout", "soon"), ("timeout", "0"), ("max_response_mb", "-1"), ("timeout", "inf")],
)
def test_a_bad_limit_extra_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, extra: str, value: str
) -> None:
    from numberyo_provider.errors import ConfigurationError
    from numberyo_provider.hooks.numberyo import NumberYoHook

    monkeypatch.setenv("AIRFLOW_CONN_NY_BAD", f"numberyo://:tok@example.com?{extra}={value}")
    with pytest.raises(ConfigurationError, match=f"connection extra '{extra}'"):
        NumberYoHook("ny_bad").get_client()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (cryptography comes with Airflow)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_a_drip_over_tls_is_cut_off_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The watchdog shuts a TLS socket down under the thread reading it."""
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def route(req: Request) -> Reply:
        if req.param("page") == "2":
            return Reply(200, _endless_drip(), chunk_delay=0.2)
        return Reply.json(_page([CHECK]))

    server = HostileServer(route)
    httpd = server._httpd
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with server:
        url = server.url.replace("http://", "https://")
        client = NumberYoClient(TOKEN, url, timeout=0.5, max_retries=1, sleep=_Sleeps())
        assert [c.id for c in client.list_checks(1).checks] == [7]  # TLS itself works
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"0\.5 s timeout"):
            client.list_checks(2)
        assert time.monotonic() - started < 3.0
        assert server.count("GET") == 3


# --- the watchdog ----------------------------------------------------------------------------


def test_the_watchdog_wakes_a_blocked_read_and_forgets_finished_deadlines() -> None:
    from numberyo_provider.api import deadline as deadlines

    reader, writer = socket.socketpair()
    try:
        late = deadlines.Deadline(0.2)
        started = time.monotonic()
        with deadlines.armed(late):
            deadlines._attach(reader)
            assert reader.recv(1) == b""  # blocked until the watchdog shut the socket
        assert late.finish() and 0.15 < time.monotonic() - started < 2.0
    finally:
        reader.close()
        writer.close()

    # 10,000 requests finished long before their 60 s deadline do not pile up.
    for _ in range(10_000):
        with deadlines.armed(deadlines.Deadline(60.0)) as finished:
            pass
        assert not finished.finish()
    assert len(deadlines._watchdog) <= 2 * deadlines._COMPACT_AT
