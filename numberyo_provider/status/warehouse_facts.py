"""The facts a warehouse holds, read without writing: the warehouse side of the status report.

``_sync_state`` (the watermark), ``_loads`` (one row per load), the row count of every table,
checks whose results never loaded and the credits of the loaded checks. A DuckDB file is opened
read-only (and must exist), a SQLAlchemy database in a read-only transaction; whatever fails
becomes one :class:`~numberyo_provider.errors.StatusError` line (no database, not a numberyo
warehouse, cannot read), never a traceback.

Each backend's own modules are imported by its reader: the DuckDB file lock (and DuckDB) for a
DuckDB file, :class:`~numberyo_provider.warehouse.sql.SqlWarehouse` (and SQLAlchemy) for the rest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from numberyo_provider import schema
from numberyo_provider.errors import ConfigurationError, NumberYoError, StatusError
from numberyo_provider.status.driver_values import _as_date, _json, _one_line, _utc
from numberyo_provider.status.report import SAMPLE, CreditDay, LoadInfo, UnloadedResults
from numberyo_provider.warehouse import mask_url
from numberyo_provider.warehouse.ddl import duckdb_qualified


class _WarehouseReader:
    """Portable read-only queries over a DuckDB connection or a SQLAlchemy connection."""

    def __init__(
        self,
        run: Callable[[str, dict[str, Any]], list[tuple[Any, ...]]],
        qualified: Callable[[str], str],
        day_of: Callable[[str], str],
        label: str,
    ) -> None:
        self._run = run  # (sql, params) -> list of tuples; params as a dict, ":name" style
        self._q = qualified  # model table name -> quoted, qualified name
        self._day = day_of  # column SQL -> SQL of its UTC date
        self.label = label

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self._run(sql, dict(params or {})))

    def watermark(self) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT watermark_check_id, watermark_created_at, load_id, updated_at "
            f"FROM {self._q(schema.SYNC_STATE.name)} WHERE stream = 'checks'"
        )
        if not rows or rows[0][0] is None:
            return None
        check_id, created, load_id, updated = rows[0]
        return {
            "check_id": int(check_id),
            "created_at": _utc(created),
            "load_id": str(load_id),
            "updated_at": _utc(updated),
        }

    def table_rows(self) -> dict[str, int]:
        tables = [*schema.DATA_TABLES, schema.CHECK_REQUESTS, schema.REJECTED_NUMBERS]
        return {
            t.name: int(self._rows(f"SELECT count(*) FROM {self._q(t.name)}")[0][0]) for t in tables
        }

    def count_loads(self) -> int:
        return int(self._rows(f"SELECT count(*) FROM {self._q(schema.LOADS.name)}")[0][0])

    _LOAD_COLUMNS = (
        "load_id, kind, status, started_at, finished_at, files, rows, errors, cleaned_at"
    )

    def loads(self, limit: int) -> list[LoadInfo]:
        if limit == 0:
            return []
        rows = self._rows(
            f"SELECT {self._LOAD_COLUMNS} FROM {self._q(schema.LOADS.name)} "
            f"ORDER BY started_at DESC, load_id DESC LIMIT {int(limit)}"
        )
        return [_load_info(r) for r in rows]

    def latest_by_kind(self) -> dict[str, LoadInfo]:
        loads = self._q(schema.LOADS.name)
        kinds = [str(r[0]) for r in self._rows(f"SELECT DISTINCT kind FROM {loads}")]
        out: dict[str, LoadInfo] = {}
        for kind in sorted(kinds):
            rows = self._rows(
                f"SELECT {self._LOAD_COLUMNS} FROM {loads} WHERE kind = :kind "
                "ORDER BY started_at DESC, load_id DESC LIMIT 1",
                {"kind": kind},
            )
            out[kind] = _load_info(rows[0])
        return out

    def failed_not_cleaned(self) -> list[LoadInfo]:
        rows = self._rows(
            f"SELECT {self._LOAD_COLUMNS} FROM {self._q(schema.LOADS.name)} "
            "WHERE status = 'failed' AND cleaned_at IS NULL ORDER BY started_at, load_id"
        )
        # A failed load that landed nothing has nothing to clean.
        return [info for info in map(_load_info, rows) if info.files]

    def unloaded_results(self) -> list[UnloadedResults]:
        out: list[UnloadedResults] = []
        checks = self._q(schema.CHECKS.name)
        for check_type, table in schema.RESULTS_TABLE_BY_TYPE.items():
            where = (
                f"FROM {checks} c WHERE c.type = :type AND NOT EXISTS "
                f"(SELECT 1 FROM {self._q(table.name)} r WHERE r.check_id = c.check_id)"
            )
            count = int(self._rows(f"SELECT count(*) {where}", {"type": check_type})[0][0])
            if not count:
                continue
            sample = self._rows(
                f"SELECT c.check_id {where} ORDER BY c.check_id LIMIT {SAMPLE}",
                {"type": check_type},
            )
            out.append(UnloadedResults(check_type, count, [int(r[0]) for r in sample]))
        return out

    def credits(self, since: datetime) -> list[CreditDay]:
        day = self._day("created_at")
        rows = self._rows(
            f"SELECT {day} AS day, type, count(*), count(user_cost), sum(user_cost) "
            f"FROM {self._q(schema.CHECKS.name)} WHERE created_at >= :since "
            f"GROUP BY {day}, type ORDER BY 1, 2",
            {"since": since},
        )
        return [
            CreditDay(
                day=_as_date(r[0]),
                check_type=str(r[1]),
                checks=int(r[2]),
                credits=Decimal(str(r[4] if r[4] is not None else 0)).quantize(Decimal("0.01")),
                unpriced=int(r[2]) - int(r[3]),
            )
            for r in rows
        ]


@contextmanager
def _open_warehouse(url: str, lock_timeout: float) -> Iterator[_WarehouseReader]:
    shown = mask_url(url)
    try:
        if url.split(":", 1)[0].lower() == "duckdb":
            with _duckdb_reader(url, shown, lock_timeout) as reader:
                yield reader
        else:
            with _sql_reader(url, shown) as reader:
                yield reader
    except NumberYoError:
        raise
    except Exception as exc:
        text = str(getattr(exc, "orig", None) or exc)
        if _sqlstate(exc) == "3D000" or ("database" in text and "does not exist" in text):
            raise StatusError(
                f"no database at {shown}: check the URL (nothing was created)"
            ) from None
        if _is_missing_table(exc):
            raise StatusError(
                f"{shown} holds no numberyo tables (or an older layout): run `numberyo sync` "
                "or `numberyo check` against it first"
            ) from None
        raise StatusError(f"cannot read {shown}: {_one_line(exc)}") from None


@contextmanager
def _duckdb_reader(url: str, shown: str, lock_timeout: float) -> Iterator[_WarehouseReader]:
    from numberyo_provider.warehouse.lock import connect_with_retry

    match = re.fullmatch(r"duckdb:///([^?#]+)(?:\?[^#]*)?", url, flags=re.IGNORECASE)
    if match is None or match.group(1) == ":memory:":
        raise ConfigurationError(
            f"bad DuckDB warehouse URL {shown!r}: use duckdb:///relative/path.duckdb or "
            "duckdb:////absolute/path.duckdb (an in-memory warehouse has no status)"
        )
    path = os.path.abspath(match.group(1))
    if not os.path.isfile(path):
        raise StatusError(f"no DuckDB warehouse at {path}: check the path (nothing was created)")
    con = connect_with_retry(path, lock_timeout=lock_timeout, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")

        def run(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
            sql, values = _named_to_dollar(sql, params)
            return con.execute(sql, values).fetchall()

        yield _WarehouseReader(
            run,
            lambda name: duckdb_qualified(schema.TABLES_BY_NAME[name]),
            lambda col: f"CAST({col} AS DATE)",
            shown,
        )
    finally:
        con.close()


@contextmanager
def _sql_reader(url: str, shown: str) -> Iterator[_WarehouseReader]:
    import sqlalchemy as sa

    from numberyo_provider.warehouse.sql import SqlWarehouse

    wh = SqlWarehouse(url)  # builds an engine only; nothing is connected or created yet
    try:
        if wh.dialect == "sqlite":
            database = wh.engine.url.database or ""
            if not database or database == ":memory:" or not os.path.isfile(database):
                raise StatusError(
                    f"no SQLite warehouse at {database or ':memory:'}: check the path "
                    "(nothing was created)"
                )
        with wh.engine.connect() as conn, conn.begin():
            if wh.dialect == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")

            def run(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
                return [tuple(r) for r in conn.execute(sa.text(sql), params)]

            day = (
                (lambda col: f"CAST({col} AS DATE)")
                if wh.dialect == "postgresql"
                else (lambda col: f"date({col})")
            )
            yield _WarehouseReader(run, wh.qualified, day, shown)
    finally:
        wh.close()


def _named_to_dollar(sql: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``:name`` parameters (SQLAlchemy style) as DuckDB's ``$name``."""
    for name in params:
        sql = sql.replace(f":{name}", f"${name}")
    return sql, dict(params)


