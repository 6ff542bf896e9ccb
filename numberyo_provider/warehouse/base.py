"""What every warehouse backend offers the sync: schema, watermark, and an atomic load commit.

A load is committed in ONE database transaction: the landed Parquet files are staged, merged into
``checks`` / ``hlr_results`` / ``verify_results`` by primary key, the ``_loads`` manifest row is
written and the ``_sync_state`` watermark moved. Any exception rolls all of it back, so a reader
only ever sees the warehouse before or after a load, never in between.
"""

from __future__ import annotations

import json
import logging
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pyarrow as pa

from numberyo_provider.errors import LoadError, SchemaMismatchError
from numberyo_provider.schema import (
    CHECKS,
    DATA_TABLES,
    LOADS,
    RESULTS_TABLE_BY_TYPE,
    SYNC_STATE,
    TABLES_BY_NAME,
    Table,
)
from numberyo_provider.sync.land import LandedFile, conform

log = logging.getLogger(__name__)

#: The warehouse URL forms ``connect_warehouse`` accepts (quoted in its error messages).
ACCEPTED_URLS = (
    "duckdb:///relative/path.duckdb, duckdb:////absolute/path.duckdb, duckdb:///:memory:, or a "
    "SQLAlchemy URL such as postgresql+psycopg://user:password@host:5432/dbname"
)

#: Columns of a table that a later load may only fill, never erase with NULL: the checks list
#: endpoint sends only id, type and created_at, the POST sends more (``COALESCE(new, old)``).
#: Every other column is replaced by the newer load's value.
COALESCE_ON_MERGE: Mapping[str, tuple[str, ...]] = {
    CHECKS.name: ("source", "user_cost", "phone_number", "extra"),
}


@dataclass(frozen=True)
class Watermark:
    """The newest check loaded; ordered by ``(created_at, check_id)``."""

    check_id: int
    created_at: datetime

    def newer_than(self, other: Watermark | None) -> bool:
        if other is None:
            return True
        return (_utc(self.created_at), self.check_id) > (_utc(other.created_at), other.check_id)


