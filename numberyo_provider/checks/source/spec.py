"""What to read, checked before anything connects: :class:`SourceSpec` and the source URL.

The selection (``table`` + ``column`` + ``schema``, or one read-only ``sql``) is checked here, and
the URL is parsed with its dialect and driver importable (:func:`parse_url`): every mistake is one
clear line naming the fix, never a password.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from numberyo_provider.checks.source.read_only_sql import read_only_statement
from numberyo_provider.errors import ConfigurationError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_IDENTIFIER_LENGTH",
    "SourceSpec",
    "check_chunk_size",
    "check_identifier",
    "check_selection",
    "is_file_duckdb",
    "parse_url",
]

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
        check_selection(self.table, self.column, self.sql, self.schema, _backend_of(self.url))

    def __repr__(self) -> str:
        what = f"sql={self.sql!r}" if self.sql is not None else f"table={self.table!r}"
        return (
            f"SourceSpec(url={_safe_url(self.url)!r}, {what}, column={self.column!r}, "
            f"schema={self.schema!r})"
        )


def check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigurationError(f"chunk_size must be a positive integer, not {chunk_size!r}")


def check_selection(
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
            check_identifier("column", column)
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
    check_identifier("table", table)
    check_identifier("column", column)
    if schema is not None:
        check_identifier("schema", schema)


def check_identifier(kind: str, name: object) -> None:
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


def parse_url(url: str) -> URL:
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


def is_file_duckdb(url: URL) -> bool:
    db = url.database
    return url.get_backend_name() == "duckdb" and bool(db) and not _NOT_A_PATH.match(db or "")
