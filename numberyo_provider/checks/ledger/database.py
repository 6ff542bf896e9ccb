"""Where the ledger lives and how it is reached: its default URL, tables and connections.

A SQLite file beside a DuckDB warehouse (``<warehouse file>.ledger.sqlite``), the warehouse's own
PostgreSQL database, or any SQLite or PostgreSQL URL given (:func:`default_ledger_url`). SQLite is
opened with a WAL journal, ``synchronous=FULL`` (a commit survives a power cut) and a
``busy_timeout``, and every write takes its lock up front (``BEGIN IMMEDIATE``), so parallel shard
tasks queue instead of failing. A write rolled back by PostgreSQL to break a deadlock is run again
(:func:`retrying_conflicts`).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from numberyo_provider.errors import ConfigurationError

__all__ = [
    "CLAIMS_TABLE",
    "REJECTED_TABLE",
    "REQUESTS_TABLE",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SUPPORTED_DIALECTS",
    "UTCDateTime",
    "default_ledger_url",
    "existing_ledger",
    "ledger_tables",
    "retrying_conflicts",
    "safe_url",
    "sqlite_on_begin",
    "sqlite_on_connect",
]

#: Table names in the ledger database (schema ``numberyo`` on PostgreSQL, none on SQLite).
REQUESTS_TABLE = "_ledger_requests"
REJECTED_TABLE = "_ledger_rejected"
CLAIMS_TABLE = "_ledger_claims"
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
#: SQLite: how long a writer waits for another process's transaction before failing.
SQLITE_BUSY_TIMEOUT_MS = 60_000


#: PostgreSQL's deadlock and serialization failures: the transaction was rolled back whole.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


def retrying_conflicts(method: _F) -> _F:
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
            f"no default request ledger for warehouse {safe_url(text)}: pass ledger=... as a "
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


def safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: say so without echoing anything secret-looking
        return "(unparsable URL)"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        stamp: datetime = (
            datetime.fromisoformat(value)
            if isinstance(value, str)  # pragma: no cover - SQLite through a raw driver
            else value
        )
        if stamp.tzinfo is None:
            return stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC)


def ledger_tables(db_schema: str | None) -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
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
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        # Ledger-only columns (not copied to the warehouse): what reconciliation and a rerun need
        # to land a created check's results again, and which run last touched the row.
        sa.Column("check_created_at", UTCDateTime),
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
        sa.Column("rejected_at", UTCDateTime, nullable=False),
    )
    claims = sa.Table(
        CLAIMS_TABLE,
        md,
        sa.Column("check_type", sa.String(16), primary_key=True),
        sa.Column("phone_number", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("claimed_at", UTCDateTime, nullable=False),
        sa.Column("lease_until", UTCDateTime, nullable=False),
        sa.Index(f"ix{CLAIMS_TABLE}_owner", "owner"),
    )
    return md, requests, rejected, claims


def sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver level; "begin" below opens every transaction explicitly.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def sqlite_on_begin(conn: Connection) -> None:
    # A write takes the lock up front (IMMEDIATE), so two shard processes queue on busy_timeout
    # instead of deadlocking on a read-to-write lock upgrade; reads do not block writers.
    immediate = conn.get_execution_options().get("ledger_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
