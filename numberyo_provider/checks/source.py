"""Streaming, read-only reads of phone numbers from any SQL database (SQLAlchemy), in chunks.

A contacts table can hold millions of rows; it is never read into memory. Rows are fetched with a
server-side cursor where the dialect has one (PostgreSQL: a named cursor; MySQL: an unbuffered
cursor), and in ``fetchmany`` chunks everywhere else (SQLite and DuckDB cursors are lazy already).

Two ways to say what to read, exactly one of them:

* ``table`` + ``column`` (+ ``schema``): identifiers, never SQL. They are checked against the
  database (the table or view must exist, the column must be one of its columns) and then quoted
  by the dialect's identifier preparer, so a name such as ``x; DROP TABLE contacts; --`` is either
  not found or read as the literal name it is, never executed. A name differing only in case from
  a real one is resolved to it; a miss lists the closest names. ``schema.table`` may be written as
  one dotted ``table`` when no table has the literal dotted name.
* ``sql``: the user's own query, sent as is (no bind-parameter parsing, so ``:`` and ``%`` in
  literals are safe; trailing semicolons and comments are dropped because a server-side cursor
  wraps the query). It must be one read-only query (:mod:`numberyo_provider.checks.read_only_sql`
  refuses anything else before any connection is made). It must return one column, or ``column``
  must name which of its columns to read: silently taking the first of several could spend money
  on the wrong values.

**A source is only ever read.** Besides the query check, every connection is made read-only by the
database itself, which is the real guarantee:

* SQLite: the file is opened with ``mode=ro`` (it must exist) and ``PRAGMA query_only``;
* DuckDB: the file is opened ``read_only`` and read in a ``BEGIN TRANSACTION READ ONLY`` (which
  also covers a file this process already holds read-write, such as the warehouse's own file);
* PostgreSQL: ``SET TRANSACTION READ ONLY`` (checked with ``SHOW transaction_read_only``), and the
  rows still stream through a named cursor;
* MySQL/MariaDB: ``SET SESSION TRANSACTION READ ONLY`` then ``START TRANSACTION READ ONLY`` (the
  session setting also stops DDL, which would otherwise end the transaction and run);
* any other dialect: the query check only, and the connection is never committed.

A read-only transaction does not stop what happens outside the database's tables (PostgreSQL's
``dblink`` or ``lo_export``, a function with outside effects): for that, read as a role that holds
only ``SELECT`` grants. Nothing is ever committed on a source connection.

Checking before doing: :func:`open_source` (or :meth:`Source.validate`) parses the URL, checks the
query, connects read-only, resolves the names (or asks the database for the query's columns, with
``WHERE 1 = 0`` so nothing is computed) and disconnects, so a usage error is raised before the
caller creates a warehouse, a ledger or a request. Iterating the :class:`Source` then opens its
own read-only connection and streams; nothing holds the file in between (a DuckDB source may be
the warehouse's own file, which the run opens for writing).

Values are yielded as the database returns them (text, integers, decimals, ``None``): turning
them into E.164 numbers is :mod:`numberyo_provider.checks.numbers`' job, and a ``None`` is kept so
that rejected values can be counted against the source's row count.

DuckDB files are read through the ``duckdb_engine`` dialect (``duckdb:///path/file.duckdb``),
opened read-only so that several shard tasks can read one file at the same time. When this process
already holds the file open read-write (DuckDB allows one configuration per file and process, e.g.
the warehouse and the contacts live in one file), a connection to that same instance is used, in a
read-only transaction.

Memory (``bench/bench_source.py``): streaming grows RSS by the same amount for 0.1 and 1 million
rows (SQLite ~6 MB, PostgreSQL ~17 MB); reading all rows at once grows it by 120-250 MB per million.
DuckDB also keeps the table blocks it scanned in its buffer cache (65-85 MB here), bounded by its
``memory_limit``, which the URL can lower: ``duckdb:///contacts.duckdb?memory_limit=256MB``.

A malformed URL, a query that the database refuses as written (syntax, unknown table: the driver's
``ProgrammingError``, SQLite's equivalent ``OperationalError``) or a write refused by the read-only
connection becomes a :class:`ConfigurationError`, since retrying cannot help; connection failures
stay SQLAlchemy errors, which are worth a retry.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from numberyo_provider.checks.read_only_sql import read_only_statement
from numberyo_provider.errors import ConfigurationError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_IDENTIFIER_LENGTH",
    "Source",
    "SourceSpec",
    "iter_source_values",
    "iter_values_from_connection",
    "open_source",
]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 10_000
#: Longer than any database allows (PostgreSQL 63, SQL Server 128): rejected before any query.
MAX_IDENTIFIER_LENGTH = 128

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: ``md:``, ``file:``, ``:memory:``: not plain file paths, not checked for existence.
_NOT_A_PATH = re.compile(r"^(?::memory:|[A-Za-z][A-Za-z0-9+.-]+:)")
_EXAMPLES = (
    "'duckdb:///contacts.duckdb', 'sqlite:///contacts.db' or "
    "'postgresql+psycopg://user@host:5432/db'"
)
_KNOWN_BACKENDS = ("duckdb", "mariadb", "mssql", "mysql", "oracle", "postgresql", "sqlite")
#: pip package of each DBAPI driver SQLAlchemy names in a URL.
_DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "pymysql": "pymysql",
    "mysqldb": "mysqlclient",
    "mysqlconnector": "mysql-connector-python",
    "mariadbconnector": "mariadb",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
    "oracledb": "oracledb",
    "cx_oracle": "cx_Oracle",
    "duckdb": "duckdb-engine",
}
#: The key, in a connection's ``info``, of the transaction this module made read-only.
_READ_ONLY_TX = "numberyo_read_only_transaction"
_PROBE = "SELECT * FROM (\n{}\n) AS numberyo_probe WHERE 1 = 0"


@dataclass(frozen=True, repr=False)
class SourceSpec:
    """Where the numbers are: a SQLAlchemy URL and either ``table`` + ``column`` or ``sql``.

    The selection (and a ``sql`` being one read-only query) is checked here, before anything
    connects; the URL and the names are checked by :func:`open_source`.
    """

    url: str
    table: str | None = None
    column: str | None = None
    sql: str | None = None
    schema: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.strip():
            raise ConfigurationError(
                f"source url is empty: pass a SQLAlchemy URL such as {_EXAMPLES}"
            )
        _check_selection(self.table, self.column, self.sql, self.schema, _backend_of(self.url))

    def __repr__(self) -> str:
        what = f"sql={self.sql!r}" if self.sql is not None else f"table={self.table!r}"
        return (
            f"SourceSpec(url={_safe_url(self.url)!r}, {what}, column={self.column!r}, "
            f"schema={self.schema!r})"
        )


class Source:
    """A source to stream, checked up front: iterate it for chunks of raw values.

    :meth:`validate` connects read-only, resolves the names (or the query's columns) and
    disconnects; each iteration opens its own read-only connection, streams and closes it (also
    when :meth:`close` is called or the ``with`` block ends).
    """

    def __init__(self, spec: SourceSpec, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        _check_chunk_size(chunk_size)
        self.spec = spec
        self.chunk_size = chunk_size
        self._url = _parse_url(spec.url)
        self._validated = False
        self._streams: list[Generator[list[object], None, None]] = []

    def validate(self) -> Source:
        """Raise the usage error (names, query) now; a no-op once it passed."""
        if self._validated:
            return self
        spec = self.spec
        with _read_only_connection(self._url) as conn:
            if spec.sql is not None:
                _probe_sql(conn, spec.sql, spec.column)
            else:
                assert spec.table is not None and spec.column is not None
                relation = _resolve_table(conn, spec.table, spec.schema)
                _resolve_column(conn, relation, spec.column)
        self._validated = True
        return self

    def __iter__(self) -> Iterator[list[object]]:
        stream = _stream_from_url(self._url, self.spec, self.chunk_size)
        self._streams.append(stream)
        return stream

    def close(self) -> None:
        """Close the streams still open (their cursors and connections)."""
        streams, self._streams = self._streams, []
        for stream in streams:
            stream.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Source({self.spec!r})"


def open_source(spec: SourceSpec, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Source:
    """The source of ``spec``, already validated: run it before creating anything a usage error
    should not leave behind (warehouse, ledger, landing files)."""
    return Source(spec, chunk_size=chunk_size).validate()


def iter_source_values(
    spec: SourceSpec, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Generator[list[object], None, None]:
    """Chunks (at most ``chunk_size`` values each) of the source's raw values.

    The URL is checked at once; the database is opened on the first ``next()`` and closed when the
    iterator is exhausted or closed. Use :func:`open_source` to check the names up front too.
    """
    _check_chunk_size(chunk_size)
    url = _parse_url(spec.url)
    return _stream_from_url(url, spec, chunk_size)


def iter_values_from_connection(
    conn: Connection,
    *,
    table: str | None = None,
    column: str | None = None,
    schema: str | None = None,
    sql: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Generator[list[object], None, None]:
    """Chunks of raw values read through a connection the caller owns (e.g. from an Airflow hook).

    The connection's transaction is made read-only first (see the module notes): on MySQL and
    DuckDB that needs a connection with no transaction open yet. SQLite's ``query_only`` and
    MySQL's session setting are put back when the iterator ends; a PostgreSQL, MySQL or DuckDB
    transaction stays read-only until the caller ends it. Names are resolved and the query is
    started at once, so a bad name raises here, not at the first ``next()``. Run nothing else on
    ``conn`` while iterating (a DuckDB connection has a single cursor); closing the iterator early
    closes the cursor.
    """
    _check_chunk_size(chunk_size)
    _check_selection(table, column, sql, schema, conn.dialect.name)
    undo = _enter_read_only(conn)
    try:
        result, index = _start(conn, table, column, schema, sql, chunk_size)
    except BaseException:
        _restore(conn, undo)
        raise
    return _chunks(result, index, chunk_size, on_close=lambda: _restore(conn, undo))


# --- arguments -------------------------------------------------------------------------------


def _check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigurationError(f"chunk_size must be a positive integer, not {chunk_size!r}")


def _check_selection(
    table: str | None,
    column: str | None,
    sql: str | None,
    schema: str | None,
    dialect: str | None = None,
) -> None:
    how = (
        "pass either table= and column= (the table and the column holding the phone numbers) "
        "or sql= (a query returning the numbers)"
    )
    if sql is not None:
        if table is not None:
            raise ConfigurationError(f"both table= and sql= were given; {how}")
        if schema is not None:
            raise ConfigurationError(
                "schema= only applies to table=; qualify the table inside sql= instead"
            )
        if not isinstance(sql, str) or not _strip_sql(sql):
            raise ConfigurationError(f"sql= is empty; {how}")
        read_only_statement(sql, dialect)
        if column is not None:
            _check_identifier("column", column)
        return
    if table is None:
        if column is not None:
            raise ConfigurationError(f"column= was given without table=; {how}")
        raise ConfigurationError(f"no source given; {how}")
    if column is None:
        raise ConfigurationError(
            f"table={table!r} was given without column=: name the column that holds the phone "
            "numbers"
        )
    _check_identifier("table", table)
    _check_identifier("column", column)
    if schema is not None:
        _check_identifier("schema", schema)


def _check_identifier(kind: str, name: object) -> None:
    """Reject what no database accepts as a name; everything else is quoted, never interpolated."""
    if not isinstance(name, str):
        raise ConfigurationError(f"{kind} name must be a string, not {type(name).__name__}")
    if not name.strip():
        raise ConfigurationError(f"{kind} name is empty")
    if len(name) > MAX_IDENTIFIER_LENGTH:
        raise ConfigurationError(
            f"{kind} name is {len(name)} characters long; at most {MAX_IDENTIFIER_LENGTH} are "
            "allowed"
        )
    if _CONTROL.search(name):
        raise ConfigurationError(
            f"{kind} name {name!r} contains a control character (NUL, newline, ...); "
            "no database table or column is named like that"
        )


def _strip_sql(sql: str) -> str:
    return sql.strip().rstrip(";").rstrip()


# --- URL and engine ----------------------------------------------------------------------------


def _safe_url(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: never echo it, it may hold a password
        return "<unparsable url>"


def _backend_of(url: str) -> str | None:
    try:
        return sa.make_url(url).get_backend_name()
    except Exception:
        return None


def _parse_url(url: str) -> URL:
    """The parsed URL, its dialect and driver importable; every mistake is one clear line."""
    text = url.strip()
    if "://" not in text:
        raise ConfigurationError(_no_scheme_message(text))
    try:
        parsed = sa.make_url(text)
    except Exception as exc:
        raise ConfigurationError(
            f"source url is not a valid SQLAlchemy URL (expected e.g. {_EXAMPLES}): "
            f"{type(exc).__name__}"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend in ("duckdb", "sqlite"):
        if parsed.host or parsed.port or parsed.username:
            suffix = "duckdb" if backend == "duckdb" else "db"
            raise ConfigurationError(
                f"bad {backend} source URL {shown!r}: a {backend} URL names a file, not a host; "
                f"use {backend}:///relative/path.{suffix} or {backend}:////absolute/path.{suffix} "
                "(three slashes, then the path)"
            )
        if not parsed.database:
            raise ConfigurationError(
                f"source URL {shown!r} names no database file: use {backend}:///path/to/file"
            )
    _check_driver(parsed, shown)
    database = parsed.database or ""
    if backend in ("duckdb", "sqlite") and not _NOT_A_PATH.match(database):
        path = Path(database)
        if path.is_dir():
            raise ConfigurationError(
                f"source {backend} database {database} is a directory, not a database file "
                f"(from url {shown})"
            )
        if not path.is_file():
            # Opening it would create an empty database and report "table not found".
            raise ConfigurationError(
                f"source {backend} database file not found: {database} (from url {shown})"
            )
    return parsed


def _no_scheme_message(text: str) -> str:
    """A hint for a URL without ``://``; only a plain file path is echoed (anything else may
    hold a password)."""
    lower = text.lower()
    looks_like_path = not re.search(r"[\s@:]", text.split("/", 1)[0] if "/" in text else text)
    if looks_like_path and lower.endswith((".duckdb", ".ddb")):
        return f"source url {text!r} has no scheme: for a DuckDB file write duckdb:///{text}"
    if looks_like_path and lower.endswith((".db", ".sqlite", ".sqlite3")):
        return f"source url {text!r} has no scheme: for a SQLite file write sqlite:///{text}"
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", text)
    if scheme and scheme.group(1).split("+")[0].lower() in _KNOWN_BACKENDS:
        name = scheme.group(1)
        return (
            f"source url has no '//' after '{name}:': write {name}:///path/to/file or "
            f"{name}://user@host/db"
        )
    return f"source url is not a SQLAlchemy URL (no '://'): write e.g. {_EXAMPLES}"


def _check_driver(url: URL, shown: str) -> None:
    # get_driver_name() would load the dialect to find its default driver.
    backend, driver = url.get_backend_name(), url.drivername.partition("+")[2]
    try:
        dialect = url.get_dialect()
    except sa.exc.NoSuchModuleError:
        if backend == "duckdb":
            raise ConfigurationError(
                "no SQLAlchemy dialect for duckdb: pip install duckdb-engine"
            ) from None
        if backend in _KNOWN_BACKENDS:
            raise ConfigurationError(
                f"SQLAlchemy has no driver {driver!r} for {backend} (source url {shown!r}); "
                f"write {backend}:// for the default driver or name an installed one"
            ) from None
        close = difflib.get_close_matches(backend, [*_KNOWN_BACKENDS, "postgres"], n=1)
        hint = (
            f"did you mean {'postgresql' if close == ['postgres'] else close[0]!r}? "
            if close
            else ""
        )
        raise ConfigurationError(
            f"unknown database {backend!r} in source url {shown!r}: {hint}"
            f"known: {', '.join(_KNOWN_BACKENDS)} (or any installed SQLAlchemy dialect)"
        ) from None
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot load the SQLAlchemy dialect for {url.drivername!r}: {exc}"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        name = driver or getattr(dialect, "driver", "") or backend
        package = _DRIVER_PACKAGES.get(name, name)
        raise ConfigurationError(
            f"the Python driver for {url.drivername!r} is not installed ({exc}): "
            f"pip install {package}"
        ) from None
    if getattr(dialect, "is_async", False):
        raise ConfigurationError(
            f"{url.drivername!r} is an asyncio driver, which cannot stream here: use a "
            f"synchronous one (e.g. {backend}://)"
        )


def _is_file_duckdb(url: URL) -> bool:
    db = url.database
    return url.get_backend_name() == "duckdb" and bool(db) and not _NOT_A_PATH.match(db or "")


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


def _connect(url: URL) -> tuple[Engine, Connection]:
    """A connection to ``url`` in a read-only transaction (see the module notes)."""
    engine, conn = _open(url)
    try:
        _enter_read_only(conn)
    except BaseException:
        conn.close()
        engine.dispose()
        raise
    return engine, conn


def _open(url: URL) -> tuple[Engine, Connection]:
    if url.get_backend_name() == "sqlite":
        engine = _create_engine(_sqlite_read_only_url(url), read_only=False)
        return engine, engine.connect()
    if not _is_file_duckdb(url):
        engine = _create_engine(url, read_only=False)
        return engine, engine.connect()
    # DuckDB allows one configuration per file and process. Read-only lets parallel readers in;
    # if this process already holds the file read-write (a warehouse in the same file, opened
    # through duckdb_engine or natively), share that instance with the same configuration: the
    # read-only transaction then keeps this reader from writing.
    openers = (
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
    import duckdb
    from duckdb_engine import ConnectionWrapper

    path = url.database or ""
    return sa.create_engine(
        "duckdb://",
        creator=lambda: ConnectionWrapper(duckdb.connect(path)),
        poolclass=sa.pool.NullPool,
    )


@contextmanager
def _read_only_connection(url: URL) -> Iterator[Connection]:
    engine, conn = _connect(url)
    try:
        yield conn
    finally:
        conn.close()  # rolls back: nothing is ever committed on a source
        engine.dispose()


def _stream_from_url(
    url: URL, spec: SourceSpec, chunk_size: int
) -> Generator[list[object], None, None]:
    engine, conn = _connect(url)
    try:
        # ``yield from`` closes the inner iterator (and its cursor) when this one is closed.
        yield from iter_values_from_connection(
            conn,
            table=spec.table,
            column=spec.column,
            schema=spec.schema,
            sql=spec.sql,
            chunk_size=chunk_size,
        )
    finally:
        conn.close()
        engine.dispose()


# --- read-only ---------------------------------------------------------------------------------


def _enter_read_only(conn: Connection) -> list[str]:
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


def _restore(conn: Connection, undo: list[str]) -> None:
    """Put back the caller's session settings; failing leaves them stricter, never looser."""
    for statement in undo:
        try:
            conn.exec_driver_sql(statement)
        except sa.exc.DBAPIError as exc:
            log.warning("could not restore the source connection (%s): %s", statement, exc)


