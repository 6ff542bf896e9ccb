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
  wraps the query). It must be one read-only query (:mod:`.read_only_sql` refuses anything else
  before any connection is made). It must return one column, or ``column`` must name which of its
  columns to read: silently taking the first of several could spend money on the wrong values.

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

The modules: :mod:`.spec` (what to read and the URL, checked before connecting),
:mod:`.read_only_sql` (the lexical check of ``sql``), :mod:`.read_only` (read-only connections per
backend), :mod:`.names` (resolving table and column names), :mod:`.stream` (:class:`Source` and
the chunked reads). Import from this package.
"""

from numberyo_provider.checks.source.spec import (
    DEFAULT_CHUNK_SIZE,
    MAX_IDENTIFIER_LENGTH,
    SourceSpec,
)
from numberyo_provider.checks.source.stream import (
    Source,
    iter_source_values,
    iter_values_from_connection,
    open_source,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_IDENTIFIER_LENGTH",
    "Source",
    "SourceSpec",
    "iter_source_values",
    "iter_values_from_connection",
    "open_source",
]