def _load_info(row: Sequence[Any]) -> LoadInfo:
    load_id, kind, status, started, finished, files, rows, errors, cleaned = row
    started_at = _utc(started)
    finished_at = _utc(finished) if finished is not None else None
    error_list = [e for e in _json(errors) or [] if isinstance(e, Mapping)]
    samples = []
    for err in error_list[-3:]:
        where = f"check {err['check_id']}: " if err.get("check_id") is not None else ""
        status_code = f"{err['status']} " if err.get("status") is not None else ""
        samples.append(_one_line(f"{where}{status_code}{err.get('message', '')}")[:300])
    return LoadInfo(
        load_id=str(load_id),
        kind=str(kind),
        status=str(status),
        started_at=started_at,
        finished_at=finished_at,
        duration_s=(round((finished_at - started_at).total_seconds(), 3) if finished_at else None),
        rows={str(k): int(v) for k, v in (_json(rows) or {}).items()},
        files=len(_json(files) or []),
        errors=len(error_list),
        error_samples=samples,
        cleaned_at=_utc(cleaned) if cleaned is not None else None,
    )


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _is_missing_table(exc: BaseException) -> bool:
    """A table or schema of the model is missing (PostgreSQL 42P01 / 3F000, DuckDB's catalog
    error, SQLite's "no such table")."""
    import duckdb  # here: only to recognise its error (a SQL database's status needs no DuckDB)

    if _sqlstate(exc) in ("42P01", "3F000"):
        return True
    return isinstance(exc, duckdb.CatalogException) or "no such table" in str(exc).lower()