# --- names -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Relation:
    schema: str | None
    name: str

    def describe(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def _relation_names(conn: Connection, schema: str | None) -> list[str]:
    """Tables and views of a schema (materialized views on PostgreSQL); [] for a missing schema."""
    inspector = sa.inspect(conn)
    names: list[str] = []
    try:
        names.extend(inspector.get_table_names(schema=schema))
        names.extend(inspector.get_view_names(schema=schema))
        if conn.dialect.name == "postgresql":
            names.extend(inspector.get_materialized_view_names(schema=schema))
    except sa.exc.OperationalError:  # SQLite: an unknown schema (attached database name)
        return []
    return list(dict.fromkeys(names))


def _match(wanted: str, available: Sequence[str]) -> str | None:
    if wanted in available:
        return wanted
    folded = [name for name in available if name.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def _suggest(wanted: str, available: Sequence[str]) -> str:
    by_folded = {name.casefold(): name for name in available}
    close = difflib.get_close_matches(wanted.casefold(), list(by_folded), n=5, cutoff=0.6)
    if close:
        return "did you mean " + ", ".join(repr(by_folded[c]) for c in close) + "?"
    if not available:
        return "there are none"
    shown = ", ".join(repr(name) for name in sorted(available)[:20])
    more = f" and {len(available) - 20} more" if len(available) > 20 else ""
    return f"available: {shown}{more}"


def _resolve_table(conn: Connection, table: str, schema: str | None) -> _Relation:
    names = _relation_names(conn, schema)
    found = _match(table, names)
    if found is not None:
        return _Relation(schema, found)
    if schema is None and "." in table:
        dotted_schema, _, dotted_table = table.rpartition(".")
        _check_identifier("schema", dotted_schema)
        _check_identifier("table", dotted_table)
        dotted_names = _relation_names(conn, dotted_schema)
        found = _match(dotted_table, dotted_names)
        if found is not None:
            return _Relation(dotted_schema, found)
    if schema is not None:
        where, wanted, candidates = f"(schema {schema!r})", table, names
    elif "." in table:
        where = (
            "(neither a table of that name in the default schema nor a table "
            f"{dotted_table!r} in schema {dotted_schema!r})"
        )
        wanted, candidates = dotted_table, dotted_names
    else:
        where, wanted, candidates = "(default schema)", table, names
    raise ConfigurationError(
        f"table or view {table!r} not found in the source database {where}; "
        f"{_suggest(wanted, candidates)}"
    )


def _resolve_column(conn: Connection, relation: _Relation, column: str) -> str:
    # A zero-row SELECT * works for tables and views on every dialect; the inspector's
    # get_columns() does not (duckdb_engine 0.17 fails on SQLAlchemy 2.1).
    target = sa.table(relation.name, schema=relation.schema)
    probe = sa.select(sa.text("*")).select_from(target).where(sa.false())
    try:
        with conn.execute(probe) as result:
            columns = list(result.keys())
    except sa.exc.DBAPIError as exc:
        # Listed by the inspector but not readable (DuckDB lists every schema's tables as default).
        raise ConfigurationError(
            f"table {relation.describe()!r} cannot be read from the source database: "
            f"{_db_message(exc)}"
        ) from exc
    found = _match(column, columns)
    if found is None:
        raise ConfigurationError(
            f"column {column!r} not found in table {relation.describe()!r}; "
            f"{_suggest(column, columns)}"
        )
    return found


def _db_message(exc: sa.exc.DBAPIError) -> str:
    """The database's own words, without the echoed statement and caret lines."""
    lines: list[str] = []
    for line in str(exc.orig).strip().splitlines():
        if line.startswith(("LINE ", "[SQL")):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines)


#: SQLite reports every failure as OperationalError; these are the ones a retry cannot fix.
_SQLITE_USAGE = re.compile(
    r"^(no such (table|column|function)|near \"|.*syntax error|.*ambiguous column name)"
)
_READ_ONLY_REFUSAL = re.compile(r"read[- _]?only|readonly", re.IGNORECASE)


def _usage_error(exc: sa.exc.DBAPIError) -> ConfigurationError | None:
    """The :class:`ConfigurationError` for a query the database refuses as written, or None."""
    message = _db_message(exc)
    if _READ_ONLY_REFUSAL.search(message):
        return ConfigurationError(
            f"sql= tried to change the source, which is opened read-only, and the database "
            f"refused: {message}"
        )
    if isinstance(exc, sa.exc.ProgrammingError | sa.exc.NotSupportedError) or (
        isinstance(exc, sa.exc.OperationalError) and _SQLITE_USAGE.match(message)
    ):
        return ConfigurationError(f"sql= failed in the source database: {message}")
    return None


def _pick_column(columns: list[str], column: str | None) -> int:
    if column is None:
        if len(columns) != 1:
            raise ConfigurationError(
                f"sql= returns {len(columns)} columns ({', '.join(map(repr, columns))}); select "
                "only the phone-number column, or pass column= naming it"
            )
        return 0
    found = _match(column, columns)
    if found is None:
        raise ConfigurationError(
            f"column {column!r} is not among the columns sql= returns; {_suggest(column, columns)}"
        )
    return columns.index(found)


# --- queries -----------------------------------------------------------------------------------


def _execute_sql(conn: Connection, statement: str, options: dict[str, Any]) -> sa.CursorResult[Any]:
    # no_parameters: the DBAPI gets the text alone, so psycopg leaves "%" and "%s" alone.
    sql_options = dict(options, no_parameters=True)
    try:
        return conn.exec_driver_sql(statement, execution_options=sql_options)
    except sa.exc.DBAPIError as exc:
        error = _usage_error(exc)
        if error is not None:
            raise error from exc
        raise


def _start(
    conn: Connection,
    table: str | None,
    column: str | None,
    schema: str | None,
    sql: str | None,
    chunk_size: int,
) -> tuple[sa.CursorResult[Any], int]:
    """The started query over a read-only ``conn`` and the index of the column to read."""
    options: dict[str, Any] = {"stream_results": True, "yield_per": chunk_size}
    if sql is not None:
        result = _execute_sql(conn, read_only_statement(sql, conn.dialect.name), options)
        try:
            if not result.returns_rows:
                raise ConfigurationError("sql= returned no rows: it must be a query (SELECT ...)")
            return result, _pick_column(list(result.keys()), column)
        except BaseException:
            result.close()
            raise
    assert table is not None and column is not None  # _check_selection guarantees it
    relation = _resolve_table(conn, table, schema)
    found_column = _resolve_column(conn, relation, column)
    target = sa.table(relation.name, sa.column(found_column), schema=relation.schema)
    return conn.execute(sa.select(target.c[found_column]), execution_options=options), 0


def _probe_sql(conn: Connection, sql: str, column: str | None) -> None:
    """Check that ``sql`` runs and has the column to read, without computing its rows."""
    statement = read_only_statement(sql, conn.dialect.name)
    try:
        with conn.exec_driver_sql(
            _PROBE.format(statement), execution_options={"no_parameters": True}
        ) as result:
            columns = list(result.keys())
    except sa.exc.DBAPIError:
        # Not every query can be wrapped (duplicate column names on MySQL, ...): start the real
        # one, which gives the database's own error, or its columns.
        conn.rollback()
        _enter_read_only(conn)
        result, _ = _start(conn, None, column, None, sql, 1)
        result.close()
        return
    _pick_column(columns, column)


# --- streaming ---------------------------------------------------------------------------------


def _chunks(
    result: sa.CursorResult[Any],
    index: int,
    chunk_size: int,
    on_close: Callable[[], None] | None = None,
) -> Generator[list[object], None, None]:
    try:
        while True:
            try:
                rows = result.fetchmany(chunk_size)
            except sa.exc.DBAPIError as exc:  # a server-side cursor runs the query as it fetches
                error = _usage_error(exc)
                if error is not None:
                    raise error from exc
                raise
            if not rows:
                return
            yield [row[index] for row in rows]
    finally:
        result.close()
        if on_close is not None:
            on_close()
