"""NumberYoClient against real HTTP on loopback: the simulator, plus tiny scripted servers for
answers the simulator never gives (bad bodies, dropped connections, full listen queues).

Faults are injected for real; sleeps are recorded instead of slept, so retries cost no time.
"""

from __future__ import annotations

import http.server
import json
import logging
import pickle
import socket
import ssl
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from hostile_server import HostileServer, Reply

from numberyo_provider import __version__
from numberyo_provider.api.client import DEFAULT_BASE_URL, NumberYoClient
from numberyo_provider.api.connections import ConnectionPool, TransportFailure
from numberyo_provider.api.deadline import Deadline, armed
from numberyo_provider.api.models import HlrResult, VerifyResult, parse_timestamp
from numberyo_provider.api.ratelimit import RateLimiter
from numberyo_provider.api.retry import Failure, classify_failure
from numberyo_provider.errors import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    InsufficientCreditsError,
    NotFoundError,
    NumberYoAPIError,
    NumberYoError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnsupportedCheckTypeError,
    ValidationError,
)
from numberyo_provider.simulator.server import SimulatorServer

pytestmark = pytest.mark.timeout(30)

NUMBER = "32456789023"


class Sleeps:
    """The client's ``sleep``: records what it was asked to wait, waits for nothing."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., NumberYoClient]]:
    clients: list[NumberYoClient] = []

    def make(server: SimulatorServer | ScriptedServer | str, **kwargs: Any) -> NumberYoClient:
        if isinstance(server, str):
            url, token = server, kwargs.pop("token", "test-token")
        else:
            url, token = server.url, kwargs.pop("token", server.token)
        kwargs.setdefault("sleep", sleeps)
        kwargs.setdefault("timeout", (2.0, 5.0))
        client = NumberYoClient(token, url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def sim_client(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient]
) -> NumberYoClient:
    return make_client(numberyo_simulator)


def _posts(server: SimulatorServer) -> list[Any]:
    return [e for e in server.sim.requests() if e.method == "POST"]


# --- scripted servers for what the simulator never answers ----------------------------------


@dataclass
class Scripted:
    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Read the request, then close the connection without answering.
    drop: bool = False
    #: Seconds to wait before answering (provokes a read timeout).
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """An HTTP server on loopback that answers from a script and records what it received."""

    token = "scripted-token"

    def __init__(self, default: Scripted | None = None) -> None:
        self.script: deque[Scripted] = deque()
        self.default = default or Scripted(200, {"checks": [], "pagination": {}})
        self.received: list[Received] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.received.append(
                    Received(self.command, self.path, dict(self.headers.items()), body)
                )
                reply = owner.script.popleft() if owner.script else owner.default
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                payload = reply.body
                if not isinstance(payload, bytes | str):
                    payload = json.dumps(payload)
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def full_backlog_url() -> Iterator[str]:
    """A loopback port whose listen queue is full: new connections time out in connect()."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):  # Linux queues backlog + 1; fill until a connect no longer completes
        filler = socket.socket()
        filler.settimeout(0.2)
        try:
            filler.connect(("127.0.0.1", port))
        except OSError:
            filler.close()
            break
        fillers.append(filler)
    else:
        pytest.skip("could not fill the listen queue on this kernel")
    yield f"http://127.0.0.1:{port}"
    for filler in fillers:
        filler.close()
    listener.close()


# --- 200: list, pagination ------------------------------------------------------------------


def test_list_checks_page(numberyo_simulator: SimulatorServer, sim_client: NumberYoClient) -> None:
    numberyo_simulator.sim.seed_checks(35)
    truth = numberyo_simulator.sim.truth()
    page = sim_client.list_checks(1)
    assert (page.pagination.current_page, page.pagination.total_pages) == (1, 4)
    assert page.pagination.total == 35
    assert [c.id for c in page.checks] == [t["check"]["id"] for t in truth[:10]]
    first = page.checks[0]
    assert first.type == truth[0]["check"]["type"]
    assert first.created_at == parse_timestamp(truth[0]["check"]["created_at"])
    assert first.created_at.tzinfo is UTC
    assert first.source is None and first.user_cost is None and first.extra == {}
    assert [c.created_at for c in page.checks] == sorted(
        (c.created_at for c in page.checks), reverse=True
    )


