"""The tables a sync updates, named the same way everywhere (operator outlets, DAGs, lineage).

Airflow-free: the operator turns these strings into ``airflow.sdk.Asset`` objects, and a dbt DAG
can schedule on exactly the same URIs without importing the operator::

    from numberyo_provider.assets import sync_asset_uris
    schedule = [Asset(uri) for uri in sync_asset_uris("duckdb:////data/wh.duckdb").values()]

URIs are derived from the warehouse URL with every credential removed (user and password), so
they can be shown and stored safely, and are stable for the same warehouse:

- DuckDB: ``duckdb:///<absolute path of the file>/numberyo/<table>`` (a relative path is made
  absolute against the current directory; ``:memory:`` and MotherDuck ``md:`` names stay as is);
- PostgreSQL (any driver): ``postgres://<host>:<port>/<database>/numberyo/<table>`` (the form the
  Airflow postgres provider uses; port defaults to 5432);
- any other SQLAlchemy backend: ``<backend>://<host>[:<port>]/<database>/numberyo/<table>``.

Airflow stores ``duckdb:///x`` as ``duckdb:/x`` (its URI normaliser drops the empty host); the
asset *name* keeps the form above, and both are derived the same way for every caller.

DAG files import this module at every parse: SQLAlchemy, which parses the URL, is imported by
:func:`warehouse_location` when it is called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from numberyo_provider import schema
from numberyo_provider.errors import ConfigurationError

_POSTGRES_DEFAULT_PORT = 5432


@dataclass(frozen=True)
class WarehouseLocation:
    """Where a warehouse is, without credentials."""

    backend: str  # "duckdb", "postgres", "mysql", ...
    host: str  # "" for file-based backends
    port: int | None
    database: str  # file path for DuckDB/SQLite, database name otherwise

    @property
    def namespace(self) -> str:
        """The warehouse itself as a URI (the prefix of the asset URIs; OpenLineage names are
        :mod:`numberyo_provider.lineage`'s)."""
        if self.backend in ("duckdb", "sqlite"):
            return f"{self.backend}://{_path_part(self.database)}"
        port = f":{self.port}" if self.port else ""
        return f"{self.backend}://{self.host}{port}"

    def table_uri(self, table: str) -> str:
        if self.backend in ("duckdb", "sqlite"):
            return f"{self.namespace}/{schema.SCHEMA_NAME}/{table}"
        return f"{self.namespace}/{self.database}/{schema.SCHEMA_NAME}/{table}"


def _path_part(database: str) -> str:
    """``/abs/path`` for a file (so ``duckdb://`` + it gives ``duckdb:///abs/path``)."""
    if database in ("", ":memory:") or database.startswith("md:"):
        return f"/{database or ':memory:'}"
    return os.path.abspath(os.path.expanduser(database))


def warehouse_location(url: str) -> WarehouseLocation:
    """Parse a warehouse URL (``duckdb:///file.duckdb`` or any SQLAlchemy URL) into a
    credential-free location."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = (url or "").strip()
    if not text:
        raise ConfigurationError(
            "the warehouse URL is empty: use e.g. duckdb:///warehouse.duckdb or "
            "postgresql+psycopg://user@host:5432/db"
        )
    if "://" not in text:
        raise ConfigurationError(
            "the warehouse URL has no scheme: use duckdb:///path/file.duckdb for a DuckDB file "
            "or a SQLAlchemy URL such as postgresql+psycopg://user@host:5432/db"
        )
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise ConfigurationError(
            "the warehouse URL is not a valid SQLAlchemy URL (not shown: it may hold a password); "
            "use e.g. duckdb:///warehouse.duckdb or postgresql+psycopg://user@host:5432/db"
        ) from None
    backend = parsed.get_backend_name().lower()
    if backend in ("postgresql", "postgres"):
        return WarehouseLocation(
            "postgres",
            parsed.host or "localhost",
            parsed.port or _POSTGRES_DEFAULT_PORT,
            parsed.database or "",
        )
    if backend in ("duckdb", "sqlite"):
        return WarehouseLocation(backend, "", None, parsed.database or "")
    return WarehouseLocation(backend, parsed.host or "", parsed.port, parsed.database or "")


def sync_tables() -> tuple[schema.Table, ...]:
    """The data tables a sync writes (bookkeeping tables are not assets)."""
    return schema.DATA_TABLES


def sync_asset_uris(url: str) -> dict[str, str]:
    """Table name -> asset URI for every table a sync of ``url`` updates."""
    location = warehouse_location(url)
    return {t.name: location.table_uri(t.name) for t in sync_tables()}


__all__ = ["WarehouseLocation", "sync_asset_uris", "sync_tables", "warehouse_location"]