@dataclass
class LoadCommit:
    """Everything one load wants committed at once."""

    load_id: str
    kind: str
    started_at: datetime
    files: list[LandedFile]
    watermark: Watermark | None
    errors: list[dict[str, Any]]
    #: fsspec options to read ``files`` when they are not local (e.g. S3 credentials/endpoint).
    storage_options: Mapping[str, Any] | None = None
    #: Which ``_sync_state`` row the watermark moves.
    stream: str = "checks"
    #: Rows of bookkeeping tables (not landed, e.g. ``check_requests``, ``rejected_numbers``) to
    #: upsert by primary key in the same transaction: table name -> Arrow tables with the table's
    #: schema, read one at a time (an iterator streams them). Later rows win over earlier ones.
    upserts: Mapping[str, Iterable[pa.Table]] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadResult:
    load_id: str
    #: Rows written (inserted or replaced) per data table, after de-duplication by key.
    rows: dict[str, int] = field(default_factory=dict)
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Warehouse(ABC):
    """A warehouse backend; use it as a context manager (``close()`` on exit)."""

    #: The URL with any password masked, for messages and logs.
    url_for_display: str

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[None]:
        """Run the operations of the ``with`` block (on this thread) on one connection.

        For a short series of operations, such as a run's preparation: DuckDB opens its file for
        each operation (so other processes get in between), which costs 10-25 ms a time; a
        server database already keeps a pool, so the default does nothing.
        """
        yield

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create schema ``numberyo`` and every table of the model if missing (idempotent).

        Columns the model gained since a table was created are added (nullable); nothing is
        dropped or retyped.
        """

    @abstractmethod
    def get_watermark(self, stream: str = "checks") -> Watermark | None: ...

    @abstractmethod
    def has_checks(self) -> bool:
        """Whether ``checks`` holds any row: a first backfill can skip asking which are loaded."""

    @abstractmethod
    def existing_check_ids(self, ids: Sequence[int]) -> set[int]:
        """Those of ``ids`` whose row is in ``checks`` and whose results are loaded.

        "Results loaded" means at least one row in the results table of the check's type
        (``other_results`` for a type this version does not model). A check whose results list
        was empty, or answered 404 or 400, is therefore never "existing": the sync asks for its
        results again, which costs a GET, never a paid check.
        """

    @abstractmethod
    def fresh_numbers(self, check_type: str, since: datetime) -> list[str]:
        """Distinct ``phone_number`` values of ``checks`` of ``check_type`` created at or after
        ``since``, as stored (E.164 digits, or their privacy pseudonym): the numbers a check run
        need not pay for again. Call :meth:`ensure_schema` first on a warehouse that may be new.
        """

    @abstractmethod
    def failed_loads_to_clean(self) -> dict[str, list[str]]:
        """Load id -> landed files, for failed loads whose files were not deleted yet (to delete
        with ``land.remove_files``, then :meth:`mark_loads_cleaned`), oldest first."""

    @abstractmethod
    def mark_loads_cleaned(self, load_ids: Sequence[str]) -> None:
        """Set ``cleaned_at`` of these failed loads: their files are gone, stop listing them."""

    def commit_load(self, commit: LoadCommit) -> LoadResult:
        """Merge the load's files and write manifest + watermark, all in one transaction.

        Idempotent: committing the same files again leaves the same rows (``_loaded_at`` moves).
        Raises :class:`LoadError` (or the database's own error) with nothing committed.
        """
        check_load_id(commit.load_id)
        groups = files_by_table(commit.files)
        upserts = upsert_tables(commit.upserts)
        with self._load_transaction(commit) as conn:
            now = datetime.now(UTC)
            rows = {t.name: 0 for t in DATA_TABLES}
            for table in DATA_TABLES:
                paths = groups.get(table)
                if paths:
                    rows[table.name] = self._merge_files(conn, table, paths, commit, now)
            for table, batches in upserts:
                rows[table.name] = self._upsert_batches(conn, table, batches, commit.load_id)
            self._write_load_row(
                conn,
                load_row(
                    commit.load_id,
                    commit.kind,
                    "committed",
                    commit.started_at,
                    now,
                    commit.files,
                    rows,
                    commit.errors,
                ),
                overwrite_committed=True,
            )
            if commit.watermark is not None:
                self._move_watermark(conn, commit.stream, commit.watermark, commit.load_id, now)
        return LoadResult(load_id=commit.load_id, rows=rows, finished_at=now)

    def record_failed_load(
        self,
        load_id: str,
        kind: str,
        started_at: datetime,
        files: list[LandedFile],
        errors: list[dict[str, Any]],
    ) -> None:
        """Note a load that did not commit, so its files can be cleaned up later.

        A load already recorded as committed is left alone (its files hold committed rows).
        """
        check_load_id(load_id)
        with self._load_transaction(None) as conn:
            self._write_load_row(
                conn,
                load_row(
                    load_id,
                    kind,
                    "failed",
                    started_at,
                    datetime.now(UTC),
                    own_files(load_id, files),
                    {},
                    errors,
                ),
                overwrite_committed=False,
            )

    # -- what each backend supplies to commit_load / record_failed_load -----------------

    @abstractmethod
    def _load_transaction(self, commit: LoadCommit | None) -> AbstractContextManager[Any]:
        """The transaction a load (or a failed-load note) is written in, serialised with other
        writers; ``commit`` is None for a failed-load note."""

    @abstractmethod
    def _merge_files(
        self, conn: Any, table: Table, paths: list[str], commit: LoadCommit, loaded_at: datetime
    ) -> int:
        """Merge one data table's landed files by key; returns distinct rows written. Raises
        :class:`LoadError` naming the load and table when the files cannot be merged."""

    @abstractmethod
    def _upsert_batches(
        self, conn: Any, table: Table, batches: Iterable[pa.Table], load_id: str
    ) -> int:
        """Insert-or-replace rows of a bookkeeping table by primary key; returns rows written."""

    @abstractmethod
    def _write_load_row(
        self, conn: Any, row: Mapping[str, Any], *, overwrite_committed: bool
    ) -> None:
        """Insert or replace the ``_loads`` row ``row`` (every column, see :func:`load_row`);
        a committed load is only replaced when ``overwrite_committed``."""

    @abstractmethod
    def _move_watermark(
        self, conn: Any, stream: str, watermark: Watermark, load_id: str, now: datetime
    ) -> None: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """The backend's connection inside one transaction (commit on success, else rollback).

        DuckDB: a ``duckdb.DuckDBPyConnection``; SQL databases: a ``sqlalchemy.Connection``. For
        other modules of this package (e.g. the check ledger) that need their own statements.
        """

    @abstractmethod
    def qualified(self, table: str) -> str:
        """The quoted, qualified name of model table ``table`` in this backend's SQL."""

    @abstractmethod
    def close(self) -> None: ...


# --- helpers shared by the backends --------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """Naive datetimes from databases without time zones are UTC by construction."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


utc = _utc


def files_by_table(files: Sequence[LandedFile]) -> dict[Table, list[str]]:
    """The commit's files grouped by data table, in landing order; unknown tables are an error."""
    by_name = {t.name: t for t in DATA_TABLES}
    out: dict[Table, list[str]] = {}
    for f in files:
        table = by_name.get(f.table)
        if table is None:
            raise LoadError(
                f"landed file {f.path} is for table {f.table!r}, which is not a data table "
                f"({', '.join(by_name)})"
            )
        paths = out.setdefault(table, [])
        if f.path not in paths:
            paths.append(f.path)
    return out


def upsert_tables(
    upserts: Mapping[str, Iterable[pa.Table]],
) -> list[tuple[Table, Iterable[pa.Table]]]:
    """``LoadCommit.upserts`` checked: model tables that are not landed, not the load's own
    bookkeeping (``_loads``, ``_sync_state``)."""
    out: list[tuple[Table, Iterable[pa.Table]]] = []
    for name, batches in upserts.items():
        table = TABLES_BY_NAME.get(name)
        if table is None or table.landed or table in (LOADS, SYNC_STATE):
            allowed = [
                t.name
                for t in TABLES_BY_NAME.values()
                if not t.landed and t not in (LOADS, SYNC_STATE)
            ]
            raise LoadError(
                f"cannot upsert rows into {name!r}: only {', '.join(allowed)} take rows this way "
                "(data tables are loaded from landed files)"
            )
        out.append((table, batches))
    return out


def upsert_rows(table: Table, data: pa.Table | pa.RecordBatch) -> pa.Table:
    """One batch of upsert rows with exactly ``table``'s schema (duplicate keys kept)."""
    try:
        return conform(table, data)
    except SchemaMismatchError as exc:
        raise LoadError(f"rows for {table.name}: {exc}") from exc


def upsert_batch(table: Table, data: pa.Table | pa.RecordBatch) -> pa.Table:
    """One batch of upsert rows with exactly ``table``'s schema, one row per key (the last)."""
    conformed = upsert_rows(table, data)
    keys = list(zip(*(conformed.column(k).to_pylist() for k in table.primary_key), strict=True))
    if len(set(keys)) == len(keys):
        return conformed
    last = {key: i for i, key in enumerate(keys)}
    return conformed.take(sorted(last.values()))


#: What a database says about every statement after the first failure of a transaction:
#: DuckDB's TransactionException text and PostgreSQL's SQLSTATE 25P02 (in_failed_sql_transaction).
_ABORTED_MARKERS = ("current transaction is aborted", "infailedsqltransaction")


def is_aborted_transaction(exc: BaseException) -> bool:
    """Whether ``exc`` only says that an earlier statement of the transaction failed."""
    orig = getattr(exc, "orig", None)
    for candidate in (exc, orig):
        if candidate is None:
            continue
        if (getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)) == "25P02":
            return True
        text = f"{type(candidate).__name__}: {candidate}".lower()
        if any(marker in text for marker in _ABORTED_MARKERS):
            return True
    return False


