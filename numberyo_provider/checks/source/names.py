"""Table and column names, resolved against the database: never pasted into SQL.

A name is checked to exist (a table or view, a column of it) and then quoted by the dialect, so a
name such as ``x; DROP TABLE contacts; --`` is either not found or read as the literal name it is.
A name differing only in case from a real one is resolved to it; a miss lists the closest names.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from numberyo_provider.checks.source.spec import check_identifier
from numberyo_provider.errors import ConfigurationError

__all__ = ["Relation", "db_message", "match_name", "resolve_column", "resolve_table", "suggest"]


@dataclass(frozen=True)
class Relation:
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


def match_name(wanted: str, available: Sequence[str]) -> str | None:
    if wanted in available:
        return wanted
    folded = [name for name in available if name.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def suggest(wanted: str, available: Sequence[str]) -> str:
    by_folded = {name.casefold(): name for name in available}
    close = difflib.get_close_matches(wanted.casefold(), list(by_folded), n=5, cutoff=0.6)
    if close:
        return "did you mean " + ", ".join(repr(by_folded[c]) for c in close) + "?"
    if not available:
        return "there are none"
    shown = ", ".join(repr(name) for name in sorted(available)[:20])
    more = f" and {len(available) - 20} more" if len(available) > 20 else ""
    return f"available: {shown}{more}"


def resolve_table(conn: Connection, table: str, schema: str | None) -> Relation:
    names = _relation_names(conn, schema)
    found = match_name(table, names)
    if found is not None:
        return Relation(schema, found)
    if schema is None and "." in table:
        dotted_schema, _, dotted_table = table.rpartition(".")
        check_identifier("schema", dotted_schema)
        check_identifier("table", dotted_table)
        dotted_names = _relation_names(conn, dotted_schema)
        found = match_name(dotted_table, dotted_names)
        if found is not None:
            return Relation(dotted_schema, found)
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
        f"{suggest(wanted, candidates)}"
    )


def resolve_column(conn: Connection, relation: Relation, column: str) -> str:
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
            f"{db_message(exc)}"
        ) from exc
    found = match_name(column, columns)
    if found is None:
        raise ConfigurationError(
            f"column {column!r} not found in table {relation.describe()!r}; "
            f"{suggest(column, columns)}"
        )
    return found


def db_message(exc: sa.exc.DBAPIError) -> str:
    """The database's own words, without the echoed statement and caret lines."""
    lines: list[str] = []
    for line in str(exc.orig).strip().splitlines():
        if line.startswith(("LINE ", "[SQL")):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines)
