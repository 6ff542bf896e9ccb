"""DDL for every backend, derived from :mod:`numberyo_provider.schema` (never written by hand).

DuckDB gets text DDL (its own types: ``JSON``, ``DECIMAL(18,4)``, ``TIMESTAMPTZ``); every SQLAlchemy
database gets :class:`sqlalchemy.Table` objects built from the same Arrow fields, with PostgreSQL
variants (``JSONB``) so that ``CREATE TABLE`` compiles to each dialect's best type.

In DuckDB only ``_loads`` and ``_sync_state`` (a row per load or stream) declare a ``PRIMARY KEY``.
The data tables and ``check_requests`` / ``rejected_numbers`` (a row per source number per run) do
not: DuckDB's ART index roughly doubles bulk-load time, and it must fit in ``memory_limit`` whole,
so at the default 64MB a keyed ``check_requests`` stopped taking rows at about 600,000 keys, however
they were batched. The loader keeps those keys unique itself (staging, de-duplication, delete +
insert by key in one transaction). SQL databases declare every key (their B-tree indexes serve the
merges and live on disk).

SQLAlchemy is imported by the functions that build its objects (see the ``TYPE_CHECKING`` import):
a DuckDB sync never loads it.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from numberyo_provider.schema import (
    ALL_TABLES,
    LOADS,
    SCHEMA_NAME,
    SYNC_STATE,
    Table,
    description,
)

if TYPE_CHECKING:  # imported where used: a DuckDB sync never loads SQLAlchemy (~0.15 s)
    import sqlalchemy as sa

#: Columns every data table carries that the loader, not the landed data, decides.
LINEAGE_COLUMNS: tuple[str, ...] = ("_loaded_at", "_load_id")

#: Prefix of table names in SQL databases where ``numberyo`` is not a schema (all but PostgreSQL).
TABLE_PREFIX = f"{SCHEMA_NAME}_"

#: Dialects where tables live in the ``numberyo`` schema rather than carrying the prefix.
SCHEMA_DIALECTS = frozenset({"postgresql"})

#: Dialects that cannot index unbounded text: string key columns become ``VARCHAR(255)`` there.
_BOUNDED_KEY_DIALECTS = ("mysql", "mariadb", "mssql", "oracle")


def is_json(field: pa.Field) -> bool:
    return (field.metadata or {}).get(b"logical") == b"json"


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (DuckDB and standard SQL)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- DuckDB --------------------------------------------------------------------------------


def duckdb_type(field: pa.Field) -> str:
    """The DuckDB type that holds ``field`` without loss."""
    typ = field.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "JSON" if is_json(field) else "VARCHAR"
    if pa.types.is_int64(typ):
        return "BIGINT"
    if pa.types.is_int32(typ):
        return "INTEGER"
    if pa.types.is_int16(typ):
        return "SMALLINT"
    if pa.types.is_boolean(typ):
        return "BOOLEAN"
    if pa.types.is_float64(typ):
        return "DOUBLE"
    if pa.types.is_date32(typ):
        return "DATE"
    if pa.types.is_timestamp(typ):
        return "TIMESTAMPTZ" if typ.tz is not None else "TIMESTAMP"
    if pa.types.is_decimal(typ):
        return f"DECIMAL({typ.precision},{typ.scale})"
    raise TypeError(f"column {field.name!r}: no DuckDB type for Arrow type {typ}")


def duckdb_qualified(table: Table) -> str:
    return f"{quote_ident(SCHEMA_NAME)}.{quote_ident(table.name)}"


#: The DuckDB tables that declare their primary key (see the module docstring).
DUCKDB_KEYED_TABLES: tuple[Table, ...] = (LOADS, SYNC_STATE)


def duckdb_declares_key(table: Table) -> bool:
    """Whether the DuckDB table declares its primary key (see the module docstring)."""
    return table in DUCKDB_KEYED_TABLES


def duckdb_create_table(table: Table) -> str:
    cols = [
        f"{quote_ident(f.name)} {duckdb_type(f)}{'' if f.nullable else ' NOT NULL'}"
        for f in table.schema
    ]
    if duckdb_declares_key(table):
        cols.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in table.primary_key)})")
    body = ",\n  ".join(cols)
    return f"CREATE TABLE IF NOT EXISTS {duckdb_qualified(table)} (\n  {body}\n)"


def duckdb_comments(table: Table) -> list[str]:
    """``COMMENT ON`` statements carrying the schema's descriptions into the catalog."""
    name = duckdb_qualified(table)
    out = [f"COMMENT ON TABLE {name} IS {quote_literal(table.description)}"]
    for f in table.schema:
        out.append(
            f"COMMENT ON COLUMN {name}.{quote_ident(f.name)} IS {quote_literal(description(f))}"
        )
    return out


