"""The simulator's state and API logic: accounts, checks, credits, the request log, fault knobs.

HTTP-agnostic on purpose: :mod:`.app` only adapts requests to the ``_api_*`` methods here, and tests
drive the same object directly (seed history, inject drift and faults, read the truth).

Answers the reference does not show, and what the simulator chose (do not code clients against
these beyond what the reference documents):

- Order of checks in ``POST /api/checks``: authentication (401), then input validation (422 in
  Laravel's validation format), then the type (400 "Unsupported check type."), then credits (422
  "Error creating check."). Types are case-sensitive: ``HLR`` and ``Verify``.
- Validation messages follow Laravel's wording: "The phone number field is required.", "The phone
  number field must only contain digits." (a leading ``+`` is refused: send E.164 digits), "The
  phone number field must be between 6 and 15 digits.", "The type field is required.", "The type
  field must be a string."; with several errors the message gets " (and N more error[s])".
  A JSON integer phone number is accepted like Laravel does; an unparsable body counts as empty.
  Query-string fields are merged under the JSON body's, as Laravel's ``$request->input()`` does.
- ``created_at`` has whole-second precision (Laravel/MySQL ``timestamp`` columns): list items and
  results render it as ``"...T14:21:00.000000Z"``, the POST answer's ``check.created_at`` as
  ``"...T14:10:23Z"``, each as the reference shows it. Checks created within one second tie on
  ``created_at``; the list then orders by id, newest first.
- ``page``: missing, not an integer (``"2.5"``, ``"02"``, ``"x"``) or below 1 means 1 (Laravel's
  paginator). A page past the last answers 200 with no checks and the same ``total_pages`` and
  ``total``; ``current_page`` echoes the page asked for. An account without checks has
  ``total_pages`` 1.
- ``GET /api/checks/{id}/results`` with a non-numeric id answers 404 like a foreign check.
- Unknown routes answer 404 ``{"message": "The route api/x could not be found."}`` and a wrong
  method 405, as Laravel does for JSON requests. The simulator always answers JSON and ignores the
  ``Accept`` header (real Laravel may redirect or answer HTML without ``Accept: application/json``).
- Injected 429s carry ``{"message": "Too Many Attempts."}`` and ``Retry-After``; 500 carries
  ``{"message": "Server Error."}``; 503 ``{"message": "Service Unavailable"}``; 502 and 504 an
  HTML page, as a reverse proxy in front of the API would send. Faults are drawn after
  authentication, so a bad token always answers 401.

Why one module of about 690 lines: it is the stand-in account, one lock-guarded state (checks,
credits, the request log, scripted faults) that every endpoint reads and writes; the HTTP layer
(``app``), the seeded history (``catalog``) and the contacts are modules of their own.
"""

from __future__ import annotations

import bisect
import json
import random
import re
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from numberyo_provider.simulator import catalog

#: Not a secret: the documented token of a local demo server.
DEMO_TOKEN = "demo-token"  # noqa: S105
SUPPORTED_TYPES: tuple[str, ...] = ("HLR", "Verify")
DEFAULT_COSTS: Mapping[str, Decimal] = {"HLR": Decimal("1.00"), "Verify": Decimal("0.50")}
PAGE_SIZE = 10
#: Endpoints faults can target; request-log entries also use "other" (unknown routes).
API_ENDPOINTS: tuple[str, ...] = ("list", "results", "create")

MSG_UNAUTHENTICATED = "Unauthenticated."
MSG_NOT_FOUND = "Check not found or access denied."
#: Owner index of a deleted check (the owner array holds unsigned shorts).
_NO_OWNER = 0xFFFF
MSG_UNSUPPORTED = "Unsupported check type."
MSG_CREATED = "Check successfully created."
MSG_CREATE_ERROR = "Error creating check."
MSG_TOO_MANY = "Too Many Attempts."
MSG_SERVER_ERROR = "Server Error."

