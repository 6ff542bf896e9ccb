"""The request ledger: a durable record of every paid POST, written before it is sent.

Money safety rests on one rule: a number is marked ``pending`` (committed) *before* its POST is
submitted, and its row is updated after the answer. A ``pending`` row therefore means "maybe sent":
after a crash, a read timeout or a kill, :mod:`numberyo_provider.reconcile` resolves it against
the account's checks before the number may be sent again. Rows are never deleted.

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
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from numberyo_provider import schema
from numberyo_provider.errors import ConfigurationError

__all__ = [
    "CREATED",
    "FAILED",
    "NOT_CHECKED",
    "PENDING",
    "STATUSES",
    "Ledger",
    "LedgerRow",
    "Outcome",
    "default_ledger_url",
    "request_id",
]

PENDING = "pending"
CREATED = "created"
FAILED = "failed"
NOT_CHECKED = "not_checked"
STATUSES = (PENDING, CREATED, FAILED, NOT_CHECKED)

#: Table names in the ledger database (schema ``numberyo`` on PostgreSQL, none on SQLite).
REQUESTS_TABLE = "_ledger_requests"
REJECTED_TABLE = "_ledger_rejected"
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


def _tables(db_schema: str | None) -> tuple[sa.MetaData, sa.Table, sa.Table]:
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
    return md, requests, rejected


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
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(
                parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
            sa.event.listen(self.engine, "connect", _sqlite_on_connect)
            sa.event.listen(self.engine, "begin", _sqlite_on_begin)
            db_schema = None
        else:
            self.engine = sa.create_engine(parsed, pool_pre_ping=True)
            db_schema = schema.SCHEMA_NAME
        self._md, self.requests, self.rejected = _tables(db_schema)
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
        """Commit ``(request_id, digits)`` as pending, attempts + 1, before their POSTs go out.

        A row already ``created`` is never touched (the caller never sends those; this is the
        database's own guard).
        """
        if not numbers:
            return
        now = now or utcnow()
        t = self.requests
        stmt = self._insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.request_id],
            set_={
                "status": PENDING,
                "attempts": t.c.attempts + 1,
                "error": None,
                "updated_at": stmt.excluded.updated_at,
                "last_run_id": stmt.excluded.last_run_id,
            },
            where=t.c.status != CREATED,
        )
        with self._write() as conn:
            conn.execute(stmt, _new_rows(run_id, check_type, numbers, PENDING, 1, None, now))

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
        self, run_id: str, outcomes: Sequence[Outcome], *, now: datetime | None = None
    ) -> None:
        """Apply outcomes to existing rows, in one transaction; ``run_id`` is who changed them."""
        if not outcomes:
            return
        now = now or utcnow()
        t = self.requests
        stmt = (
            sa.update(t)
            .where(t.c.request_id == sa.bindparam("b_request_id"))
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
        with self._write() as conn:
            conn.execute(stmt, params)

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
