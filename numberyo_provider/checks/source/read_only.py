"""Connections that can only read: a source is never written, by construction of the database.

Per backend (see :mod:`numberyo_provider.checks.source` for the guarantees): SQLite opened
``mode=ro`` with ``PRAGMA query_only``; DuckDB opened ``read_only`` (or, when this process holds
the file read-write, the same instance) in a ``BEGIN TRANSACTION READ ONLY``; PostgreSQL in a
``READ ONLY`` transaction; MySQL/MariaDB with the session and the transaction read-only; any other
dialect only never committed. Nothing is ever committed on a source connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from numberyo_provider.checks.source.spec import is_file_duckdb
from numberyo_provider.errors import ConfigurationError

__all__ = ["connect", "enter_read_only", "read_only_connection", "restore_session"]

log = logging.getLogger(__name__)

#: The key, in a connection's ``info``, of the transaction this module made read-only.
_READ_ONLY_TX = "numberyo_read_only_transaction"


def _create_engine(url: URL, *, read_only: bool) -> Engine:
    connect_args: dict[str, Any] = {"read_only": True} if read_only else {}
    try:
        return sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        hint = " (pip install duckdb-engine)" if url.get_backend_name() == "duckdb" else ""
        raise ConfigurationError(
            f"no SQLAlchemy driver for {url.drivername!r}: install the database's SQLAlchemy "
            f"dialect and driver{hint} ({exc})"
        ) from exc


def _sqlite_read_only_url(url: URL) -> URL:
    """``file:<path>?mode=ro`` as a SQLite URI: the driver cannot create or write the file."""
    database = url.database or ""
    if database == ":memory:":
        return url
    if not database.startswith("file:"):
        database = "file:" + quote(str(Path(database).resolve()))
    query = {key: value for key, value in url.query.items() if key != "mode"}
    return url.set(database=database, query={**query, "mode": "ro", "uri": "true"})


def connect(url: URL) -> tuple[Engine, Connection]:
    """A connection to ``url`` in a read-only transaction (see the module notes)."""
    engine, conn = _open(url)
    try:
        enter_read_only(conn)
    except BaseException:
        conn.close()
        engine.dispose()
        raise
    return engine, conn


def _open(url: URL) -> tuple[Engine, Connection]:
    if url.get_backend_name() == "sqlite":
        engine = _create_engine(_sqlite_read_only_url(url), read_only=False)
        return engine, engine.connect()
    if not is_file_duckdb(url):
        engine = _create_engine(url, read_only=False)
        return engine, engine.connect()
    # DuckDB allows one configuration per file and process. Read-only lets parallel readers in;
    # if this process already holds the file read-write (a warehouse in the same file, opened
    # through duckdb_engine or natively), share that instance with the same configuration: the
    # read-only transaction then keeps this reader from writing.
    openers: tuple[Callable[[], Engine], ...] = (
        lambda: _create_engine(url, read_only=True),
        lambda: _create_engine(url, read_only=False),
        lambda: _native_duckdb_engine(url),
    )
    for attempt, opener in enumerate(openers):
        engine = opener()
        try:
            return engine, engine.connect()
        except sa.exc.OperationalError as exc:
            engine.dispose()
            if attempt == len(openers) - 1 or "different configuration" not in str(exc.orig):
                raise
    raise AssertionError("unreachable")


def _native_duckdb_engine(url: URL) -> Engine:
    """An engine over ``duckdb.connect(path)`` with DuckDB's default configuration."""
    import duckdb  # here: only a DuckDB source needs DuckDB and its SQLAlchemy dialect
    from duckdb_engine import ConnectionWrapper

    path = url.database or ""
    return sa.create_engine(
        "duckdb://",
        creator=lambda: ConnectionWrapper(duckdb.connect(path)),
        poolclass=sa.pool.NullPool,
    )


@contextmanager
def read_only_connection(url: URL) -> Iterator[Connection]:
    engine, conn = connect(url)
    try:
        yield conn
    finally:
        conn.close()  # rolls back: nothing is ever committed on a source
        engine.dispose()


def enter_read_only(conn: Connection) -> list[str]:
    """Make ``conn``'s transaction read-only; returns the statements that undo session changes."""
    name = conn.dialect.name
    transaction = conn.get_transaction()
    undo: list[str] = []
    if name == "sqlite":  # per connection, not per transaction: set (and undo) every time
        if not conn.exec_driver_sql("PRAGMA query_only").scalar():
            undo.append("PRAGMA query_only = OFF")
        conn.exec_driver_sql("PRAGMA query_only = ON")
        return undo
    ours = transaction is not None and conn.info.get(_READ_ONLY_TX) is transaction
    if name in ("mysql", "mariadb", "duckdb") and transaction is not None and not ours:
        raise ConfigurationError(
            f"the {name} source connection already has a transaction open, which cannot be "
            "made read-only: commit or roll it back first, or pass a fresh connection"
        )
    if name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        if conn.exec_driver_sql("SHOW transaction_read_only").scalar() != "on":
            raise ConfigurationError(
                "the source connection could not be put in a read-only transaction (is it in "
                "autocommit mode?); use a connection without autocommit"
            )
    elif name in ("mysql", "mariadb"):
        # The session setting also stops DDL, which would end the transaction and then run.
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        undo.append("SET SESSION TRANSACTION READ WRITE")
        if not ours:
            conn.exec_driver_sql("START TRANSACTION READ ONLY")
    elif name == "duckdb":
        if not ours:
            # duckdb_engine begins a read-write transaction on the first statement: swap it.
            conn.exec_driver_sql("ROLLBACK")
            conn.exec_driver_sql("BEGIN TRANSACTION READ ONLY")
    else:
        log.warning(
            "source dialect %r: no read-only mode is known for it; only the query check and "
            "never committing keep the source unchanged (read as a role with SELECT grants only)",
            name,
        )
    conn.info[_READ_ONLY_TX] = conn.get_transaction()
    return undo


def restore_session(conn: Connection, undo: list[str]) -> None:
    """Put back the caller's session settings; failing leaves them stricter, never looser."""
    for statement in undo:
        try:
            conn.exec_driver_sql(statement)
        except sa.exc.DBAPIError as exc:
            log.warning("could not restore the source connection (%s): %s", statement, exc)