def test_iter_pages_and_checks_to_the_end(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    numberyo_simulator.sim.seed_checks(35)
    truth_ids = [t["check"]["id"] for t in numberyo_simulator.sim.truth()]
    pages = list(sim_client.iter_pages())
    assert [len(p.checks) for p in pages] == [10, 10, 10, 5]
    assert [p.pagination.current_page for p in pages] == [1, 2, 3, 4]
    assert [c.id for c in sim_client.iter_checks()] == truth_ids  # newest first, all 35
    # The last page's own total_pages ends the walk: no request for an empty page 5.
    listed = [e.path for e in numberyo_simulator.sim.requests() if e.endpoint == "list"]
    assert len(listed) == 8
    assert [c.id for c in sim_client.iter_checks(start_page=4)] == truth_ids[30:]


def test_iter_checks_empty_account(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    assert list(sim_client.iter_checks()) == []
    assert len(numberyo_simulator.sim.requests()) == 1


def test_iter_checks_survives_new_checks_shifting_pages(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    """A check created mid-walk pushes every item one place down: nothing is lost or doubled."""
    sim = numberyo_simulator.sim
    sim.seed_checks(40)  # exactly 4 pages; one more makes 5
    before = [t["check"]["id"] for t in sim.truth()]
    inserted = threading.Event()

    def hook(endpoint: str, info: Any) -> None:
        if endpoint == "list" and info["page"] == 2 and not inserted.is_set():
            inserted.set()
            sim.create_check(numberyo_simulator.token, NUMBER, "HLR")

    sim.before_request = hook
    ids = [c.id for c in sim_client.iter_checks()]
    assert inserted.is_set()
    assert ids == before  # every original check once, in order; the new one is next sync's
    assert [e.status for e in sim.requests()] == [200] * 5


def test_page_must_be_positive(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    for bad in (0, -1, True, "2"):
        with pytest.raises(ConfigurationError, match="page"):
            sim_client.list_checks(bad)  # type: ignore[arg-type]
    assert numberyo_simulator.sim.requests() == []


# --- 200: results ---------------------------------------------------------------------------


def _first_of_type(server: SimulatorServer, check_type: str) -> dict[str, Any]:
    return next(t for t in server.sim.truth() if t["check"]["type"] == check_type)


def test_results_hlr(numberyo_simulator: SimulatorServer, sim_client: NumberYoClient) -> None:
    numberyo_simulator.sim.seed_checks(5, types=("HLR",))
    item = _first_of_type(numberyo_simulator, "HLR")
    got = sim_client.get_results(item["check"]["id"])
    assert got.type == "HLR" and got.extra == {}
    [raw] = item["results"]["results"]
    [result] = got.results
    assert isinstance(result, HlrResult)
    for key, value in raw.items():
        if key == "created_at":
            assert result.created_at == parse_timestamp(value)
        else:
            assert getattr(result, key) == value, key
    assert isinstance(result.mnc, str) and isinstance(result.msisdn, str)
    assert result.extra == {}


def test_results_verify_keeps_undocumented_fields(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    numberyo_simulator.sim.seed_checks(5, types=("Verify",))
    item = _first_of_type(numberyo_simulator, "Verify")
    [raw] = item["results"]["results"]
    [result] = sim_client.get_results(item["check"]["id"]).results
    assert isinstance(result, VerifyResult)
    assert result.e164_format == raw["e164_format"]
    assert result.valid_number == raw["valid_number"]
    assert result.number_carrier == raw["number_carrier"]
    modelled = {"e164_format", "valid_number", "number_carrier", "created_at"}
    assert set(raw) - modelled, "the simulator should send undocumented Verify fields"
    assert dict(result.extra) == {k: v for k, v in raw.items() if k not in modelled}


# --- 201: create ----------------------------------------------------------------------------


def test_create_hlr(numberyo_simulator: SimulatorServer, sim_client: NumberYoClient) -> None:
    before = numberyo_simulator.sim.credits()
    created = sim_client.create_check(NUMBER, "HLR")
    assert created.message == "Check successfully created."
    assert created.extra == {"status": True}
    check = created.check
    assert check.type == "HLR" and check.source == "API"
    assert check.user_cost == Decimal("1.00")
    assert check.created_at.tzinfo is UTC
    assert abs(check.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    [result] = created.results.results
    assert isinstance(result, HlrResult) and result.number_requested == NUMBER
    assert numberyo_simulator.sim.credits() == before - Decimal("1.00")
    [charge] = numberyo_simulator.sim.charges()
    assert charge.check_id == check.id


def test_create_verify_normalises_input(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    created = sim_client.create_check(" +32 456 789 023 ", "verify")
    assert created.check.type == "Verify" and created.results.type == "Verify"
    [entry] = _posts(numberyo_simulator)
    assert (entry.phone_number, entry.check_type, entry.status) == (NUMBER, "Verify", 201)


@pytest.mark.parametrize(
    ("phone", "check_type", "match"),
    [
        (NUMBER, "CNAM", "unknown check type 'CNAM'"),
        (NUMBER, "", "unknown check type"),
        ("32-456-789", "HLR", "must be digits"),
        ("", "HLR", "must be digits"),
        ("+", "HLR", "must be digits"),
        ("٣٢٤٥٦", "HLR", "must be digits"),  # Unicode digits are not ASCII digits
        (None, "HLR", "must be a string"),
    ],
)
def test_create_rejects_bad_input_before_sending(
    numberyo_simulator: SimulatorServer,
    sim_client: NumberYoClient,
    phone: Any,
    check_type: str,
    match: str,
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        sim_client.create_check(phone, check_type)
    assert numberyo_simulator.sim.requests() == []


# --- documented error statuses --------------------------------------------------------------


def test_400_unsupported_check_type(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    [check_id] = numberyo_simulator.sim.seed_checks(1, types=("CNAM",))
    with pytest.raises(UnsupportedCheckTypeError) as info:
        sim_client.get_results(check_id)
    err = info.value
    assert (err.method, err.path, err.status) == ("GET", f"/api/checks/{check_id}/results", 400)
    assert err.server_message == "Unsupported check type."
    assert str(err) == f"GET /api/checks/{check_id}/results -> 400: Unsupported check type."
    assert len(numberyo_simulator.sim.requests()) == 1  # not retried


def test_401_wrong_token(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient]
) -> None:
    client = make_client(numberyo_simulator, token="not-the-token")
    for call in (client.list_checks, lambda: client.get_results(1)):
        with pytest.raises(AuthenticationError, match="NUMBERYO_API_TOKEN") as info:
            call()
        assert info.value.status == 401 and info.value.server_message == "Unauthenticated."
    with pytest.raises(AuthenticationError, match=r"^POST /api/checks -> 401: Unauthenticated\."):
        client.create_check(NUMBER, "HLR")
    assert numberyo_simulator.sim.charges() == []
    assert len(numberyo_simulator.sim.requests()) == 3


def test_404_unknown_foreign_and_broken(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    sim = numberyo_simulator.sim
    [own] = sim.seed_checks(1)
    sim.add_account("other-token")
    [foreign] = sim.seed_checks(1, token="other-token")
    sim.break_results(own, 404)
    for check_id in (own, foreign, 999_999):
        with pytest.raises(NotFoundError) as info:
            sim_client.get_results(check_id)
        assert str(info.value) == (
            f"GET /api/checks/{check_id}/results -> 404: Check not found or access denied."
        )
    assert len(sim.requests()) == 3


def test_422_insufficient_credits_carries_server_text(
    numberyo_simulator_factory: Callable[..., SimulatorServer],
    make_client: Callable[..., NumberYoClient],
    sleeps: Sleeps,
) -> None:
    server = numberyo_simulator_factory(credits=0)
    client = make_client(server)
    with pytest.raises(InsufficientCreditsError) as info:
        client.create_check(NUMBER, "HLR")
    err = info.value
    text = "You don't have enough credits to perform this action (0.00 credits)."
    assert err.server_message == text
    assert str(err).startswith(f"POST /api/checks -> 422: {text}")
    assert "Top up" in str(err)
    assert err.body["message"] == "Error creating check."
    assert isinstance(err, ValidationError) and not err.check_may_exist
    assert server.sim.charges() == [] and len(_posts(server)) == 1 and sleeps.calls == []


def test_422_credits_detected_even_when_the_token_occurs_in_the_message(
    numberyo_simulator_factory: Callable[..., SimulatorServer],
    make_client: Callable[..., NumberYoClient],
) -> None:
    # A one-letter token occurs inside the server's words; masking it must not hide the
    # "not enough credits" answer, or a run would keep posting instead of stopping.
    server = numberyo_simulator_factory(token="e", credits=0)
    with pytest.raises(InsufficientCreditsError):
        make_client(server).create_check(NUMBER, "HLR")
    assert server.sim.charges() == []


def test_422_validation_names_the_fields(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    with pytest.raises(ValidationError) as info:
        sim_client.create_check("123", "HLR")  # digits, but too short for the server
    err = info.value
    assert not isinstance(err, InsufficientCreditsError)
    assert err.status == 422 and "phone_number" in err.body["errors"]
    assert "(phone_number: The phone number field must be between 6 and 15 digits.)" in str(err)
    assert numberyo_simulator.sim.charges() == []


def test_422_other_error_is_plain_validation(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    numberyo_simulator.sim.fail_next(1, 422, endpoint="create")
    with pytest.raises(ValidationError) as info:
        sim_client.create_check(NUMBER, "HLR")
    assert type(info.value) is ValidationError
    assert info.value.server_message == "Injected."


def test_other_4xx_is_the_base_api_error(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient
) -> None:
    numberyo_simulator.sim.fail_next(1, 409)
    with pytest.raises(NumberYoAPIError) as info:
        sim_client.list_checks()
    assert type(info.value) is NumberYoAPIError
    assert str(info.value) == "GET /api/checks?page=1 -> 409: Conflict"


# --- GET retries ----------------------------------------------------------------------------


def test_get_retries_429_with_retry_after(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient, sleeps: Sleeps
) -> None:
    numberyo_simulator.sim.seed_checks(3)
    numberyo_simulator.sim.fail_next(2, 429, retry_after="7", endpoint="list")
    page = sim_client.list_checks()
    assert len(page.checks) == 3
    assert sleeps.calls == [7.0, 7.0]  # above backoff_base and backoff_max's first steps
    assert [e.status for e in numberyo_simulator.sim.requests()] == [429, 429, 200]


def test_get_retry_after_http_date(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient, sleeps: Sleeps
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    numberyo_simulator.sim.fail_next(1, 429, retry_after=format_datetime(when, usegmt=True))
    sim_client.list_checks()
    [slept] = sleeps.calls
    assert 27.0 < slept <= 30.0


def test_get_429_without_retry_after_backs_off(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    client = make_client(numberyo_simulator, backoff_base=0.5, backoff_max=30.0)
    numberyo_simulator.sim.fail_next(3, 429, retry_after="")
    client.list_checks()
    assert len(sleeps.calls) == 3
    assert all(0.0 <= s < 0.5 * 2**i for i, s in enumerate(sleeps.calls))


def test_get_429_exhausted(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    client = make_client(numberyo_simulator, max_retries=2)
    numberyo_simulator.sim.fail_next(10, 429, retry_after="2")
    with pytest.raises(RateLimitedError) as info:
        client.list_checks()
    assert info.value.retry_after == 2.0 and info.value.status == 429
    assert "gave up after 3 attempts" in str(info.value)
    assert sleeps.calls == [2.0, 2.0]
    assert len(numberyo_simulator.sim.requests()) == 3


def test_get_429_asking_too_long_gives_up_at_once(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    client = make_client(numberyo_simulator, retry_after_max=300)
    numberyo_simulator.sim.fail_next(1, 429, retry_after="3600")
    with pytest.raises(RateLimitedError, match="asked to wait 3600 s") as info:
        client.list_checks()
    assert info.value.retry_after == 3600.0
    assert sleeps.calls == [] and len(numberyo_simulator.sim.requests()) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_get_retries_5xx(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient, sleeps: Sleeps, status: int
) -> None:
    [check_id] = numberyo_simulator.sim.seed_checks(1, types=("HLR",))
    numberyo_simulator.sim.fail_next(2, status, endpoint="results")
    assert sim_client.get_results(check_id).type == "HLR"
    assert len(sleeps.calls) == 2 and all(0.0 <= s < 1.0 for s in sleeps.calls)
    assert [e.status for e in numberyo_simulator.sim.requests()] == [status, status, 200]


@pytest.mark.parametrize(("status", "message"), [(500, "Server Error."), (502, "Bad Gateway")])
def test_get_5xx_exhausted(
    numberyo_simulator: SimulatorServer,
    make_client: Callable[..., NumberYoClient],
    sleeps: Sleeps,
    status: int,
    message: str,
) -> None:
    client = make_client(numberyo_simulator, max_retries=3)
    numberyo_simulator.sim.fail_next(10, status)
    with pytest.raises(ServerError) as info:
        client.list_checks(2)
    err = info.value
    assert (err.method, err.path, err.status, err.server_message) == (
        "GET",
        "/api/checks?page=2",
        status,
        message,
    )
    assert not err.check_may_exist
    assert len(sleeps.calls) == 3 and len(numberyo_simulator.sim.requests()) == 4


def test_max_retries_zero_means_one_attempt(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    client = make_client(numberyo_simulator, max_retries=0)
    numberyo_simulator.sim.fail_next(1, 503)
    with pytest.raises(ServerError):
        client.list_checks()
    assert sleeps.calls == [] and len(numberyo_simulator.sim.requests()) == 1


def test_get_read_timeout_is_retried(
    numberyo_simulator_factory: Callable[..., SimulatorServer],
    make_client: Callable[..., NumberYoClient],
    sleeps: Sleeps,
) -> None:
    server = numberyo_simulator_factory(latency_ms=400)
    client = make_client(server, timeout=(2.0, 0.1), max_retries=1)
    with pytest.raises(
        TransportError, match=r"no complete answer within the 0\.1 s timeout"
    ) as info:
        client.list_checks()
    assert type(info.value) is TransportError and not info.value.check_may_exist
    assert len(sleeps.calls) == 1


# --- POST: retried only when nothing can have happened --------------------------------------


def test_post_retried_on_429_and_503_charged_once(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient, sleeps: Sleeps
) -> None:
    sim = numberyo_simulator.sim
    sim.fail_next(1, 429, retry_after="1", endpoint="create")
    sim.fail_next(1, 503, endpoint="create")
    created = sim_client.create_check(NUMBER, "HLR")
    assert [e.status for e in _posts(numberyo_simulator)] == [429, 503, 201]
    [charge] = sim.charges()
    assert charge.check_id == created.check.id
    assert sleeps.calls[0] == 1.0 and len(sleeps.calls) == 2


@pytest.mark.parametrize("status", [500, 502, 504])
def test_post_not_retried_on_500_502_504(
    numberyo_simulator: SimulatorServer, sim_client: NumberYoClient, sleeps: Sleeps, status: int
) -> None:
    numberyo_simulator.sim.fail_next(1, status, endpoint="create")
    with pytest.raises(ServerError) as info:
        sim_client.create_check(NUMBER, "HLR")
    err = info.value
    assert err.status == status and err.check_may_exist
    assert "MAY have been created" in str(err)
    assert len(_posts(numberyo_simulator)) == 1 and sleeps.calls == []


def test_post_503_exhausted_says_nothing_was_created(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    client = make_client(numberyo_simulator, max_retries=2)
    numberyo_simulator.sim.fail_next(5, 503, endpoint="create")
    with pytest.raises(ServerError) as info:
        client.create_check(NUMBER, "HLR")
    assert not info.value.check_may_exist
    assert len(_posts(numberyo_simulator)) == 3 and numberyo_simulator.sim.charges() == []


def test_post_read_timeout_after_charge_is_outcome_unknown(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    numberyo_simulator.sim.charge_delay_s = 1.0
    client = make_client(numberyo_simulator, timeout=(2.0, 0.2))
    with pytest.raises(OutcomeUnknownError) as info:
        client.create_check(NUMBER, "HLR")
    err = info.value
    assert err.check_may_exist and (err.method, err.path) == ("POST", "/api/checks")
    assert "MAY have been created and charged" in str(err)
    assert len(numberyo_simulator.sim.charges()) == 1  # the server did charge
    assert len(_posts(numberyo_simulator)) == 1  # and the client did not send it again
    assert sleeps.calls == []


def test_post_connection_dropped_after_sending_is_outcome_unknown(
    scripted: ScriptedServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    scripted.default = Scripted(drop=True)
    client = make_client(scripted)
    with pytest.raises(OutcomeUnknownError, match="connection was lost after it was established"):
        client.create_check(NUMBER, "HLR")
    assert [r.method for r in scripted.received] == ["POST"] and sleeps.calls == []
    # The same failure on a GET is retried.
    with pytest.raises(TransportError) as info:
        make_client(scripted, max_retries=2).list_checks()
    assert not isinstance(info.value, OutcomeUnknownError)
    assert len(scripted.received) == 1 + 3


def test_post_retried_on_connection_refused(
    closed_port_url: str, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    client = make_client(closed_port_url, max_retries=3)
    with pytest.raises(TransportError, match="nothing was sent") as info:
        client.create_check(NUMBER, "HLR")
    assert type(info.value) is TransportError and not info.value.check_may_exist
    assert "gave up after 4 attempts" in str(info.value)
    assert len(sleeps.calls) == 3  # 4 attempts


def test_post_retried_on_connect_timeout(
    full_backlog_url: str, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    client = make_client(full_backlog_url, timeout=(0.2, 5.0), max_retries=1)
    with pytest.raises(TransportError, match="nothing was sent") as info:
        client.create_check(NUMBER, "HLR")
    assert type(info.value) is TransportError
    assert len(sleeps.calls) == 1


def test_post_retry_then_success_against_a_real_listener(
    numberyo_simulator: SimulatorServer, closed_port_url: str
) -> None:
    """Connection refused, then the server comes up: the retried POST charges exactly once."""
    port = int(closed_port_url.rsplit(":", 1)[1])
    sim = numberyo_simulator.sim
    late = SimulatorServer(sim, port=port)
    slept: list[float] = []

    def start_server_on_first_sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:
            late.start()

    client = NumberYoClient("test-token", closed_port_url, sleep=start_server_on_first_sleep)
    try:
        created = client.create_check(NUMBER, "Verify")
    finally:
        client.close()
        late.stop()
    assert len(slept) == 1 and created.check.type == "Verify"
    assert len(sim.charges()) == 1


def _urllib3_failure(url: str) -> Failure:
    """How the client sends through a proxy: urllib3, no retries; classify_failure reads its
    exception."""
    pool = urllib3.PoolManager(retries=False)
    try:
        pool.request("POST", url, body=b"{}", timeout=urllib3.Timeout(0.2, 0.2), retries=False)
    except urllib3.exceptions.HTTPError as exc:
        return classify_failure(exc)
    raise AssertionError("the request should have failed")


def _direct_failure(url: str) -> Failure:
    """How the client sends without a proxy: http.client, each failure classified where it
    happens."""
    pool = ConnectionPool(url, ssl_context=ssl.create_default_context(), maxsize=1,
                          timeout=(0.2, 0.2))  # fmt: skip
    deadline = Deadline(5.0)
    with pytest.raises(TransportFailure) as caught, armed(deadline):
        exchange = pool.send("POST", "/api/checks", b"{}", {}, deadline)
        b"".join(exchange.chunks(65536))
    return caught.value.failure


@pytest.mark.parametrize("failure", [_urllib3_failure, _direct_failure], ids=["proxy", "direct"])
def test_classify_real_failures(
    failure: Callable[[str], Failure],
    closed_port_url: str,
    full_backlog_url: str,
    scripted: ScriptedServer,
) -> None:
    assert failure(closed_port_url) is Failure.CONNECT_FAILED
    assert failure(full_backlog_url) is Failure.CONNECT_FAILED
    scripted.script.append(Scripted(drop=True))
    assert failure(scripted.url) is Failure.CONNECTION_LOST
    scripted.script.append(Scripted(delay=0.5))
    assert failure(scripted.url) is Failure.READ_TIMEOUT
    assert failure("http://name.invalid./") is Failure.CONNECT_FAILED  # DNS failure
    if failure is _direct_failure:
        assert failure(scripted.url + "/a b") is Failure.INVALID_REQUEST  # refused, not sent


def test_the_direct_transport_checks_the_host_name_of_a_trusted_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certificate the bundle trusts, for 127.0.0.1 only: accepted there, rejected as a
    certificate failure (nothing sent, never retried) when the same server is reached as
    localhost."""
    from test_client_limits import _self_signed  # type: ignore[import-not-found]

    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    page = {
        "checks": [{"id": 7, "type": "HLR", "created_at": "2025-03-30T14:21:00.000000Z"}],
        "pagination": {"current_page": 1, "total_pages": 1, "total": 1},
    }
    server = HostileServer(lambda req: Reply.json(page))
    server._httpd.socket = context.wrap_socket(server._httpd.socket, server_side=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with server:
        port = server.url.rsplit(":", 1)[1]
        with NumberYoClient("test-token", f"https://127.0.0.1:{port}", max_retries=0) as client:
            assert isinstance(client._transport, ConnectionPool)
            assert [c.id for c in client.list_checks(1).checks] == [7]
        with (
            NumberYoClient("test-token", f"https://localhost:{port}", max_retries=3) as client,
            pytest.raises(TransportError, match="certificate of https://localhost"),
        ):
            client.list_checks(1)
        assert server.count() == 1  # the handshake failed: nothing reached the server


# --- bodies the API does not document -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("<html>maintenance</html>", "body is not JSON: '<html>maintenance</html>'"),
        (b"", "empty body"),
        ({"checks": []}, "required field 'pagination' is missing"),
        ({"checks": {}, "pagination": {}}, r"body.checks: expected a JSON array"),
        (
            {"checks": [{"id": "x", "type": "HLR", "created_at": "2025-03-30T14:10:23Z"}]},
            r"checks\[0\].id: expected an integer, got 'x'",
        ),
        (
            {"checks": [{"id": 1, "type": "HLR", "created_at": "yesterday"}]},
            r"checks\[0\].created_at: expected an ISO-8601 timestamp",
        ),
        ([1, 2], "body: expected a JSON object"),
    ],
)
def test_bad_list_bodies(
    scripted: ScriptedServer,
    make_client: Callable[..., NumberYoClient],
    body: Any,
    match: str,
) -> None:
    scripted.default = Scripted(200, body)
    with pytest.raises(BadResponseError, match=match) as info:
        make_client(scripted).list_checks(3)
    err = info.value
    assert (err.method, err.path, err.status) == ("GET", "/api/checks?page=3", 200)
    assert str(err).startswith("GET /api/checks?page=3 -> 200: unexpected response: ")


def test_unreadable_201_is_outcome_unknown(
    scripted: ScriptedServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    client = make_client(scripted)
    for body in ("Created!", {"status": True, "check": {"id": 5}}):
        scripted.script.append(Scripted(201, body))
        with pytest.raises(OutcomeUnknownError, match="The check exists and was charged") as info:
            client.create_check(NUMBER, "HLR")
        assert info.value.status == 201
        assert isinstance(info.value.__cause__, BadResponseError)
    assert len(scripted.received) == 2 and sleeps.calls == []


def test_results_of_unknown_type_is_bad_response(
    scripted: ScriptedServer, make_client: Callable[..., NumberYoClient]
) -> None:
    scripted.default = Scripted(200, {"type": "CNAM", "results": []})
    with pytest.raises(BadResponseError, match="'CNAM' is not one this version knows"):
        make_client(scripted).get_results(1)


def test_redirects_are_not_followed(
    scripted: ScriptedServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    scripted.default = Scripted(301, b"", {"Location": "https://elsewhere.example/api/checks"})
    with pytest.raises(NumberYoAPIError, match=r"redirect to https://elsewhere\.example") as info:
        make_client(scripted).list_checks()
    assert info.value.status == 301 and len(scripted.received) == 1 and sleeps.calls == []


def test_page_param_ignored_by_server_does_not_loop(
    scripted: ScriptedServer, make_client: Callable[..., NumberYoClient]
) -> None:
    page1 = {
        "checks": [{"id": 1, "type": "HLR", "created_at": "2025-03-30T14:21:00.000000Z"}],
        "pagination": {"current_page": 1, "total_pages": 3, "total": 3},
    }
    scripted.default = Scripted(200, page1)
    with pytest.raises(BadResponseError, match="asked for page 2, the server answered page 1"):
        list(make_client(scripted).iter_checks())
    assert len(scripted.received) == 2


def test_get_503_retry_after_honoured(
    scripted: ScriptedServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    scripted.script.append(Scripted(503, {"message": "Service Unavailable"}, {"Retry-After": "4"}))
    scripted.default = Scripted(200, {"type": "HLR", "results": []})
    assert make_client(scripted).get_results(9).results == []
    assert sleeps.calls == [4.0]


def test_request_headers_and_pool(
    scripted: ScriptedServer, make_client: Callable[..., NumberYoClient]
) -> None:
    scripted.default = Scripted(200, {"type": "HLR", "results": []})
    client = make_client(scripted, pool_size=7)
    client.get_results(1)
    [got] = scripted.received
    assert got.path == "/api/checks/1/results"
    assert got.headers["Authorization"] == "Bearer scripted-token"
    assert got.headers["Accept"] == "application/json"
    assert got.headers["Content-Type"] == "application/json"
    major, minor = sys.version_info[:2]
    assert got.headers["User-Agent"] == (
        f"airflow-provider-numberyo/{__version__} (Python {major}.{minor})"
    )
    # No proxy: the direct transport, keeping up to pool_size idle connections (it never
    # resends: RetryPolicy decides).
    assert isinstance(client._transport, ConnectionPool)
    assert client._transport.maxsize == 7
    scripted.script.append(Scripted(201, b"x"))
    with pytest.raises(OutcomeUnknownError):
        client.create_check("+32 456789023", "hlr")
    assert json.loads(scripted.received[-1].body) == {"phone_number": NUMBER, "type": "HLR"}


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "   ", "\n", "Bearer ", None])
def test_empty_token(token: Any) -> None:
    with pytest.raises(ConfigurationError, match="NUMBERYO_API_TOKEN"):
        NumberYoClient(token)


def test_token_with_bad_characters_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as info:
        NumberYoClient("abc\ndef-secret")
    assert "secret" not in str(info.value)


def test_token_is_tidied(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient]
) -> None:
    client = make_client(numberyo_simulator, token="  Bearer test-token\n")
    assert client.list_checks().pagination.total == 0


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("www.numberyo.tech", "did you mean 'https://www.numberyo.tech'"),
        ("https://", "scheme and a host"),
        ("ftp://numberyo.tech", "scheme and a host"),
        ("", "base_url is empty"),
        ("https://www.numberyo.tech/api", "ends with /api"),
        ("https://www.numberyo.tech/?x=1", "query"),
        ("https://user:pw@www.numberyo.tech", "credentials"),
        ("https://www.numberyo.tech:99999", "not a valid URL"),
    ],
)
def test_bad_base_url(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        NumberYoClient("t", url)
    assert "pw@" not in str(info.value)


def test_base_url_forms() -> None:
    assert NumberYoClient("t").base_url == DEFAULT_BASE_URL
    assert NumberYoClient("t", "https://www.numberyo.tech/").base_url == DEFAULT_BASE_URL
    assert NumberYoClient("t", " HTTP://127.0.0.1:8080// ").base_url == "http://127.0.0.1:8080"
    assert NumberYoClient("t", "https://gw.example/numberyo/").base_url == (
        "https://gw.example/numberyo"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": (5.0,)},
        {"timeout": (5.0, -1)},
        {"timeout": float("inf")},
        {"max_retries": -1},
        {"backoff_base": -1.0},
        {"pool_size": 0},
        {"requests_per_second": 0},
        {"requests_per_second": 1.0, "rate_limiter": RateLimiter(1.0)},
    ],
)
def test_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        NumberYoClient("t", **kwargs)


# --- rate limit through the client ----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limit_applies_to_every_attempt(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient], sleeps: Sleeps
) -> None:
    fake = FakeClock()
    limiter = RateLimiter(10, clock=fake.clock, sleep=fake.sleep)
    client = make_client(numberyo_simulator, rate_limiter=limiter)
    numberyo_simulator.sim.fail_next(2, 503)
    client.list_checks()
    client.list_checks()
    # 4 attempts (3 for the first call, retries included), one slot each, 0.1 s apart.
    assert fake.sleeps == pytest.approx([0.1, 0.1, 0.1])
    assert len(sleeps.calls) == 2  # the retry backoffs, separate from the limiter's waits
    assert len(numberyo_simulator.sim.requests()) == 4


def test_requests_per_second_builds_a_limiter_off_by_default(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient]
) -> None:
    assert make_client(numberyo_simulator).rate_limiter is None
    limited = make_client(numberyo_simulator, requests_per_second=2.5)
    assert limited.rate_limiter is not None
    assert limited.rate_limiter.requests_per_second == 2.5


# --- threads --------------------------------------------------------------------------------


def test_one_client_many_threads(
    numberyo_simulator: SimulatorServer, make_client: Callable[..., NumberYoClient]
) -> None:
    client = make_client(numberyo_simulator, pool_size=8)
    numbers = [f"3245600{i:04d}" for i in range(40)]
    created: list[int] = []
    lock = threading.Lock()

    def work(chunk: list[str]) -> None:
        for number in chunk:
            check = client.create_check(number, "HLR").check
            with lock:
                created.append(check.id)

    threads = [threading.Thread(target=work, args=(numbers[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    charges = numberyo_simulator.sim.charges()
    assert len(created) == len(set(created)) == 40
    assert sorted(str(c.phone_number) for c in charges) == sorted(numbers)


# --- the token never leaks ------------------------------------------------------------------

#: A test value whose every copy we hunt for.
SECRET = "sk-live-7f3c9a1e5b2d48c6"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def test_token_never_in_messages_reprs_logs_or_chains(
    numberyo_simulator_factory: Callable[..., SimulatorServer],
    scripted: ScriptedServer,
    closed_port_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = numberyo_simulator_factory(token=SECRET, credits=1, seed_checks=12)
    sim = server.sim
    wrong = SECRET[::-1]
    sleep = Sleeps()
    client = NumberYoClient(SECRET, server.url, sleep=sleep, timeout=(2.0, 0.2), max_retries=2)
    other = NumberYoClient(f"Bearer {wrong}", server.url, sleep=sleep)
    nowhere = NumberYoClient(SECRET, closed_port_url, sleep=sleep, max_retries=1)
    echo = NumberYoClient(SECRET, scripted.url, sleep=sleep, max_retries=1)
    raised: list[BaseException] = []

    def attempt(call: Callable[[], object]) -> None:
        try:
            call()
        except NumberYoError as exc:
            raised.append(exc)

    try:
        list(client.iter_checks())
        client.get_results(client.list_checks().checks[0].id)
        client.create_check(NUMBER, "HLR")  # uses the last credit
        attempt(lambda: client.create_check(NUMBER, "HLR"))  # 422 credits
        attempt(lambda: client.create_check("12", "HLR"))  # 422 validation
        attempt(lambda: client.get_results(10**9))  # 404
        attempt(other.list_checks)  # 401 with another secret
        sim.fail_next(5, 429, retry_after="1")
        attempt(client.list_checks)  # 429 exhausted
        sim.fail_next(5, 500)
        attempt(client.list_checks)  # 500 exhausted
        sim.fail_next(1, 502, endpoint="create")
        attempt(lambda: client.create_check(NUMBER, "Verify"))  # 502 on POST
        sim.set_credits(10)
        sim.charge_delay_s = 1.0
        attempt(lambda: client.create_check(NUMBER, "HLR"))  # read timeout after charge
        attempt(lambda: nowhere.create_check(NUMBER, "HLR"))  # connection refused
        attempt(lambda: NumberYoClient(f"{SECRET} x"))  # bad token
        # A server that echoes the token back in its error and success bodies.
        scripted.script.append(Scripted(418, {"message": f"bad token {SECRET}", "t": SECRET}))
        attempt(echo.list_checks)
        scripted.script.append(Scripted(200, f"token={SECRET}"))
        attempt(echo.list_checks)
        scripted.script.append(Scripted(drop=True))
        attempt(lambda: echo.create_check(NUMBER, "HLR"))
    finally:
        for c in (client, other, nowhere, echo):
            c.close()

    kinds = {type(e) for e in raised}
    assert {
        InsufficientCreditsError,
        ValidationError,
        NotFoundError,
        AuthenticationError,
        RateLimitedError,
        ServerError,
        OutcomeUnknownError,
        TransportError,
        ConfigurationError,
        NumberYoAPIError,
        BadResponseError,
    } <= kinds
    for secret in (SECRET, wrong):
        for exc in raised:
            rendered = "".join(traceback.format_exception(exc))
            assert secret not in rendered
            assert secret not in repr(exc)
            assert secret.encode() not in pickle.dumps(exc)
            for link in _chain(exc):
                assert not isinstance(link, requests.RequestException), link
                assert secret not in repr(vars(link))
        for c in (client, other, nowhere, echo):
            assert secret not in repr(c) and secret not in repr(c._auth)
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()
    assert any(
        r.name == "numberyo_provider.client" and r.levelno == logging.DEBUG for r in caplog.records
    )
    assert any(
        r.name == "numberyo_provider.client" and r.levelno == logging.WARNING
        for r in caplog.records
    )


def test_logging_lines(
    numberyo_simulator: SimulatorServer,
    make_client: Callable[..., NumberYoClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="numberyo_provider.client")
    client = make_client(numberyo_simulator, max_retries=2)
    numberyo_simulator.sim.fail_next(1, 429, retry_after="3")
    client.list_checks()
    ours = [r for r in caplog.records if r.name == "numberyo_provider.client"]
    debug = [r.getMessage() for r in ours if r.levelno == logging.DEBUG]
    warn = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    assert len(debug) == 2
    assert debug[0].startswith("GET /api/checks?page=1 -> 429 in ") and debug[0].endswith(" ms")
    assert debug[1].startswith("GET /api/checks?page=1 -> 200 in ")
    assert warn == [
        "GET /api/checks?page=1 -> 429 Too Many Requests (attempt 1/3); retrying in 3.00 s"
    ]


def test_errors_pickle_round_trip() -> None:
    err = RateLimitedError("GET", "/api/checks", 429, "Too Many Attempts.", {"a": 1}, retry_after=2)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is RateLimitedError and str(back) == str(err) and back.retry_after == 2
    unknown = OutcomeUnknownError("POST", "/api/checks", "read timeout")
    again = pickle.loads(pickle.dumps(unknown))
    assert again.check_may_exist and again.method == "POST" and str(again) == str(unknown)


def test_repr_and_context_manager(numberyo_simulator: SimulatorServer) -> None:
    with NumberYoClient(numberyo_simulator.token, numberyo_simulator.url) as client:
        text = repr(client)
        assert numberyo_simulator.url in text and "test-token" not in text
        assert client.list_checks().pagination.current_page == 1


def test_proxy_environment_is_read_once_at_creation(
    numberyo_simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:  # a proxy address nothing listens on
        s.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    proxied = NumberYoClient(
        numberyo_simulator.token, numberyo_simulator.url, max_retries=0, sleep=lambda s: None
    )
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassing = NumberYoClient(
        numberyo_simulator.token, numberyo_simulator.url, max_retries=0, sleep=lambda s: None
    )
    monkeypatch.delenv("HTTP_PROXY")  # changing the environment later changes nothing
    with proxied, bypassing:
        with pytest.raises(TransportError):
            proxied.list_checks(1)
        assert bypassing.list_checks(1).pagination.total == 0


def test_international_host_is_encoded_once_for_the_wire() -> None:
    client = NumberYoClient("tok-idn", "https://bücher.example/prefix/")
    assert client.base_url == "https://bücher.example/prefix"
    assert client._wire_base_url == "https://xn--bcher-kva.example/prefix"
    client.close()
