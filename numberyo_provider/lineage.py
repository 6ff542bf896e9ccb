"""OpenLineage dataset names for what the sync and the checks read and write (no Airflow import).

The operators turn these into OpenLineage ``Dataset`` objects (``operators/lineage.py``). Names
follow the OpenLineage naming conventions (https://openlineage.io/docs/spec/naming, and the
client's ``openlineage.client.naming.dataset`` helpers), so that other producers' events for the
same data (dbt-ol, Spark, the Airflow SQL operators) meet ours in one lineage graph:

* PostgreSQL: namespace ``postgres://{host}:{port}``, name ``{database}.{schema}.{table}``;
* MySQL / MariaDB: ``mysql://{host}:{port}``, ``{database}.{table}``;
* DuckDB (not in the spec's table): namespace ``duckdb://{path}``, as OpenLineage's own dbt
  integration emits it (``DbtArtifactProcessor.extract_namespace``), with the absolute file path,
  and name ``{catalog}.{schema}.{table}`` where the catalog is the file name up to its first dot
  (DuckDB's default name for the file, and dbt-duckdb's ``database``);
* SQLite: ``sqlite://{path}``, ``{table}``;
* local files: namespace ``file``, name the absolute path; object stores: ``s3://{bucket}``
  (``gs://``, ``abfss://``... alike), name the key (the spec's "Local file system" and "S3"
  rows). A Parquet landing directory ``<root>/<table>`` is one dataset per table;
* the NumberYo API: namespace its base URL (``https://www.numberyo.tech``), name the endpoint
  path ``/api/checks`` (HTTP APIs have no convention in the spec).

Every name is credential-free: user, password and query string never appear.

The HTTP client (for the API's path) and the warehouse's DDL rules are imported by the functions
that need them, so that the names cost neither the HTTP stack nor the warehouse package to import;
OpenLineage's SQL parser too, an optional dependency.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from numberyo_provider import schema
from numberyo_provider.assets import warehouse_location

#: Default schema of a source table given without one, per backend.
_DEFAULT_SCHEMA = {"postgres": "public", "duckdb": "main"}


@dataclass(frozen=True, order=True)
class DatasetName:
    """One OpenLineage dataset: ``namespace`` (the data source) and ``name`` (within it)."""

    namespace: str
    name: str


def api_dataset(base_url: str) -> DatasetName:
    """The NumberYo API's checks endpoint (what a sync reads and a check run writes to)."""
    from numberyo_provider.api.client import CHECKS_PATH

    parts = urlsplit(base_url.strip())
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    prefix = parts.path.rstrip("/")
    return DatasetName(f"{parts.scheme or 'https'}://{host}{port}", f"{prefix}{CHECKS_PATH}")


def table_dataset(url: str, table: str, db_schema: str | None = None) -> DatasetName:
    """Table ``table`` (in ``db_schema``, else the backend's default) of the database at
    ``url`` (``duckdb:///file`` or any SQLAlchemy URL)."""
    location = warehouse_location(url)
    backend = location.backend
    if backend == "duckdb":
        # DuckDB's (and dbt-duckdb's) catalog name: the file name up to its first dot.
        catalog = PurePosixPath(location.database).name.lstrip(".").split(".")[0] or "memory"
        path = _abs_path(location.database)
        return DatasetName(
            f"duckdb://{path}", f"{catalog}.{db_schema or _DEFAULT_SCHEMA['duckdb']}.{table}"
        )
    if backend == "sqlite":
        return DatasetName(f"sqlite://{_abs_path(location.database)}", table)
    port = f":{location.port}" if location.port else ""
    namespace = f"{backend}://{location.host}{port}"
    if backend in ("mysql", "mariadb"):
        port = f":{location.port or 3306}"
        return DatasetName(f"mysql://{location.host}{port}", f"{location.database}.{table}")
    schema_part = db_schema or _DEFAULT_SCHEMA.get(backend)
    parts = [p for p in (location.database, schema_part, table) if p]
    return DatasetName(namespace, ".".join(parts))


def warehouse_datasets(url: str, tables: Iterable[schema.Table]) -> list[DatasetName]:
    """The warehouse tables ``tables`` as datasets (schema ``numberyo``; on backends without
    schemas, the ``numberyo_`` prefix the loader uses)."""
    from numberyo_provider.warehouse.ddl import SCHEMA_DIALECTS, TABLE_PREFIX

    location = warehouse_location(url)
    dialect = "postgresql" if location.backend == "postgres" else location.backend
    out = []
    for t in tables:
        if location.backend == "duckdb" or dialect in SCHEMA_DIALECTS:
            out.append(table_dataset(url, t.name, schema.SCHEMA_NAME))
        else:
            out.append(table_dataset(url, TABLE_PREFIX + t.name))
    return out


def landing_datasets(parquet_path: str, tables: Iterable[schema.Table]) -> list[DatasetName]:
    """One dataset per table directory ``<parquet_path>/<table>`` of the Parquet landing."""
    root = parquet_path.strip()
    parts = urlsplit(root)
    if "://" not in root or parts.scheme == "file":
        local = _abs_path(parts.path if parts.scheme == "file" else root)
        return [DatasetName("file", posixpath.join(local, t.name)) for t in tables]
    key = parts.path.strip("/")
    return [
        DatasetName(f"{parts.scheme}://{parts.hostname or ''}", posixpath.join(key, t.name))
        for t in tables
    ]


def source_datasets(
    url: str, *, table: str | None, db_schema: str | None, sql: str | None
) -> list[DatasetName]:
    """What a check run reads: the table, or the tables its query names (parsed with
    OpenLineage's SQL parser when it is installed; an unparsable query yields none)."""
    if table:
        return [table_dataset(url, table, db_schema)]
    if not sql:
        return []
    try:
        from openlineage_sql import parse  # the parser the OpenLineage provider uses
    except ImportError:
        return []
    backend = warehouse_location(url).backend
    dialect = {"postgres": "postgres", "duckdb": "duckdb", "sqlite": "sqlite"}.get(
        backend, "generic"
    )
    try:
        meta = parse([sql], dialect=dialect)
    except Exception:  # a query the parser does not understand: no guess
        return []
    if meta is None:
        return []
    return sorted(
        {table_dataset(url, t.name, t.schema or db_schema) for t in meta.in_tables},
    )


def _abs_path(path: str) -> str:
    if path in ("", ":memory:") or path.startswith("md:"):
        return f"/{path or ':memory:'}"
    return os.path.abspath(os.path.expanduser(path))


__all__ = [
    "DatasetName",
    "api_dataset",
    "landing_datasets",
    "source_datasets",
    "table_dataset",
    "warehouse_datasets",
]
