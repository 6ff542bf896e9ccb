"""The request ledger: a durable record of every paid POST, written before it is sent.

Money safety rests on one rule: a number is marked ``pending`` (committed) *before* its POST is
submitted, and its row is updated after the answer. A ``pending`` row therefore means "maybe sent":
after a crash, a read timeout or a kill, :mod:`numberyo_provider.checks.reconcile` resolves it
against the account's checks before the number may be sent again. Rows are never deleted.

Where the ledger lives (``docs/credits-and-idempotency.md``): a run lasts long and writes often,
while DuckDB allows one writer process per file, so holding the warehouse's write lock for a whole
run would block every reader (dashboards, dbt, the sync). The ledger is therefore its own database:

* warehouse on PostgreSQL: the same database, tables ``numberyo._ledger_requests`` and
  ``numberyo._ledger_rejected`` (server databases handle concurrent writers);
* warehouse on DuckDB: a SQLite file beside it, ``<warehouse file>.ledger.sqlite`` (WAL journal,
  ``synchronous=FULL`` so a commit survives a power cut, ``busy_timeout`` so parallel shard tasks
  queue instead of failing);
* anything else: pass ``ledger=`` a SQLite or PostgreSQL SQLAlchemy URL.

At load time the run's rows are copied into the warehouse tables ``check_requests`` and
``rejected_numbers`` (same columns, :mod:`numberyo_provider.schema`). The ledger stays the truth;
the warehouse copy is as of the last load.

Writes are batched (one transaction per batch of numbers) because throughput matters: marking 64
numbers ``pending`` costs one commit, not 64.

**Claims: at most one payer per number.** A request id is per run, so two runs (a cron overlap, an
Airflow retry beside a zombie of the first try, two shards whose queries overlap) would each have
their own row for one number. What stops them both paying is a second table, ``_ledger_claims``,
keyed by ``(check_type, phone_number)``: :meth:`Ledger.claim` inserts the claim (insert-if-absent,
the database's unique key is the compare-and-set), re-checks inside the same transaction that no
other row of the number is ``pending`` or freshly ``created``, and only then marks the number
``pending``. The claim names its owner (one per :class:`~numberyo_provider.checks.engine.Checker`)
and a lease; the owner renews the lease while it holds claims and releases a claim in the
transaction that records a definite outcome. A claim whose outcome stayed unknown is *kept* until
the owner reconciles it. Another process only takes a claim over once its lease expired (or its
owner is a dead process on this host) and then only through reconciliation
(:meth:`Ledger.acquire`), never by sending. Guarantees per backend are in
``docs/credits-and-idempotency.md``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from numberyo_provider import schema
from numberyo_provider.errors import ConfigurationError
from numberyo_provider.private_files import create_private_file, make_private_dirs

__all__ = [
    "CREATED",
    "DEFAULT_CLAIM_LEASE",
    "FAILED",
    "NOT_CHECKED",
    "PENDING",
    "STATUSES",
    "Claim",
    "ClaimResult",
    "Ledger",
    "LedgerRow",
    "Outcome",
    "default_ledger_url",
    "existing_ledger",
    "new_owner",
    "owner_is_dead",
    "request_id",
    "retire_owner",
]

PENDING = "pending"
CREATED = "created"
FAILED = "failed"
NOT_CHECKED = "not_checked"
STATUSES = (PENDING, CREATED, FAILED, NOT_CHECKED)

#: Table names in the ledger database (schema ``numberyo`` on PostgreSQL, none on SQLite).
REQUESTS_TABLE = "_ledger_requests"
REJECTED_TABLE = "_ledger_rejected"
CLAIMS_TABLE = "_ledger_claims"
#: How long a claim holds without renewal. It must outlast the longest a POST can take from the
#: claim to its recorded answer (the owner renews every quarter of it while it runs).
DEFAULT_CLAIM_LEASE = timedelta(minutes=10)
_SUPPORTED_DIALECTS = ("sqlite", "postgresql")
#: SQLite: how long a writer waits for another process's transaction before failing.
SQLITE_BUSY_TIMEOUT_MS = 60_000
#: Rows per Arrow batch exported to the warehouse (about 5 MB of Python values a batch).
EXPORT_BATCH_ROWS = 20_000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def request_id(run_id: str, check_type: str, digits: str) -> str:
    """Stable id of one number's request in one run: a rerun of the run finds the same row."""
    key = f"{run_id}\x1f{check_type}\x1f{digits}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def _process_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (``/proc``): a reused pid is not the owner."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return "-"
    return stat.rsplit(")", 1)[-1].split()[19]


