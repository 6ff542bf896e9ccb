"""Streaming the source's values in chunks, through a server-side cursor where there is one.

:class:`Source` (checked up front by :meth:`Source.validate`, then iterated), :func:`open_source`,
:func:`iter_source_values` and :func:`iter_values_from_connection` (a connection the caller owns).
A query the database refuses as written, or a write the read-only connection refuses, becomes a
:class:`ConfigurationError` (:func:`_usage_error`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from numberyo_provider.checks.source.names import (
    db_message,
    match_name,
    resolve_column,
    resolve_table,
    suggest,
)
from numberyo_provider.checks.source.read_only import (
    connect,
    enter_read_only,
    read_only_connection,
    restore_session,
)
from numberyo_provider.checks.source.read_only_sql import read_only_statement
from numberyo_provider.checks.source.spec import (
    DEFAULT_CHUNK_SIZE,
    SourceSpec,
    check_chunk_size,
    check_selection,
    parse_url,
)
from numberyo_provider.errors import ConfigurationError

__all__ = ["Source", "iter_source_values", "iter_values_from_connection", "open_source"]

_PROBE = "SELECT * FROM (\n{}\n) AS numberyo_probe WHERE 1 = 0"


class Source:
    """A source to stream, checked up front: iterate it for chunks of raw values.

    :meth:`validate` connects read-only, resolves the names (or the query's columns) and
    disconnects; each iteration opens its own read-only connection, streams and closes it (also
    when :meth:`close` is called or the ``with`` block ends).
    """

    def __init__(self, spec: SourceSpec, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        check_chunk_size(chunk_size)
        self.spec = spec
        self.chunk_size = chunk_size
        self._url = parse_url(spec.url)
        self._validated = False
        self._streams: list[Generator[list[object], None, None]] = []

    def validate(self) -> Source:
        """Raise the usage error (names, query) now; a no-op once it passed."""
        if self._validated:
            return self
        spec = self.spec
        with read_only_connection(self._url) as conn:
            if spec.sql is not None:
                _probe_sql(conn, spec.sql, spec.column)
            else:
                assert spec.table is not None and spec.column is not None
                relation = resolve_table(conn, spec.table, spec.schema)
                resolve_column(conn, relation, spec.column)
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
    check_chunk_size(chunk_size)
    url = parse_url(spec.url)
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
    check_chunk_size(chunk_size)
    check_selection(table, column, sql, schema, conn.dialect.name)
    undo = enter_read_only(conn)
    try:
        result, index = _start(conn, table, column, schema, sql, chunk_size)
    except BaseException:
        restore_session(conn, undo)
        raise
    return _chunks(result, index, chunk_size, on_close=lambda: restore_session(conn, undo))


def _stream_from_url(
    url: URL, spec: SourceSpec, chunk_size: int
) -> Generator[list[object], None, None]:
    engine, conn = connect(url)
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


#: SQLite reports every failure as OperationalError; these are the ones a retry cannot fix.
_SQLITE_USAGE = re.compile(
    r"^(no such (table|column|function)|near \"|.*syntax error|.*ambiguous column name)"
)
_READ_ONLY_REFUSAL = re.compile(r"read[- _]?only|readonly", re.IGNORECASE)


def _usage_error(exc: sa.exc.DBAPIError) -> ConfigurationError | None:
    """The :class:`ConfigurationError` for a query the database refuses as written, or None."""
    message = db_message(exc)
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
    found = match_name(column, columns)
    if found is None:
        raise ConfigurationError(
            f"column {column!r} is not among the columns sql= returns; {suggest(column, columns)}"
        )
    return columns.index(found)


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
    assert table is not None and column is not None  # check_selection guarantees it
    relation = resolve_table(conn, table, schema)
    found_column = resolve_column(conn, relation, column)
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
        enter_read_only(conn)
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
