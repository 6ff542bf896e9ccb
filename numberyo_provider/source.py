"""Streaming reads of phone numbers from any SQL database (SQLAlchemy), in bounded chunks.

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
  literals are safe; trailing semicolons are dropped because a server-side cursor wraps the
  query). It must return one column, or ``column`` must name which of its columns to read:
  silently taking the first of several could spend money on the wrong values.

Values are yielded as the database returns them (text, integers, decimals, ``None``): normalising
them is :mod:`numberyo_provider.numbers`' job, and a ``None`` is kept so that rejected values can be
counted against the source's row count.

DuckDB files are read through the ``duckdb_engine`` dialect (``duckdb:///path/file.duckdb``),
opened read-only so that several shard tasks can read one file at the same time. When this process
already holds the file open read-write (DuckDB allows one configuration per file and process, e.g.
the warehouse and the contacts live in one file), a connection to that same instance is used.

Memory (``bench/bench_source.py``): streaming grows RSS by the same amount for 0.1 and 1 million
rows (SQLite ~6 MB, PostgreSQL ~17 MB); reading all rows at once grows it by 120-250 MB per million.
DuckDB also keeps the table blocks it scanned in its buffer cache (65-85 MB here), bounded by its
``memory_limit``, which the URL can lower: ``duckdb:///contacts.duckdb?memory_limit=256MB``.

A query that the database refuses as written (syntax, unknown table: the driver's
``ProgrammingError``) becomes a :class:`ConfigurationError`, since retrying cannot help; connection
failures stay SQLAlchemy errors, which are worth a retry.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from numberyo_provider.errors import ConfigurationError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_IDENTIFIER_LENGTH",
    "SourceSpec",
    "iter_source_values",
    "iter_values_from_connection",
]

DEFAULT_CHUNK_SIZE = 10_000
#: Longer than any database allows (PostgreSQL 63, SQL Server 128): rejected before any query.
MAX_IDENTIFIER_LENGTH = 128

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: ``md:``, ``file:``, ``:memory:``: not plain file paths, not checked for existence.
_NOT_A_PATH = re.compile(r"^(?::memory:|[A-Za-z][A-Za-z0-9+.-]+:)")


@dataclass(frozen=True, repr=False)
class SourceSpec:
    """Where the numbers are: a SQLAlchemy URL and either ``table`` + ``column`` or ``sql``."""

    url: str
    table: str | None = None
    column: str | None = None
    sql: str | None = None
    schema: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.strip():
            raise ConfigurationError(
                "source url is empty: pass a SQLAlchemy URL such as "
                "'duckdb:///contacts.duckdb' or 'postgresql+psycopg://user@host/db'"
            )
        _check_selection(self.table, self.column, self.sql, self.schema)

    def __repr__(self) -> str:
        what = f"sql={self.sql!r}" if self.sql is not None else f"table={self.table!r}"
        return (
            f"SourceSpec(url={_safe_url(self.url)!r}, {what}, column={self.column!r}, "
            f"schema={self.schema!r})"
        )


def iter_source_values(
    spec: SourceSpec, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Generator[list[object], None, None]:
    """Chunks (at most ``chunk_size`` values each) of the source's raw values.

    The URL is checked at once; the database is opened on the first ``next()`` and closed when the
    iterator is exhausted or closed.
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

    Names are resolved and the query is started at once, so a bad name raises here, not at the
    first ``next()``. Run nothing else on ``conn`` while iterating (a DuckDB connection has a
    single cursor); closing the iterator early closes the cursor.
    """
    _check_chunk_size(chunk_size)
    _check_selection(table, column, sql, schema)
    options: dict[str, Any] = {"stream_results": True, "yield_per": chunk_size}
    if sql is not None:
        # no_parameters: the DBAPI gets the text alone, so psycopg leaves "%" and "%s" alone.
        sql_options = dict(options, no_parameters=True)
        try:
            result = conn.exec_driver_sql(_strip_sql(sql), execution_options=sql_options)
        except sa.exc.ProgrammingError as exc:  # syntax, unknown table...: retrying cannot help
            raise ConfigurationError(
                f"sql= failed in the source database: {_db_message(exc)}"
            ) from exc
        try:
            index = _pick_sql_column(result, column)
        except BaseException:
            result.close()
            raise
    else:
        assert table is not None and column is not None  # _check_selection guarantees it
        relation = _resolve_table(conn, table, schema)
        found_column = _resolve_column(conn, relation, column)
        target = sa.table(relation.name, sa.column(found_column), schema=relation.schema)
        result = conn.execute(sa.select(target.c[found_column]), execution_options=options)
        index = 0
    return _chunks(result, index, chunk_size)


# --- arguments -------------------------------------------------------------------------------


def _check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigurationError(f"chunk_size must be a positive integer, not {chunk_size!r}")


def _check_selection(
    table: str | None, column: str | None, sql: str | None, schema: str | None
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


def _parse_url(url: str) -> URL:
    try:
        parsed = sa.make_url(url)
    except Exception as exc:
        raise ConfigurationError(
            "source url is not a valid SQLAlchemy URL (expected e.g. "
            "'duckdb:///path/contacts.duckdb', 'sqlite:///path/contacts.db' or "
            f"'postgresql+psycopg://user@host:5432/db'): {type(exc).__name__}"
        ) from None
    backend = parsed.get_backend_name()
    database = parsed.database
    is_file_url = backend in ("duckdb", "sqlite") and database and not _NOT_A_PATH.match(database)
    if is_file_url and not Path(database or "").is_file():
        # Opening it would create an empty database and report "table not found".
        raise ConfigurationError(
            f"source {backend} database file not found: {database} "
            f"(from url {parsed.render_as_string(hide_password=True)})"
        )
    return parsed


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


def _connect(url: URL) -> tuple[Engine, Connection]:
    if not _is_file_duckdb(url):
        engine = _create_engine(url, read_only=False)
        return engine, engine.connect()
    # DuckDB allows one configuration per file and process. Read-only lets parallel readers in;
    # if this process already holds the file read-write (a warehouse in the same file, opened
    # through duckdb_engine or natively), share that instance with the same configuration.
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


def _pick_sql_column(result: sa.CursorResult[Any], column: str | None) -> int:
    if not result.returns_rows:
        raise ConfigurationError("sql= returned no rows: it must be a query (SELECT ...)")
    columns = list(result.keys())
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


# --- streaming ---------------------------------------------------------------------------------


def _chunks(
    result: sa.CursorResult[Any], index: int, chunk_size: int
) -> Generator[list[object], None, None]:
    try:
        while True:
            rows = result.fetchmany(chunk_size)
            if not rows:
                return
            yield [row[index] for row in rows]
    finally:
        result.close()