#: Owners of this process that still run: a finished checker of this process is known dead.
_LIVE_OWNERS: set[str] = set()
_LIVE_LOCK = threading.Lock()


def new_owner() -> str:
    """A claim owner id, ``host:pid:process start:random``, alive until :func:`retire_owner`."""
    host = socket.gethostname().replace(":", "_")[:80]
    pid = os.getpid()
    owner = f"{host}:{pid}:{_process_start(pid)}:{uuid.uuid4().hex[:12]}"
    with _LIVE_LOCK:
        _LIVE_OWNERS.add(owner)
    return owner


def retire_owner(owner: str) -> None:
    """The checker that owned ``owner`` has ended: its leftover claims are free to take over."""
    with _LIVE_LOCK:
        _LIVE_OWNERS.discard(owner)


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` provably died: a process of this host that no longer runs (or
    whose pid now belongs to another process). An owner on another host is never presumed dead:
    only its lease can tell."""
    parts = owner.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname().replace(":", "_")[:80]:
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        if parts[2] != _process_start(pid):  # pragma: no cover - a pid reused by this process
            return True
        with _LIVE_LOCK:
            return owner not in _LIVE_OWNERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return parts[2] != "-" and _process_start(pid) != parts[2]


#: PostgreSQL's deadlock and serialization failures: the transaction was rolled back whole.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


def _retrying_conflicts(method: _F) -> _F:
    """Decorate a ledger write that is one transaction: run it again on a deadlock rollback."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _retry_conflicts(lambda: method(*args, **kwargs))

    return cast(_F, wrapper)


def _retry_conflicts(attempt: Callable[[], _T], tries: int = 5) -> _T:
    """Run a write transaction again when the database rolled it back to break a deadlock."""
    for left in range(tries - 1, -1, -1):
        try:
            return attempt()
        except sa.exc.OperationalError as exc:
            code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
            if code not in _RETRYABLE_SQLSTATES or not left:
                raise
            time.sleep(random.uniform(0.01, 0.05))
    raise AssertionError("unreachable")  # pragma: no cover


def default_ledger_url(warehouse_url: str) -> str:
    """The ledger for a warehouse: the database itself (PostgreSQL), a SQLite file beside DuckDB."""
    text = warehouse_url.strip()
    lowered = text.lower()
    if lowered.startswith(("postgresql", "postgres://")):
        return text
    if lowered.startswith("duckdb://"):
        path = text.split("://", 1)[1]
        path = path[1:] if path.startswith("/") else path  # duckdb:///rel or duckdb:////abs
        path = path.split("?", 1)[0]
    elif "://" not in text:
        path = text
    else:
        raise ConfigurationError(
            f"no default request ledger for warehouse {_safe_url(text)}: pass ledger=... as a "
            "SQLite (sqlite:////path/ledger.sqlite) or PostgreSQL SQLAlchemy URL"
        )
    if not path or path == ":memory:" or path.startswith(":memory:"):
        raise ConfigurationError(
            "an in-memory DuckDB warehouse has no place for the request ledger: pass ledger=... "
            "(e.g. sqlite:////tmp/numberyo.ledger.sqlite) or use a DuckDB file"
        )
    return f"sqlite:///{Path(path).expanduser().resolve()}.ledger.sqlite"


def existing_ledger(url: str) -> bool:
    """False for a SQLite ledger file that does not exist yet (opening it would create it);
    True otherwise (a server database is asked, not guessed)."""
    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        return False
    if parsed.get_backend_name() != "sqlite":
        return True
    database = parsed.database or ""
    return bool(database) and Path(database).expanduser().exists()


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: say so without echoing anything secret-looking
        return "(unparsable URL)"


class _UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - SQLite through a raw driver
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _tables(db_schema: str | None) -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    md = sa.MetaData(schema=db_schema)
    requests = sa.Table(
        REQUESTS_TABLE,
        md,
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("phone_number", sa.String(32), nullable=False),
        sa.Column("check_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("check_id", sa.BigInteger),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("requested_at", _UTCDateTime, nullable=False),
        sa.Column("updated_at", _UTCDateTime, nullable=False),
        # Ledger-only columns (not copied to the warehouse): what reconciliation and a rerun need
        # to land a created check's results again, and which run last touched the row.
        sa.Column("check_created_at", _UTCDateTime),
        sa.Column("user_cost", sa.String(40)),
        sa.Column("last_run_id", sa.String(250), nullable=False),
        sa.Index(f"ix{REQUESTS_TABLE}_type_status", "check_type", "status"),
        sa.Index(f"ix{REQUESTS_TABLE}_number", "phone_number", "check_type"),
        sa.Index(f"ix{REQUESTS_TABLE}_run", "run_id"),
        sa.Index(f"ix{REQUESTS_TABLE}_last_run", "last_run_id"),
        sa.Index(f"ix{REQUESTS_TABLE}_check", "check_id"),
    )
    rejected = sa.Table(
        REJECTED_TABLE,
        md,
        sa.Column("run_id", sa.String(250), primary_key=True),
        sa.Column("raw_value", sa.Text, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("rejected_at", _UTCDateTime, nullable=False),
    )
    claims = sa.Table(
        CLAIMS_TABLE,
        md,
        sa.Column("check_type", sa.String(16), primary_key=True),
        sa.Column("phone_number", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("claimed_at", _UTCDateTime, nullable=False),
        sa.Column("lease_until", _UTCDateTime, nullable=False),
        sa.Index(f"ix{CLAIMS_TABLE}_owner", "owner"),
    )
    return md, requests, rejected, claims


@dataclass(frozen=True)
class LedgerRow:
    request_id: str
    run_id: str
    phone_number: str
    check_type: str
    status: str
    check_id: int | None
    attempts: int
    error: str | None
    requested_at: datetime
    updated_at: datetime
    check_created_at: datetime | None
    user_cost: Decimal | None
    last_run_id: str


@dataclass(frozen=True)
class Claim:
    """Who holds a number: a row of ``_ledger_claims``."""

    check_type: str
    phone_number: str
    owner: str
    run_id: str
    request_id: str
    claimed_at: datetime
    lease_until: datetime

    def expired(self, now: datetime) -> bool:
        return self.lease_until <= now

    def abandoned(self, now: datetime) -> bool:
        """Its owner can no longer answer for it: the lease ran out or the owner died."""
        return self.expired(now) or owner_is_dead(self.owner)


@dataclass
class ClaimResult:
    """What :meth:`Ledger.claim` did with each ``(request_id, digits)`` it was given."""

    #: Claimed and committed ``pending``: send these, and only these.
    granted: list[tuple[str, str]] = field(default_factory=list)
    #: Another owner holds the number (its POST is in flight or its outcome is unknown).
    held: list[tuple[str, str, Claim]] = field(default_factory=list)
    #: A ``pending`` row of the number without a live claim: reconcile it before anyone sends.
    unresolved: list[tuple[str, str]] = field(default_factory=list)
    #: Created meanwhile (by another run, or fresher than the caller's horizon): not sent.
    created: list[tuple[str, str]] = field(default_factory=list)
    #: Those of ``created`` that this very run created (another attempt of it, e.g. a retry).
    created_by_run: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Outcome:
    """What became of one request; applied in batches by :meth:`Ledger.record`."""

    request_id: str
    status: str
    check_id: int | None = None
    error: str | None = None
    #: Added to ``attempts``: -1 when a number marked pending was, after all, never sent.
    attempts_delta: int = 0
    check_created_at: datetime | None = None
    user_cost: Decimal | None = None


class Ledger:
    """The request ledger in a SQLite or PostgreSQL database (see the module docstring).

    Thread-safe: writes are serialised by a lock (one writer per process is all a batch needs).
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        try:
            parsed = sa.engine.make_url(url)
        except Exception:
            raise ConfigurationError(
                "ledger must be a SQLAlchemy URL such as sqlite:////path/ledger.sqlite or "
                "postgresql+psycopg://user@host/db"
            ) from None
        dialect = parsed.get_backend_name()
        if dialect not in _SUPPORTED_DIALECTS:
            raise ConfigurationError(
                f"the request ledger supports SQLite and PostgreSQL, not {dialect!r} "
                f"({_safe_url(url)}): pass ledger=sqlite:////path/ledger.sqlite"
            )
        self.dialect = dialect
        self.url = parsed
        if dialect == "sqlite":
            database = parsed.database or ""
            if not database or database == ":memory:":
                raise ConfigurationError(
                    "the request ledger must outlive the process: use a SQLite file, not :memory:"
                )
            make_private_dirs(Path(database).expanduser().parent)
            # Numbers in clear: born 0600; SQLite gives -wal/-shm the mode of the main file.
            create_private_file(Path(database).expanduser())
            self.engine: Engine = sa.create_engine(
                parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
            sa.event.listen(self.engine, "connect", _sqlite_on_connect)
            sa.event.listen(self.engine, "begin", _sqlite_on_begin)
            db_schema = None
        else:
            self.engine = sa.create_engine(parsed, pool_pre_ping=True)
            db_schema = schema.SCHEMA_NAME
        self._md, self.requests, self.rejected, self.claims = _tables(db_schema)
        self._db_schema = db_schema
        self._lock = threading.Lock()
        if create:
            self.ensure()

    def __repr__(self) -> str:
        return f"Ledger({self.url.render_as_string(hide_password=True)!r})"

    def ensure(self) -> None:
        """Create the ledger tables if missing (safe when several shard tasks start at once)."""
        with self._write() as conn:
            if self.dialect == "postgresql":
                # Concurrent CREATE ... IF NOT EXISTS can still collide in PostgreSQL's catalog.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7201904511)"))
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self._db_schema}"'))
            self._md.create_all(conn, checkfirst=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes ---------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE), serialised within the process."""
        with self._lock, self.engine.connect() as conn:
            conn = conn.execution_options(ledger_write=True)
            with conn.begin():
                yield conn

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def mark_pending(
        self,
        run_id: str,
        check_type: str,
        numbers: Sequence[tuple[str, str]],
        *,
        now: datetime | None = None,
    ) -> None:
        """Commit ``(request_id, digits)`` as pending, attempts + 1, without a claim.

        For tests and tools that build a ledger by hand; the checker sends only what
        :meth:`claim` granted. A row already ``created`` or ``pending`` is never touched.
        """
        if not numbers:
            return
        now = now or utcnow()
        with self._write() as conn:
            conn.execute(
                self._pending_upsert(),
                _new_rows(run_id, check_type, numbers, PENDING, 1, None, now),
            )

    @_retrying_conflicts
    def claim(
        self,
        run_id: str,
        check_type: str,
        numbers: Sequence[tuple[str, str]],
        *,
        owner: str,
        lease: timedelta = DEFAULT_CLAIM_LEASE,
        created_since: datetime | None = None,
        now: datetime | None = None,
    ) -> ClaimResult:
        """Claim ``(request_id, digits)`` pairs for ``owner`` and mark the granted ones pending,
        in ONE transaction: the only way a number may become ``pending`` before its POST.

        A number is granted only when no other owner holds it, no row of it (any run) is
        ``pending``, and none is ``created`` by this run or at or after ``created_since`` (None:
        any time). Claims of numbers not granted are not kept.
        """
        result = ClaimResult()
        if not numbers:
            return result
        now = now or utcnow()
        c, t = self.claims, self.requests
        # Sorted: concurrent claimers then lock the keys in one order, which PostgreSQL needs to
        # never deadlock two multi-row inserts.
        by_digits = dict(sorted((d, rid) for rid, d in numbers))
        digits = list(by_digits)
        created_at = sa.func.coalesce(t.c.check_created_at, t.c.updated_at)
        with self._write() as conn:
            conn.execute(
                self._insert(c).on_conflict_do_nothing(),
                [
                    {
                        "check_type": check_type,
                        "phone_number": d,
                        "owner": owner,
                        "run_id": run_id,
                        "request_id": rid,
                        "claimed_at": now,
                        "lease_until": now + lease,
                    }
                    for d, rid in by_digits.items()
                ],
            )
            holders = self._claims_where(conn, check_type, digits)
            blocking = conn.execute(
                sa.select(t.c.phone_number, t.c.status, t.c.run_id).where(
                    t.c.check_type == check_type,
                    t.c.phone_number.in_(digits),
                    sa.or_(
                        t.c.status == PENDING,
                        sa.and_(
                            t.c.status == CREATED,
                            sa.or_(
                                t.c.run_id == run_id,
                                sa.true() if created_since is None else created_at >= created_since,
                            ),
                        ),
                    ),
                )
            ).all()
            pending = {str(r[0]) for r in blocking if r[1] == PENDING}
            created = {str(r[0]) for r in blocking if r[1] == CREATED}
            result.created_by_run = {
                str(r[0]) for r in blocking if r[1] == CREATED and r[2] == run_id
            }
            dropped: list[str] = []
            for d, rid in by_digits.items():
                holder = holders.get(d)
                if holder is None or holder.owner != owner:
                    if holder is not None:
                        result.held.append((rid, d, holder))
                    else:  # pragma: no cover - the insert above or another owner holds it
                        result.unresolved.append((rid, d))
                elif d in pending:
                    result.unresolved.append((rid, d))
                    dropped.append(d)
                elif d in created:
                    result.created.append((rid, d))
                    dropped.append(d)
                else:
                    result.granted.append((rid, d))
            if dropped:
                conn.execute(
                    sa.delete(c).where(
                        c.c.owner == owner,
                        c.c.check_type == check_type,
                        c.c.phone_number.in_(dropped),
                    )
                )
            if result.granted:
                conn.execute(
                    self._pending_upsert(),
                    _new_rows(run_id, check_type, result.granted, PENDING, 1, None, now),
                )
        return result

    @_retrying_conflicts
    def acquire(
        self,
        check_type: str,
        rows: Sequence[LedgerRow],
        *,
        owner: str,
        lease: timedelta = DEFAULT_CLAIM_LEASE,
        now: datetime | None = None,
    ) -> list[LedgerRow]:
        """Take the claims of ``pending`` rows so that ``owner`` may reconcile them: a number
        nobody holds is claimed; one whose claim was abandoned (lease expired, owner dead) is
        taken over by compare-and-set; a live claim of another owner is left alone. Returns the
        rows now held by ``owner`` (re-read, still ``pending``): only those may be reconciled."""
        if not rows:
            return []
        now = now or utcnow()
        c = self.claims
        digits = sorted({r.phone_number for r in rows})
        with self._write() as conn:
            conn.execute(
                self._insert(c).on_conflict_do_nothing(),
                [
                    {
                        "check_type": check_type,
                        "phone_number": r.phone_number,
                        "owner": owner,
                        "run_id": r.run_id,
                        "request_id": r.request_id,
                        "claimed_at": now,
                        "lease_until": now + lease,
                    }
                    for r in sorted({r.phone_number: r for r in rows}.values(), key=_by_number)
                ],
            )
            for claim in self._claims_where(conn, check_type, digits).values():
                if claim.owner != owner and claim.abandoned(now):
                    conn.execute(
                        sa.update(c)
                        .where(
                            c.c.check_type == check_type,
                            c.c.phone_number == claim.phone_number,
                            c.c.owner == claim.owner,
                            c.c.lease_until == claim.lease_until,
                        )
                        .values(owner=owner, claimed_at=now, lease_until=now + lease)
                    )
            mine = {
                d
                for d, claim in self._claims_where(conn, check_type, digits).items()
                if claim.owner == owner
            }
            # Re-read the rows under the claims: one may have been settled since the caller read
            # it (its owner recorded the answer, then released the claim this call just took).
            t = self.requests
            wanted = [r.request_id for r in rows if r.phone_number in mine]
            fresh = (
                self._rows(
                    conn,
                    sa.select(t).where(t.c.request_id.in_(wanted), t.c.status == PENDING),
                )
                if wanted
                else []
            )
            settled = mine - {r.phone_number for r in fresh}
            if settled:
                conn.execute(
                    sa.delete(c).where(
                        c.c.owner == owner,
                        c.c.check_type == check_type,
                        c.c.phone_number.in_(sorted(settled)),
                    )
                )
        return fresh

    def renew(self, owner: str, lease: timedelta = DEFAULT_CLAIM_LEASE) -> int:
        """Extend every claim of ``owner`` (its heartbeat); returns how many it holds."""
        now = utcnow()
        c = self.claims
        with self._write() as conn:
            done = conn.execute(
                sa.update(c).where(c.c.owner == owner).values(lease_until=now + lease)
            )
        return int(done.rowcount or 0)

    def release(self, owner: str, request_ids: Iterable[str] | None = None) -> None:
        """Drop claims of ``owner`` (all, or those of ``request_ids``) whose outcome is known."""
        c = self.claims
        stmt = sa.delete(c).where(c.c.owner == owner)
        if request_ids is not None:
            ids = list(request_ids)
            if not ids:
                return
            stmt = stmt.where(c.c.request_id.in_(ids))
        with self._write() as conn:
            conn.execute(stmt)

    def release_settled(self, owner: str) -> None:
        """Drop the claims of ``owner`` whose request is no longer ``pending`` (a safety net at
        the end of a run: an unknown outcome keeps its claim until it is reconciled)."""
        c, t = self.claims, self.requests
        still_pending = sa.select(t.c.request_id).where(
            t.c.request_id == c.c.request_id, t.c.status == PENDING
        )
        with self._write() as conn:
            conn.execute(sa.delete(c).where(c.c.owner == owner, ~sa.exists(still_pending)))

    def claims_of(self, check_type: str | None = None, *, owner: str | None = None) -> list[Claim]:
        """Claims now in the ledger (for status reports and tests)."""
        c = self.claims
        stmt = sa.select(c).order_by(c.c.claimed_at, c.c.phone_number)
        if check_type is not None:
            stmt = stmt.where(c.c.check_type == check_type)
        if owner is not None:
            stmt = stmt.where(c.c.owner == owner)
        with self.engine.connect() as conn:
            return [_to_claim(m) for m in conn.execute(stmt).mappings()]

    def _claims_where(
        self, conn: Connection, check_type: str, digits: Sequence[str]
    ) -> dict[str, Claim]:
        c = self.claims
        stmt = sa.select(c).where(c.c.check_type == check_type, c.c.phone_number.in_(digits))
        return {str(m["phone_number"]): _to_claim(m) for m in conn.execute(stmt).mappings()}

    def _pending_upsert(self) -> Any:
        t = self.requests
        stmt = self._insert(t)
        return stmt.on_conflict_do_update(
            index_elements=[t.c.request_id],
            set_={
                "status": PENDING,
                "attempts": t.c.attempts + 1,
                "error": None,
                "updated_at": stmt.excluded.updated_at,
                "last_run_id": stmt.excluded.last_run_id,
            },
            where=sa.and_(t.c.status != CREATED, t.c.status != PENDING),
        )

    def mark_not_checked(
        self,
        run_id: str,
        check_type: str,
        numbers: Sequence[tuple[str, str]],
        reason: str,
        *,
        now: datetime | None = None,
    ) -> None:
        """Record numbers that this run will not send (budget, credits, stop), never sent."""
        if not numbers:
            return
        now = now or utcnow()
        t = self.requests
        stmt = self._insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.request_id],
            set_={
                "status": NOT_CHECKED,
                "error": stmt.excluded.error,
                "updated_at": stmt.excluded.updated_at,
                "last_run_id": stmt.excluded.last_run_id,
            },
            # Never downgrade a created row, nor a pending one (it may have been sent).
            where=sa.and_(t.c.status != CREATED, t.c.status != PENDING),
        )
        with self._write() as conn:
            conn.execute(stmt, _new_rows(run_id, check_type, numbers, NOT_CHECKED, 0, reason, now))

    def record(
        self,
        run_id: str,
        outcomes: Sequence[Outcome],
        *,
        owner: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Apply outcomes to existing rows, in one transaction; ``run_id`` is who changed them.

        With ``owner``, the same transaction releases its claims of the rows whose outcome is now
        definite (anything but ``pending``), so the number is never unclaimed and unrecorded.
        """
        if not outcomes:
            return
        now = now or utcnow()
        t = self.requests
        stmt = (
            sa.update(t)
            .where(
                t.c.request_id == sa.bindparam("b_request_id"),
                # ``created`` is final: nothing may turn a paid check back into "send it again".
                sa.or_(t.c.status != CREATED, sa.bindparam("b_final") == CREATED),
            )
            .values(
                status=sa.bindparam("b_status"),
                check_id=sa.func.coalesce(
                    sa.bindparam("b_check_id", type_=sa.BigInteger), t.c.check_id
                ),
                error=sa.bindparam("b_error"),
                attempts=t.c.attempts + sa.bindparam("b_delta", type_=sa.Integer),
                updated_at=sa.bindparam("b_now", type_=_UTCDateTime),
                check_created_at=sa.func.coalesce(
                    sa.bindparam("b_created_at", type_=_UTCDateTime), t.c.check_created_at
                ),
                user_cost=sa.func.coalesce(sa.bindparam("b_cost", type_=sa.String), t.c.user_cost),
                last_run_id=sa.bindparam("b_run"),
            )
        )
        params = [
            {
                "b_request_id": o.request_id,
                "b_status": o.status,
                "b_final": o.status,
                "b_check_id": o.check_id,
                "b_error": o.error,
                "b_delta": o.attempts_delta,
                "b_now": now,
                "b_created_at": o.check_created_at,
                "b_cost": None if o.user_cost is None else str(o.user_cost),
                "b_run": run_id,
            }
            for o in outcomes
        ]
        settled = [o.request_id for o in outcomes if o.status != PENDING]
        c = self.claims
        with self._write() as conn:
            conn.execute(stmt, params)
            if owner is not None and settled:
                conn.execute(sa.delete(c).where(c.c.owner == owner, c.c.request_id.in_(settled)))

    def reject(
        self, run_id: str, rejected: Iterable[tuple[str, str]], *, now: datetime | None = None
    ) -> None:
        """Record ``(raw_value, reason)`` pairs of this run (idempotent by primary key)."""
        now = now or utcnow()
        rows = [
            {"run_id": run_id, "raw_value": raw, "reason": reason, "rejected_at": now}
            for raw, reason in rejected
        ]
        if not rows:
            return
        stmt = self._insert(self.rejected).on_conflict_do_nothing()
        with self._write() as conn:
            conn.execute(stmt, rows)

    # --- reads ----------------------------------------------------------------------------------

    def _rows(self, conn: Connection, stmt: sa.Select[Any]) -> list[LedgerRow]:
        return [_to_row(r) for r in conn.execute(stmt).mappings()]

    def rows(
        self,
        *,
        run_id: str | None = None,
        check_type: str | None = None,
        status: str | Sequence[str] | None = None,
    ) -> list[LedgerRow]:
        """Rows matching every given filter (for resumes, reconciliation and tests)."""
        t = self.requests
        stmt = sa.select(t).order_by(t.c.requested_at, t.c.request_id)
        if run_id is not None:
            stmt = stmt.where(t.c.run_id == run_id)
        if check_type is not None:
            stmt = stmt.where(t.c.check_type == check_type)
        if isinstance(status, str):
            stmt = stmt.where(t.c.status == status)
        elif status is not None:
            stmt = stmt.where(t.c.status.in_(list(status)))
        with self.engine.connect() as conn:
            return self._rows(conn, stmt)

    def touched_by(self, run_id: str, *, status: str | None = None) -> list[LedgerRow]:
        """Rows of ``run_id`` and rows it changed (e.g. an earlier run's, reconciled by it)."""
        t = self.requests
        stmt = (
            sa.select(t)
            .where(sa.or_(t.c.run_id == run_id, t.c.last_run_id == run_id))
            .order_by(t.c.requested_at, t.c.request_id)
        )
        if status is not None:
            stmt = stmt.where(t.c.status == status)
        with self.engine.connect() as conn:
            return self._rows(conn, stmt)

    def iter_created_numbers(self, check_type: str, since: datetime) -> Iterator[str]:
        """Numbers of any run created (as a check of ``check_type``) at or after ``since``."""
        t = self.requests
        created = sa.func.coalesce(t.c.check_created_at, t.c.updated_at)
        stmt = (
            sa.select(t.c.phone_number)
            .where(t.c.check_type == check_type, t.c.status == CREATED, created >= since)
            .execution_options(yield_per=10_000)
        )
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                yield str(row[0])

    def known_check_ids(self, since: datetime) -> set[int]:
        """Check ids the ledger already attributes to a number (created at or after ``since``)."""
        t = self.requests
        created = sa.func.coalesce(t.c.check_created_at, t.c.updated_at)
        stmt = sa.select(t.c.check_id).where(t.c.check_id.is_not(None), created >= since)
        with self.engine.connect() as conn:
            return {int(row[0]) for row in conn.execute(stmt)}

    def latest_cost(self, check_type: str) -> Decimal | None:
        """The ``user_cost`` of the newest created check of this type (to budget before the first
        check of a run)."""
        t = self.requests
        stmt = (
            sa.select(t.c.user_cost)
            .where(t.c.check_type == check_type, t.c.user_cost.is_not(None))
            .order_by(sa.func.coalesce(t.c.check_created_at, t.c.updated_at).desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            value = conn.execute(stmt).scalar()
        return None if value is None else Decimal(value)

    def counts(self, run_id: str) -> dict[str, int]:
        """Rows of one run per status."""
        t = self.requests
        stmt = (
            sa.select(t.c.status, sa.func.count()).where(t.c.run_id == run_id).group_by(t.c.status)
        )
        with self.engine.connect() as conn:
            return {str(row[0]): int(row[1]) for row in conn.execute(stmt)}

    # --- export to the warehouse ----------------------------------------------------------------

    def iter_request_batches(
        self, run_id: str, *, batch_size: int = EXPORT_BATCH_ROWS
    ) -> Iterator[pa.Table]:
        """The rows a run wrote or changed, as Arrow tables of ``schema.CHECK_REQUESTS``.

        Streamed in batches of ``batch_size`` rows (a run over a million-row source leaves a
        million ``not_checked`` rows): memory stays flat whatever the run's size.
        """
        t = self.requests
        target = schema.CHECK_REQUESTS.schema
        stmt = sa.select(*[self._exported(t.c[f.name]) for f in target]).where(
            sa.or_(t.c.run_id == run_id, t.c.last_run_id == run_id)
        )
        yield from self._batches(stmt, target, batch_size)

    def iter_rejected_batches(
        self, run_id: str, *, batch_size: int = EXPORT_BATCH_ROWS
    ) -> Iterator[pa.Table]:
        """The values a run rejected, as Arrow tables of ``schema.REJECTED_NUMBERS``."""
        t = self.rejected
        target = schema.REJECTED_NUMBERS.schema
        stmt = sa.select(*[self._exported(t.c[f.name]) for f in target]).where(t.c.run_id == run_id)
        yield from self._batches(stmt, target, batch_size)

    def _exported(self, column: sa.Column[Any]) -> Any:
        """SQLite timestamps as their stored text: Arrow parses a batch of them in C, where
        SQLAlchemy's per-value parsing took most of an export's time."""
        if self.dialect == "sqlite" and isinstance(column.type, _UTCDateTime):
            return sa.type_coerce(column, sa.String).label(column.name)
        return column

    def _batches(self, stmt: sa.Select[Any], target: pa.Schema, size: int) -> Iterator[pa.Table]:
        with self.engine.connect() as conn:
            # Server-side cursor on PostgreSQL; SQLite's cursor is lazy already.
            result = conn.execution_options(stream_results=self.dialect != "sqlite").execute(stmt)
            while chunk := result.fetchmany(size):
                columns = list(zip(*chunk, strict=True))
                yield pa.Table.from_arrays(
                    [_arrow_column(col, f.type) for col, f in zip(columns, target, strict=True)],
                    schema=target,
                )
                del chunk, columns


def _arrow_column(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    """A column of exported values; timestamps may come as SQLite's naive UTC text."""
    if pa.types.is_timestamp(typ) and any(isinstance(v, str) for v in values):
        naive = pa.array(values, pa.string()).cast(pa.timestamp(typ.unit))
        return naive.cast(typ)  # naive UTC -> the same instants, UTC-aware
    return pa.array(values, type=typ)


def _to_row(m: Any) -> LedgerRow:
    cost = m["user_cost"]
    return LedgerRow(
        request_id=m["request_id"],
        run_id=m["run_id"],
        phone_number=m["phone_number"],
        check_type=m["check_type"],
        status=m["status"],
        check_id=None if m["check_id"] is None else int(m["check_id"]),
        attempts=int(m["attempts"]),
        error=m["error"],
        requested_at=m["requested_at"],
        updated_at=m["updated_at"],
        check_created_at=m["check_created_at"],
        user_cost=None if cost is None else Decimal(cost),
        last_run_id=m["last_run_id"],
    )


def _by_number(row: LedgerRow) -> str:
    return row.phone_number


def _to_claim(m: Any) -> Claim:
    return Claim(
        check_type=m["check_type"],
        phone_number=m["phone_number"],
        owner=m["owner"],
        run_id=m["run_id"],
        request_id=m["request_id"],
        claimed_at=m["claimed_at"],
        lease_until=m["lease_until"],
    )


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver level; "begin" below opens every transaction explicitly.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A write takes the lock up front (IMMEDIATE), so two shard processes queue on busy_timeout
    # instead of deadlocking on a read-to-write lock upgrade; reads do not block writers.
    immediate = conn.get_execution_options().get("ledger_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _new_rows(
    run_id: str,
    check_type: str,
    numbers: Sequence[tuple[str, str]],
    status: str,
    attempts: int,
    error: str | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Ledger rows as first inserted for ``(request_id, digits)`` pairs (no check yet)."""
    return [
        {
            "request_id": rid,
            "run_id": run_id,
            "phone_number": digits,
            "check_type": check_type,
            "status": status,
            "check_id": None,
            "attempts": attempts,
            "error": error,
            "requested_at": now,
            "updated_at": now,
            "check_created_at": None,
            "user_cost": None,
            "last_run_id": run_id,
        }
        for rid, digits in numbers
    ]