def first_error(exc: BaseException) -> BaseException:
    """The error that aborted the transaction, when ``exc`` is only the database's later
    "current transaction is aborted" (raised by a statement run after the failure, e.g. in a
    ``finally``): the first error is in ``exc``'s context chain. Otherwise ``exc`` itself."""
    if not is_aborted_transaction(exc):
        return exc
    seen: set[int] = {id(exc)}
    candidate = exc.__context__
    while candidate is not None and id(candidate) not in seen:
        seen.add(id(candidate))
        if not is_aborted_transaction(candidate):
            return candidate
        candidate = candidate.__context__
    return exc


def results_table_for(check_type: str) -> Table | None:
    return RESULTS_TABLE_BY_TYPE.get(check_type)


def load_row(
    load_id: str,
    kind: str,
    status: str,
    started_at: datetime,
    finished_at: datetime,
    files: Sequence[LandedFile],
    rows: Mapping[str, int],
    errors: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """A ``_loads`` row, every column of the schema in order (a new row is not cleaned yet)."""
    row = {
        "load_id": load_id,
        "kind": kind,
        "status": status,
        "started_at": _utc(started_at),
        "finished_at": finished_at,
        "files": json.dumps([f.path for f in files]),
        "rows": json.dumps(dict(rows)),
        "errors": json.dumps(list(errors), default=str),
        "cleaned_at": None,
    }
    return {name: row[name] for name in LOADS.schema.names}


def paths_from_manifest(value: Any) -> list[str]:
    """The paths of one ``_loads.files`` value (JSON text or an already decoded list)."""
    if value is None:
        return []
    items = json.loads(value) if isinstance(value, str | bytes) else value
    out: list[str] = []
    for item in items or []:
        path = item.get("path") if isinstance(item, Mapping) else item
        if isinstance(path, str) and path not in out:
            out.append(path)
    return out


def own_files(load_id: str, files: Sequence[LandedFile]) -> list[LandedFile]:
    """The files named for ``load_id``: ``<load_id>-<seq>.parquet``, or a sub-load's
    ``<load_id>-<suffix>-<seq>.parquet`` (e.g. a repair lander of the same run).

    A failed load's files are deleted later: recording another load's file there could delete
    committed data, so such files are left out (and logged).
    """
    mine = [f for f in files if posixpath.basename(f.path).startswith(f"{load_id}-")]
    others = [f.path for f in files if f not in mine]
    if others:
        log.warning(
            "load %s: not recording %d file(s) named for another load as failed: %s",
            load_id,
            len(others),
            ", ".join(others[:5]),
        )
    return mine


def check_load_id(load_id: str) -> None:
    if not load_id or not isinstance(load_id, str):
        raise LoadError(f"a load needs a non-empty load_id, got {load_id!r}")