_CENT = Decimal("0.01")
_PAGE_RE = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_REASONS = {
    400: "Bad Request",
    401: "Unauthenticated.",
    403: "This action is unauthorized.",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    422: "Unprocessable Content",
    429: MSG_TOO_MANY,
    500: MSG_SERVER_ERROR,
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_HTML_STATUSES = frozenset({502, 504})


@dataclass(frozen=True, slots=True)
class RequestLogEntry:
    """One HTTP request the simulator answered: the witness tests count charges and calls with."""

    method: str
    path: str
    #: ``"list"``, ``"results"``, ``"create"`` or ``"other"``.
    endpoint: str
    #: A label such as ``"account-1"``; never the token. ``None`` when unauthenticated.
    account: str | None
    status: int
    phone_number: str | None
    check_type: str | None
    check_id: int | None
    charged: bool
    #: ``time.time()`` when the answer was decided.
    at: float


@dataclass(frozen=True)
class Reply:
    """An HTTP answer, independent of the web framework."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    #: ``None`` for JSON bodies; otherwise ``body`` is text of this media type.
    media_type: str | None = None

    def content(self) -> bytes:
        if self.media_type is None:
            return json.dumps(self.body, separators=(",", ":")).encode()
        return str(self.body).encode()


class SimulatorRequestError(Exception):
    """A direct call (e.g. :meth:`Simulator.create_check`) the API would have refused."""

    def __init__(self, reply: Reply) -> None:
        self.status = reply.status
        self.body = reply.body
        super().__init__(f"the simulator answered {reply.status}: {reply.body!r}")


@dataclass
class _Account:
    index: int
    label: str
    token: str = field(repr=False)
    credits: Decimal
    #: Ids of the account's checks sorted by (created_at, id), oldest first.
    order: array[int] = field(default_factory=lambda: array("q"))


@dataclass
class _Fault:
    remaining: int
    status: int
    retry_after: str | None
    endpoint: str | None


def _money(value: Decimal) -> str:
    """Two decimals like the API's "1.00"; more only when the amount really has more."""
    cents = value.quantize(_CENT, rounding=ROUND_HALF_EVEN)
    return f"{cents:f}" if cents == value else f"{value.normalize():f}"


def _to_decimal(value: Decimal | int | str | float, what: str) -> Decimal:
    try:
        result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(
            f"{what} must be a decimal number such as 1000 or '0.50', got {value!r}"
        ) from None
    if not result.is_finite() or result < 0:
        raise ValueError(f"{what} must be a finite amount >= 0, got {value!r}")
    return result


def _iso_micro(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(ts))


def _iso_seconds(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_page(raw: str | None) -> int:
    """Laravel's paginator: anything but an integer >= 1 (no leading zeros) is page 1."""
    if raw is None:
        return 1
    text = raw.strip()
    if not _PAGE_RE.fullmatch(text):
        return 1
    page = int(text)
    return page if page >= 1 else 1


def fault_reply(status: int, endpoint: str, retry_after: str | None) -> Reply:
    """The body a real deployment would send with this status."""
    if status in _HTML_STATUSES:
        reason = _REASONS[status]
        html = (
            f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        return Reply(status, html, media_type="text/html")
    headers: dict[str, str] = {}
    if status == 429:
        if retry_after:
            headers["Retry-After"] = retry_after
        headers["X-RateLimit-Limit"] = "60"
        headers["X-RateLimit-Remaining"] = "0"
    if status == 404 and endpoint == "results":
        message = MSG_NOT_FOUND
    elif status == 422 and endpoint == "create":
        return Reply(status, {"status": False, "message": MSG_CREATE_ERROR, "error": "Injected."})
    else:
        message = _REASONS.get(status, "Error")
    return Reply(status, {"message": message}, headers)


def _validation_error(errors: dict[str, list[str]]) -> Reply:
    messages = [m for ms in errors.values() for m in ms]
    message = messages[0]
    if len(messages) > 1:
        more = len(messages) - 1
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return Reply(422, {"message": message, "errors": errors})


class Simulator:
    """An in-memory NumberYo account server; thread-safe, shared by the HTTP app and tests.

    Knobs ``latency_ms``, ``rate_limit_share``, ``error_share``, ``retry_after_s``,
    ``charge_delay_s`` and ``before_request`` are plain attributes tests may change at run time.
    ``latency_ms`` runs from a request's arrival to its answer (a POST charges on arrival);
    ``charge_delay_s`` delays the answer of a charged request further.
    ``before_request(endpoint, info)`` runs in a worker thread before each API request is
    handled; ``info`` holds method, path, query, account label, page, check_id, phone_number and
    check_type (never the token); an exception in it answers 500. The request log keeps the last
    ``request_log_limit`` requests (``None``: all); charges are always all kept.

    A check is stored as ~30 bytes (id, type, time, number); results are derived from the number
    when asked (~0.1-0.3 ms each), so :meth:`truth` is for histories of test size.
    """

    def __init__(
        self,
        *,
        token: str = DEMO_TOKEN,
        credits: Decimal | int | str = 1000,
        costs: Mapping[str, Decimal | str] | None = None,
        seed_checks: int = 0,
        seed_span_days: int | None = None,
        latency_ms: float = 0,
        rate_limit_share: float = 0.0,
        retry_after_s: int = 1,
        error_share: float = 0.0,
        random_seed: int = 0,
        request_log_limit: int | None = 200_000,
    ) -> None:
        for name, share in (("rate_limit_share", rate_limit_share), ("error_share", error_share)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {share!r}")
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms!r}")
        if retry_after_s < 0:
            raise ValueError(f"retry_after_s must be >= 0, got {retry_after_s!r}")
        merged = dict(DEFAULT_COSTS)
        for check_type, cost in (costs or {}).items():
            if check_type not in SUPPORTED_TYPES:
                raise ValueError(
                    f"costs: unknown check type {check_type!r}; the API supports "
                    f"{', '.join(SUPPORTED_TYPES)}"
                )
            merged[check_type] = _to_decimal(cost, f"costs[{check_type!r}]")
        self.costs: Mapping[str, Decimal] = merged
        self.latency_ms = float(latency_ms)
        self.rate_limit_share = float(rate_limit_share)
        self.retry_after_s = int(retry_after_s)
        self.error_share = float(error_share)
        self.charge_delay_s = 0.0
        self.before_request: Callable[[str, Mapping[str, Any]], None] | None = None
        self.default_token = token

        self._lock = threading.Lock()
        self._rng = random.Random(random_seed)
        self._seed_rng = random.Random(f"seed-checks-{random_seed}")
        self._accounts: dict[str, _Account] = {}
        self._account_list: list[_Account] = []
        # Checks, columnar and indexed by id - 1 (ids are one global dense counter).
        self._ts = array("q")
        self._numbers = array("q")
        self._number_len = array("B")
        self._type_ix = array("B")
        self._owner = array("H")
        self._type_names: list[str] = []
        self._type_lookup: dict[str, int] = {}
        self._broken: dict[int, int] = {}
        self._faults: list[_Fault] = []
        self._log: deque[RequestLogEntry] = deque(maxlen=request_log_limit)
        self._charges: list[RequestLogEntry] = []

        self.add_account(token, credits)
        if seed_checks:
            self.seed_checks(seed_checks, span_days=seed_span_days)

    # ----------------------------------------------------------------- accounts and history

    def add_account(
        self, token: str, credits: Decimal | int | str = 1000, *, label: str | None = None
    ) -> None:
        """Another account (tests of isolation: one account never sees another's checks)."""
        if not token or not isinstance(token, str):
            raise ValueError("token must be a non-empty string")
        amount = _to_decimal(credits, "credits")
        with self._lock:
            if token in self._accounts:
                raise ValueError("an account with this token already exists")
            if len(self._account_list) >= 65535:
                raise ValueError("too many accounts")
            index = len(self._account_list)
            account = _Account(index, label or f"account-{index + 1}", token, amount)
            self._accounts[token] = account
            self._account_list.append(account)

    def _account(self, token: str | None) -> _Account:
        account = self._accounts.get(self.default_token if token is None else token)
        if account is None:
            raise KeyError("no account with this token; add it with add_account()")
        return account

    def _type_index(self, name: str) -> int:
        ix = self._type_lookup.get(name)
        if ix is None:
            if len(self._type_names) >= 255:
                raise ValueError("too many distinct check types")
            ix = len(self._type_names)
            self._type_names.append(name)
            self._type_lookup[name] = ix
        return ix

    def seed_checks(
        self,
        n: int,
        *,
        token: str | None = None,
        types: Sequence[str] = SUPPORTED_TYPES,
        span_days: int | None = None,
    ) -> list[int]:
        """``n`` existing checks, free of charge; returns their ids (oldest first).

        Without ``span_days``: spread evenly over the past 30 days (what most tests want: small,
        fast, few ties). With ``span_days``: a realistic history ending a minute ago, e.g. 1095
        for three years, with growing activity, quiet weekends and nights, and bulk jobs that
        create several checks in the same second (see ``catalog.seed_history_times``); this is
        the shape that exposes costs growing with the number of days a load covers. It ends now
        and keeps its weekends on real weekends, so the same seed draws another history (of the
        same kind) on another day: tests of its statistics belong on
        ``catalog.seed_history_times`` with a fixed start.

        Stored as a few bytes each; results are derived from the number when asked. ``types``
        may name types the API does not support (e.g. ``"CNAM"``) to provoke the 400 on results.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if span_days is not None and (
            isinstance(span_days, bool) or not isinstance(span_days, int) or span_days < 1
        ):
            raise ValueError(f"span_days must be a whole number of days >= 1, got {span_days!r}")
        if not types or any(not t or not isinstance(t, str) for t in types):
            raise ValueError("types must be a non-empty sequence of type names")
        if n == 0:
            return []
        rng = self._seed_rng
        numbers = catalog.seed_numbers(n, rng)
        now = int(time.time())
        if span_days is None:
            span = 30 * 86400
            start = now - span
            draw = rng.random
            times = [start + o for o in sorted([int(draw() * (span - 60)) for _ in range(n)])]
        else:
            span = span_days * 86400
            times = catalog.seed_history_times(n, now - 60 - span, span, rng)
        type_choices = rng.choices(list(types), k=n)
        with self._lock:
            account = self._account(token)
            owner = account.index
            type_ix = [self._type_index(t) for t in types]
            by_name = dict(zip(types, type_ix, strict=True))
            first = len(self._ts) + 1
            self._ts.extend(times)
            self._numbers.extend(map(int, numbers))
            self._number_len.extend(map(len, numbers))
            self._type_ix.extend(by_name[t] for t in type_choices)
            self._owner.extend(array("H", [owner]) * n)
            ids = range(first, first + n)
            if len(account.order) == 0:
                account.order.extend(ids)
            else:
                ts = self._ts
                merged = sorted([*account.order, *ids], key=lambda i: (ts[i - 1], i))
                account.order = array("q", merged)
        return list(ids)

    def _insert_check(self, account: _Account, ts: int, digits: str, check_type: str) -> int:
        """Caller holds the lock."""
        check_id = len(self._ts) + 1
        self._ts.append(ts)
        self._numbers.append(int(digits))
        self._number_len.append(len(digits))
        self._type_ix.append(self._type_index(check_type))
        self._owner.append(account.index)
        order = account.order
        tsa = self._ts
        if not order or (tsa[order[-1] - 1], order[-1]) <= (ts, check_id):
            order.append(check_id)
        else:
            pos = bisect.bisect_right(order, (ts, check_id), key=lambda i: (tsa[i - 1], i))
            order.insert(pos, check_id)
        return check_id

    def _check_row(self, check_id: int) -> tuple[int, str, str, int] | None:
        """(ts, type, digits, owner index) of a check; caller holds the lock."""
        if not 1 <= check_id <= len(self._ts):
            return None
        i = check_id - 1
        digits = str(self._numbers[i]).zfill(self._number_len[i])
        return self._ts[i], self._type_names[self._type_ix[i]], digits, self._owner[i]

    # ----------------------------------------------------------------- test hooks

    def credits(self, token: str | None = None) -> Decimal:
        """Current balance of an account (the default one when ``token`` is None)."""
        with self._lock:
            return self._account(token).credits

    def set_credits(self, amount: Decimal | int | str, token: str | None = None) -> None:
        """Set a balance (e.g. to run out mid-run)."""
        value = _to_decimal(amount, "amount")
        with self._lock:
            self._account(token).credits = value

    def requests(self) -> list[RequestLogEntry]:
        """Snapshot of the request log (HTTP requests only, oldest first)."""
        with self._lock:
            return list(self._log)

    def charges(self, token: str | None = None) -> list[RequestLogEntry]:
        """HTTP requests that charged credits (all accounts when ``token`` is None)."""
        with self._lock:
            if token is None:
                return list(self._charges)
            label = self._account(token).label
            return [e for e in self._charges if e.account == label]

    def account_label(self, token: str | None = None) -> str:
        """The label request-log entries carry for this account."""
        with self._lock:
            return self._account(token).label

    def create_check(self, token: str, phone_number: str, check_type: str) -> dict[str, Any]:
        """What a POST would do, charging; returns the 201 body or raises SimulatorRequestError.

        Not an HTTP request: it is not in :meth:`requests` / :meth:`charges`, but the credits do
        go down. Tests use it to add checks between page requests (page drift).
        """
        with self._lock:
            account = self._accounts.get(token)
        if account is None:
            raise SimulatorRequestError(Reply(401, {"message": MSG_UNAUTHENTICATED}))
        reply, _charged, _check_id = self._api_create(
            account, {"phone_number": phone_number, "type": check_type}
        )
        if reply.status != 201:
            raise SimulatorRequestError(reply)
        return dict(reply.body)

    def truth(self, token: str | None = None) -> list[dict[str, Any]]:
        """Every check of the account, newest first, with its results body as the API answers it.

        Each item is ``{"check": {id, type, created_at}, "results": {...} | None,
        "results_status": int}``; ``results`` is None when the results endpoint would not answer
        200 (unsupported type: 400, :meth:`break_results`: that status).
        """
        with self._lock:
            account = self._account(token)
            rows = [(i, self._check_row(i)) for i in reversed(account.order)]
            broken = dict(self._broken)
        out: list[dict[str, Any]] = []
        for check_id, row in rows:
            assert row is not None
            ts, check_type, digits, _owner = row
            status = broken.get(check_id, 200 if check_type in SUPPORTED_TYPES else 400)
            results = self._results_body(check_type, digits, ts) if status == 200 else None
            out.append(
                {
                    "check": {"id": check_id, "type": check_type, "created_at": _iso_micro(ts)},
                    "results": results,
                    "results_status": status,
                }
            )
        return out

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        retry_after: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        """The next ``n`` API requests (to ``endpoint`` only, if given) answer ``status``.

        Faults are answered before any work: a failed POST never charges. For 429,
        ``retry_after`` is the ``Retry-After`` header (default ``retry_after_s``; ``""`` sends
        none). Queued faults are served in the order they were added.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        if endpoint is not None and endpoint not in API_ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(API_ENDPOINTS)} or None")
        if n:
            with self._lock:
                self._faults.append(_Fault(n, status, retry_after, endpoint))

    def clear_faults(self) -> None:
        """Forget queued :meth:`fail_next` faults and broken results."""
        with self._lock:
            self._faults.clear()
            self._broken.clear()

    def break_results(self, check_id: int, status: int = 404) -> None:
        """The results of this (still listed) check answer ``status`` from now on."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        with self._lock:
            self._broken[check_id] = status

    def delete_check(self, check_id: int) -> None:
        """Remove a check from its account, as if NumberYo deleted it: it leaves the list (older
        checks move up a position) and its results answer 404. Tests use it for shrinking lists."""
        with self._lock:
            row = self._check_row(check_id)
            if row is None or row[3] == _NO_OWNER:
                raise KeyError(f"no check {check_id}")
            account = next(a for a in self._accounts.values() if a.index == row[3])
            account.order.remove(check_id)
            self._owner[check_id - 1] = _NO_OWNER

    # ----------------------------------------------------------------- request handling (app)

    def _authenticate(self, authorization: str | None) -> _Account | None:
        # Laravel's bearerToken(): the text after the last "Bearer ", up to a comma.
        if not authorization:
            return None
        pos = authorization.rfind("Bearer ")
        if pos < 0:
            return None
        token = authorization[pos + 7 :].split(",", 1)[0]
        return self._accounts.get(token) if token else None

    def _draw_fault(self, endpoint: str) -> Reply | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint is None or fault.endpoint == endpoint:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    retry_after = (
                        str(self.retry_after_s) if fault.retry_after is None else fault.retry_after
                    )
                    return fault_reply(fault.status, endpoint, retry_after)
            if self.rate_limit_share > 0 and self._rng.random() < self.rate_limit_share:
                return fault_reply(429, endpoint, str(self.retry_after_s))
            if self.error_share > 0 and self._rng.random() < self.error_share:
                return fault_reply(self._rng.choice((500, 503)), endpoint, None)
        return None

    def _record(self, entry: RequestLogEntry) -> None:
        with self._lock:
            self._log.append(entry)
            if entry.charged:
                self._charges.append(entry)

    def _api_list(self, account: _Account, page: int) -> Reply:
        with self._lock:
            order = account.order
            total = len(order)
            end = total - (page - 1) * PAGE_SIZE
            ids = order[max(end - PAGE_SIZE, 0) : end] if end > 0 else array("q")
            rows = [(i, self._ts[i - 1], self._type_names[self._type_ix[i - 1]]) for i in ids]
        checks = [{"id": i, "type": t, "created_at": _iso_micro(ts)} for i, ts, t in reversed(rows)]
        total_pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
        return Reply(
            200,
            {
                "checks": checks,
                "pagination": {"current_page": page, "total_pages": total_pages, "total": total},
            },
        )

    @staticmethod
    def _results_body(check_type: str, digits: str, ts: int) -> dict[str, Any]:
        created = _iso_micro(ts)
        if check_type == "HLR":
            result = catalog.hlr_result(digits, created)
        else:
            result = catalog.verify_result(digits, created)
        return {"type": check_type, "results": [result]}

    def _api_results(self, account: _Account, raw_id: str) -> tuple[Reply, int | None]:
        check_id = int(raw_id) if raw_id.isascii() and raw_id.isdigit() else None
        if check_id is None:
            return Reply(404, {"message": MSG_NOT_FOUND}), None
        with self._lock:
            row = self._check_row(check_id)
            owned = row is not None and row[3] == account.index
            broken = self._broken.get(check_id)
        if row is None or not owned:
            return Reply(404, {"message": MSG_NOT_FOUND}), check_id
        if broken is not None:
            return fault_reply(broken, "results", str(self.retry_after_s)), check_id
        ts, check_type, digits, _owner = row
        if check_type not in SUPPORTED_TYPES:
            return Reply(400, {"message": MSG_UNSUPPORTED}), check_id
        return Reply(200, self._results_body(check_type, digits, ts)), check_id

    @staticmethod
    def _validate(payload: Mapping[str, Any]) -> tuple[str | None, Reply | None]:
        errors: dict[str, list[str]] = {}
        raw = payload.get("phone_number")
        digits: str | None = None
        if raw is None or (isinstance(raw, str) and raw.strip() == "") or raw == []:
            errors["phone_number"] = ["The phone number field is required."]
        elif isinstance(raw, bool) or not isinstance(raw, str | int):
            errors["phone_number"] = ["The phone number field must only contain digits."]
        else:
            text = str(raw)
            if not (text.isascii() and text.isdigit()):
                errors["phone_number"] = ["The phone number field must only contain digits."]
            elif not 6 <= len(text) <= 15:
                errors["phone_number"] = ["The phone number field must be between 6 and 15 digits."]
            else:
                digits = text
        check_type = payload.get("type")
        if check_type is None or (isinstance(check_type, str) and check_type.strip() == ""):
            errors["type"] = ["The type field is required."]
        elif not isinstance(check_type, str):
            errors["type"] = ["The type field must be a string."]
        if errors:
            return None, _validation_error(errors)
        return digits, None

    def _api_create(
        self, account: _Account, payload: Mapping[str, Any]
    ) -> tuple[Reply, bool, int | None]:
        digits, invalid = self._validate(payload)
        if invalid is not None:
            return invalid, False, None
        assert digits is not None
        check_type = str(payload["type"])
        if check_type not in SUPPORTED_TYPES:
            return Reply(400, {"message": MSG_UNSUPPORTED}), False, None
        cost = self.costs[check_type]
        with self._lock:
            balance = account.credits
            if balance < cost:
                check_id = None
            else:
                account.credits = balance - cost
                ts = int(time.time())
                check_id = self._insert_check(account, ts, digits, check_type)
        if check_id is None:
            error = (
                "You don't have enough credits to perform this action "
                f"({balance.quantize(_CENT, rounding=ROUND_HALF_EVEN):f} credits)."
            )
            body = {"status": False, "message": MSG_CREATE_ERROR, "error": error}
            return Reply(422, body), False, None
        body = {
            "status": True,
            "message": MSG_CREATED,
            "check": {
                "id": check_id,
                "type": check_type,
                "source": "API",
                "user_cost": _money(cost),
                "created_at": _iso_seconds(ts),
            },
            "results": self._results_body(check_type, digits, ts),
        }
        return Reply(201, body), True, check_id