def duckdb_add_column(table: Table, field: pa.Field) -> str:
    return (
        f"ALTER TABLE {duckdb_qualified(table)} ADD COLUMN IF NOT EXISTS "
        f"{quote_ident(field.name)} {duckdb_type(field)}"
    )


def duckdb_ddl(table: Table) -> list[str]:
    """Every statement that creates ``table`` from nothing (for docs and inspection)."""
    return [duckdb_create_table(table), *duckdb_comments(table)]


# --- SQLAlchemy (PostgreSQL and the rest) --------------------------------------------------


@cache
def json_text_type() -> type[sa.types.TypeDecorator[Any]]:
    """The ``JSONText`` column type (made on first use, so that importing this module does not
    import SQLAlchemy)."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.engine import Dialect

    class JSONText(sa.types.TypeDecorator[Any]):
        """A JSON column fed with JSON *text* (as landed); ``JSONB`` on PostgreSQL.

        Binding parses the text so the dialect's JSON type serialises it once (never a JSON
        string of a JSON string); SQL ``NULL`` stays ``NULL``, never the JSON literal ``null``.
        """

        impl = sa.JSON
        cache_ok = True

        def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
            if dialect.name == "postgresql":
                return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
            return dialect.type_descriptor(sa.JSON(none_as_null=True))

        def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
            if isinstance(value, str):
                return json.loads(value)
            return value

    return JSONText


def sqlalchemy_type(field: pa.Field, *, key: bool = False) -> sa.types.TypeEngine[Any]:
    import sqlalchemy as sa

    typ = field.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        if is_json(field):
            return json_text_type()()
        text: sa.types.TypeEngine[Any] = sa.Text()
        if key:
            for dialect in _BOUNDED_KEY_DIALECTS:
                text = text.with_variant(sa.String(255), dialect)
        return text
    if pa.types.is_int64(typ):
        return sa.BigInteger()
    if pa.types.is_int32(typ):
        return sa.Integer()
    if pa.types.is_int16(typ):
        return sa.SmallInteger()
    if pa.types.is_boolean(typ):
        return sa.Boolean()
    if pa.types.is_float64(typ):
        return sa.Float(53)
    if pa.types.is_date32(typ):
        return sa.Date()
    if pa.types.is_timestamp(typ):
        return sa.DateTime(timezone=typ.tz is not None)
    if pa.types.is_decimal(typ):
        return sa.Numeric(typ.precision, typ.scale, asdecimal=True)
    raise TypeError(f"column {field.name!r}: no SQL type for Arrow type {typ}")


def sql_table_name(table: Table, dialect_name: str) -> tuple[str | None, str]:
    """``(schema, name)`` of ``table`` in a SQL database of ``dialect_name``."""
    if dialect_name in SCHEMA_DIALECTS:
        return SCHEMA_NAME, table.name
    return None, TABLE_PREFIX + table.name


def sqlalchemy_table(table: Table, metadata: sa.MetaData, dialect_name: str) -> sa.Table:
    import sqlalchemy as sa

    schema, name = sql_table_name(table, dialect_name)
    columns = [
        sa.Column(
            f.name,
            sqlalchemy_type(f, key=f.name in table.primary_key),
            nullable=f.nullable,
            primary_key=f.name in table.primary_key,
            autoincrement=False,
            comment=description(f),
        )
        for f in table.schema
    ]
    return sa.Table(name, metadata, *columns, schema=schema, comment=table.description)


def sqlalchemy_tables(dialect_name: str) -> dict[str, sa.Table]:
    """Every table of the model as SQLAlchemy Core objects, keyed by the model's table name."""
    import sqlalchemy as sa

    metadata = sa.MetaData()
    return {t.name: sqlalchemy_table(t, metadata, dialect_name) for t in ALL_TABLES}


def postgres_ddl(table: Table) -> list[str]:
    """PostgreSQL statements creating ``table`` (for docs and inspection)."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    sa_table = sqlalchemy_tables("postgresql")[table.name]
    dialect = postgresql.dialect()
    out = [str(sa.schema.CreateTable(sa_table, if_not_exists=True).compile(dialect=dialect))]
    out.append(str(sa.schema.SetTableComment(sa_table).compile(dialect=dialect)))
    out.extend(
        str(sa.schema.SetColumnComment(c).compile(dialect=dialect)) for c in sa_table.columns
    )
    return [s.strip() for s in out]


def postgres_type(field: pa.Field) -> str:
    """The PostgreSQL type name of ``field`` (for the data dictionary)."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    typ = sqlalchemy_type(field)
    if isinstance(typ, json_text_type()):
        return "JSONB"
    return str(typ.compile(dialect=dialect)).replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")
