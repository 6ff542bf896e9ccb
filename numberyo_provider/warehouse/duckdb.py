"""The DuckDB warehouse: loads landed Parquet natively (``read_parquet``), one transaction per load.

DuckDB allows a single writing process, so the file is opened only for one operation at a time and
closed right after (readers get in between loads); a busy file is retried until ``lock_timeout``
(see :mod:`.lock`). ``:memory:`` keeps one connection for the warehouse's lifetime.

Merge, per data table, inside the load's transaction:

1. one ``read_parquet`` over the load's explicit file list (``union_by_name``, no Hive columns),
   every column ``CAST`` to the target type (JSON is validated by the cast);
2. if a key appears more than once in the load, rows are staged with their occurrence number
   (in file and row order) and merged generation by generation, exactly as if they had come in
   successive loads;
3. rows whose key is being loaded are deleted, then inserted anew; for ``checks`` the columns of
   :data:`~.base.COALESCE_ON_MERGE` keep their old value where the new one is NULL.

Bookkeeping rows (``check_requests``, ``rejected_numbers``: a row per source number per run) are
staged in a TEMP table, then merged the same way (delete + insert by key): no index, so their
memory is bounded by ``memory_limit`` (DuckDB spills), however many rows a run leaves.

Files on object stores are read through the fsspec filesystem registered on the connection (DuckDB's
httpfs extension would need a download). A failed transaction raises its first error (DuckDB
answers every later statement with "Current transaction is aborted"); running out of memory says
which URL setting to raise.

Why one module of about 740 lines: it is one backend, one class implementing
:class:`~numberyo_provider.warehouse.base.Warehouse`; its connection handling, staging and merge
SQL share one transaction per load, and splitting them by method would scatter that transaction.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pyarrow as pa

from numberyo_provider.errors import ConfigurationError, LoadError, WarehouseError
from numberyo_provider.private_files import make_private_dirs
from numberyo_provider.schema import (
    ALL_TABLES,
    CHECKS,
    LOADS,
    OTHER_RESULTS,
    RESULTS_TABLE_BY_TYPE,
    SCHEMA_NAME,
    SYNC_STATE,
    TABLES_BY_NAME,
    Table,
    description,
)
from numberyo_provider.warehouse import ddl
from numberyo_provider.warehouse.base import (
    COALESCE_ON_MERGE,
    LoadCommit,
    Warehouse,
    Watermark,
    first_error,
    paths_from_manifest,
    upsert_rows,
    utc,
)
from numberyo_provider.warehouse.lock import connect_with_retry

log = logging.getLogger(__name__)

MEMORY = ":memory:"
#: Bounds a load's memory; DuckDB spills to disk (``<file>.tmp``) beyond it. With the row-group
#: size below, a 1M-row load stays within 1.15x of a bare CTAS and a 100,000-check sync within
#: 50 MB of a 10,000-check one (docs/benchmarks.md); raise it in the URL for big merges.
DEFAULT_MEMORY_LIMIT = "64MB"
#: Rows per row group of what we write (DuckDB's default is 122,880). A transaction keeps its
#: unfinished row groups in memory until commit; smaller groups go to the file sooner.
DEFAULT_ROW_GROUP_SIZE = 16_384
#: Files one merge statement reads at most. DuckDB holds per-file reader state for every file of
#: a ``read_parquet`` list at once (about 30 KB each): 474 one-day files of a 3,000-check backfill
#: exceeded a 16 MB limit, 1,254 the default 64 MB. Larger lists are merged group by group.
MAX_FILES_PER_MERGE = 64
#: Rows one merge statement reads at most (a larger file is merged alone). Re-loading rows the
#: table already holds (a full refresh) deletes them first, and one DELETE of 2,000,000 keys ran
#: out of the default 64MB; groups of 250,000 stay well within it, in one transaction still.
MAX_ROWS_PER_MERGE = 250_000
#: Our own URL option: an ATTACH option rather than a DuckDB setting.
ROW_GROUP_SIZE_OPTION = "row_group_size"
_Q = ddl.quote_ident
_STAGE = "__numberyo_stage"
_OLD = "__numberyo_old"
_UPSERT_STAGE = "__numberyo_upsert_stage"
_ORD = "__ord"


class DuckDBWarehouse(Warehouse):
    """A DuckDB database file (or ``:memory:``) holding the ``numberyo`` schema."""

    def __init__(
        self, path: str, *, lock_timeout: float = 60.0, config: Mapping[str, str] | None = None
    ) -> None:
        # DuckDB names the catalog after the file; a file called like the schema makes every
        # `numberyo.<table>` ambiguous (catalog or schema?) for us, for dbt and for analysts.
        if path != MEMORY and Path(path).stem.lower() == SCHEMA_NAME:
            raise ConfigurationError(
                f"DuckDB warehouse file {path!r} is named like the schema {SCHEMA_NAME!r}: DuckDB "
                f"would read `{SCHEMA_NAME}.checks` as ambiguous. Use another file name, e.g. "
                f"{str(Path(path).with_name('warehouse.duckdb'))!r}."
            )
        self.path = path if path == MEMORY else os.path.abspath(path)
        #: DuckDB settings for our connections (from the URL's query); a load's memory otherwise
        #: grows with its size up to DuckDB's default of 80% of RAM.
        settings = dict(config or {})
        self.row_group_size = _row_group_size(settings.pop(ROW_GROUP_SIZE_OPTION, None))
        spill = {} if path == MEMORY else {"temp_directory": f"{self.path}.tmp"}
        self.config = {"memory_limit": DEFAULT_MEMORY_LIMIT, **spill, **settings}
        self.lock_timeout = lock_timeout
        self.url_for_display = f"duckdb:///{path}"
        self._memory: duckdb.DuckDBPyConnection | None = (
            _connect(MEMORY, self.config) if path == MEMORY else None
        )
        #: The connection of an open :meth:`session`, and the thread it belongs to.
        self._session: tuple[int, duckdb.DuckDBPyConnection] | None = None

    # -- connections ----------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[None]:
        """The block's operations on this thread share one connection (see the base class).
        Another thread's operation meanwhile opens its own, which waits for the file like another
        process would, until the block ends."""
        if self._memory is not None or self._session_connection() is not None:
            yield  # one connection already: the in-memory database's, or an outer session's
            return
        with self.connection() as con:
            self._session = (threading.get_ident(), con)
            try:
                yield
            finally:
                self._session = None

    def _session_connection(self) -> duckdb.DuckDBPyConnection | None:
        """The connection of this thread's open session, if any."""
        session = self._session
        return session[1] if session is not None and session[0] == threading.get_ident() else None

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation, closed afterwards so other processes can get in
        (within a :meth:`session` on this thread, the session's)."""
        if self._memory is not None:
            yield self._memory
            return
        shared = self._session_connection()
        if shared is not None:
            yield shared
            return
        directory = os.path.dirname(self.path)
        # DuckDB makes its spill directory 0755 and removes it at close; one we make is 0700.
        spill = self.config.get("temp_directory") or ""
        made_spill = bool(spill) and not os.path.exists(spill)
        try:
            if directory:
                make_private_dirs(directory)
            if made_spill:
                make_private_dirs(spill)
        except OSError as exc:
            raise WarehouseError(
                f"cannot create the DuckDB warehouse {self.path!r}: {exc.strerror or exc} "
                f"({exc.filename}). Choose a path in a directory you can write to."
            ) from exc
        con = connect_with_retry(
            self.path,
            lock_timeout=self.lock_timeout,
            config=self.config,
            row_group_size=self.row_group_size,
        )
        try:
            yield con
        finally:
            con.close()
            if made_spill:
                with suppress(OSError):  # not empty: another connection still spills there
                    os.rmdir(spill)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction; a failure is raised as its first, real error (not DuckDB's later
        "Current transaction is aborted"), and running out of memory says what to raise."""
        with self.connection() as con:
            con.begin()
            try:
                yield con
            except BaseException as exc:
                _rollback_quietly(con)
                self._raise_cause(exc)
                raise
            try:
                con.commit()
            except BaseException as exc:
                _rollback_quietly(con)
                self._raise_cause(exc)
                raise

    def _raise_cause(self, exc: BaseException) -> None:
        """Raise what the user must see for ``exc``, or return to let it propagate as it is."""
        first = first_error(exc)
        if isinstance(first, duckdb.OutOfMemoryException):
            raise WarehouseError(
                f"{self.url_for_display}: nothing was committed: {self.explain(first)}"
            ) from first
        if first is not exc:
            raise first.with_traceback(first.__traceback__) from None

    def explain(self, exc: BaseException) -> str:
        """DuckDB's error in one line; out of memory also says how to raise the limit."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, duckdb.OutOfMemoryException):
            limit = self.config.get("memory_limit", DEFAULT_MEMORY_LIMIT)
            example = f"duckdb:///{self.path}?memory_limit=1GB"
            return (
                f"{text} (DuckDB's memory_limit is {limit}; raise it in the warehouse URL, e.g. "
                f"{example})"
            )
        return text

    def qualified(self, table: str) -> str:
        return ddl.duckdb_qualified(TABLES_BY_NAME[table])

    def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement (DuckDB's ``?`` / ``$name`` parameters) in its own transaction and
        return its rows. For tests and tools: not part of the :class:`Warehouse` interface, whose
        callers use its domain methods."""
        with self.transaction() as con:
            con.execute(sql, params)
            return con.fetchall()

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None

    # -- schema ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        with self.transaction() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_Q(SCHEMA_NAME)}")
            existing: dict[str, set[str]] = {}
            rows = con.execute(
                "SELECT table_name, column_name FROM duckdb_columns() "
                "WHERE schema_name = ? AND database_name = current_database()",
                [SCHEMA_NAME],
            ).fetchall()
            for table_name, column in rows:
                existing.setdefault(table_name, set()).add(column)
            for table_name in _keyed_tables(con):
                table = TABLES_BY_NAME.get(table_name)
                if table is not None and not ddl.duckdb_declares_key(table):
                    _drop_primary_key(con, table)
            for table in ALL_TABLES:
                have = existing.get(table.name)
                if have is None:
                    con.execute(ddl.duckdb_create_table(table))
                    for statement in ddl.duckdb_comments(table):
                        con.execute(statement)
                    continue
                for f in table.schema:
                    if f.name in have:
                        continue
                    if not f.nullable:
                        raise WarehouseError(
                            f"{self.qualified(table.name)} in {self.path} lacks the required "
                            f"column {f.name}; migrate it (add the column and fill it) first"
                        )
                    con.execute(ddl.duckdb_add_column(table, f))
                    con.execute(
                        f"COMMENT ON COLUMN {self.qualified(table.name)}.{_Q(f.name)} IS "
                        f"{ddl.quote_literal(description(f))}"
                    )

    # -- reads ----------------------------------------------------------------------------

    def get_watermark(self, stream: str = "checks") -> Watermark | None:
        with self._reading() as con:
            row = con.execute(
                "SELECT watermark_check_id, watermark_created_at FROM "
                f"{self.qualified(SYNC_STATE.name)} WHERE stream = ?",
                [stream],
            ).fetchone()
        if row is None or row[0] is None or row[1] is None:
            return None
        return Watermark(check_id=int(row[0]), created_at=utc(row[1]))

    def has_checks(self) -> bool:
        with self._reading() as con:
            row = con.execute(f"SELECT 1 FROM {self.qualified(CHECKS.name)} LIMIT 1").fetchone()
        return row is not None

    def existing_check_ids(self, ids: Sequence[int]) -> set[int]:
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return set()
        with self._reading() as con:
            rows = con.execute(
                f"SELECT c.check_id FROM {self.qualified(CHECKS.name)} c "
                "WHERE c.check_id IN (SELECT unnest($ids::BIGINT[])) "
                f"AND {_results_loaded('c')}",
                {"ids": wanted},
            ).fetchall()
        return {int(r[0]) for r in rows}

    def fresh_numbers(self, check_type: str, since: datetime) -> list[str]:
        with self._reading() as con:
            rows = con.execute(
                f"SELECT DISTINCT phone_number FROM {self.qualified(CHECKS.name)} "
                "WHERE type = ? AND created_at >= ? AND phone_number IS NOT NULL",
                [check_type, since],
            ).fetchall()
        return [str(r[0]) for r in rows]

    def failed_loads_to_clean(self) -> dict[str, list[str]]:
        with self._reading() as con:
            rows = con.execute(
                f"SELECT load_id, files FROM {self.qualified(LOADS.name)} WHERE status = 'failed' "
                "AND cleaned_at IS NULL ORDER BY started_at, load_id"
            ).fetchall()
        return {str(r[0]): paths_from_manifest(r[1]) for r in rows}

    def mark_loads_cleaned(self, load_ids: Sequence[str]) -> None:
        if not load_ids:
            return
        with self.transaction() as con:
            con.execute(
                f"UPDATE {self.qualified(LOADS.name)} SET cleaned_at = now() "
                "WHERE status = 'failed' AND load_id IN (SELECT unnest($ids::VARCHAR[]))",
                {"ids": list(load_ids)},
            )

    @contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            with self.transaction() as con:
                yield con
        except duckdb.CatalogException as exc:
            raise WarehouseError(
                f"{self.url_for_display} has no numberyo tables yet ({str(exc).splitlines()[0]}); "
                "call ensure_schema() first"
            ) from exc

    # -- loads ----------------------------------------------------------------------------

    @contextmanager
    def _load_transaction(self, commit: LoadCommit | None) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.transaction() as con:
            if commit is not None:
                _register_filesystems(con, [f.path for f in commit.files], commit)
            yield con

    def _merge_files(
        self,
        con: duckdb.DuckDBPyConnection,
        table: Table,
        paths: list[str],
        commit: LoadCommit,
        loaded_at: datetime,
    ) -> int:
        try:
            groups = _merge_groups(paths, {f.path: f.rows for f in commit.files})
            if len(groups) == 1:
                return self._merge(con, table, paths, commit.load_id, loaded_at)
            # Many files (landed by an older version one per day, or by many shards) or many
            # rows: merged a group at a time, in landing order, exactly as successive loads
            # would be. The rows this load wrote are then counted once, by their lineage column.
            for group in groups:
                self._merge(con, table, group, commit.load_id, loaded_at)
            row = con.execute(
                f"SELECT count(*) FROM {self.qualified(table.name)} WHERE {_Q('_load_id')} = ?",
                [commit.load_id],
            ).fetchone()
            return int(row[0]) if row else 0
        except duckdb.Error as exc:
            raise LoadError(
                f"load {commit.load_id}: merging {len(paths)} file(s) into "
                f"{self.qualified(table.name)} failed, nothing was committed: "
                f"{self.explain(first_error(exc))}"
            ) from exc

    # -- internals ------------------------------------------------------------------------

    def _upsert_batches(
        self,
        con: duckdb.DuckDBPyConnection,
        table: Table,
        batches: Iterable[pa.Table],
        load_id: str,
    ) -> int:
        """Insert-or-replace rows of a bookkeeping table by key, within bounded memory.

        The batches are appended to a TEMP table (DuckDB spills it to disk past
        ``memory_limit``), then the target's rows with those keys are deleted and the staged
        rows inserted: two set statements, no index, so a million ``check_requests`` rows fit in
        the default 64MB. A key staged more than once keeps its last row.
        """
        target = self.qualified(table.name)
        try:
            written = self._stage_upserts(con, table, batches)
            if written:
                self._apply_upserts(con, table)
        except duckdb.Error as exc:
            raise LoadError(
                f"load {load_id}: upserting rows into {target} failed, nothing was committed: "
                f"{self.explain(first_error(exc))}"
            ) from exc
        return written

    def _stage_upserts(
        self, con: duckdb.DuckDBPyConnection, table: Table, batches: Iterable[pa.Table]
    ) -> int:
        """Append every batch to the TEMP table ``_UPSERT_STAGE``, one row per key (the last);
        returns the rows staged."""
        columns = ", ".join(
            f"{_Q(f.name)} {ddl.duckdb_type(f)}{'' if f.nullable else ' NOT NULL'}"
            for f in table.schema
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_UPSERT_STAGE} ({columns}, {_ORD} BIGINT NOT NULL)"
        )
        staged = 0
        for batch in batches:
            data = upsert_rows(table, batch)
            if not data.num_rows:
                continue
            data = data.append_column(
                _ORD, pa.array(range(staged, staged + data.num_rows), pa.int64())
            )
            # Not con.register(): DuckDB kept every registered table's Arrow buffers alive
            # until the connection closed (+250 MB over a million rows); this releases them.
            con.from_arrow(data).insert_into(_UPSERT_STAGE)
            staged += data.num_rows
            del data
        if not staged:
            con.execute(f"DROP TABLE {_UPSERT_STAGE}")
            return 0
        # The same key twice: keep its last row. GROUP BY spills to disk past memory_limit
        # (count(DISTINCT ...) and a self-join failed at a limit where it passes).
        keys = ", ".join(_Q(k) for k in table.primary_key)
        twice = con.execute(
            f"SELECT 1 FROM {_UPSERT_STAGE} GROUP BY {keys} HAVING count(*) > 1 LIMIT 1"
        ).fetchone()
        if twice is None:
            return staged
        con.execute(
            f"DELETE FROM {_UPSERT_STAGE} WHERE {_ORD} NOT IN (SELECT max({_ORD}) FROM "
            f"{_UPSERT_STAGE} GROUP BY {keys})"
        )
        row = con.execute(f"SELECT count(*) FROM {_UPSERT_STAGE}").fetchone()
        return int(row[0]) if row else 0

    def _apply_upserts(self, con: duckdb.DuckDBPyConnection, table: Table) -> None:
        target = self.qualified(table.name)
        keys = [_Q(k) for k in table.primary_key]
        match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        names = ", ".join(_Q(n) for n in table.schema.names)
        con.execute(
            f"DELETE FROM {target} t USING (SELECT {', '.join(keys)} FROM {_UPSERT_STAGE}) s "
            f"WHERE {match}"
        )
        con.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {_UPSERT_STAGE}")
        con.execute(f"DROP TABLE {_UPSERT_STAGE}")

    def _merge(
        self,
        con: duckdb.DuckDBPyConnection,
        table: Table,
        paths: list[str],
        load_id: str,
        loaded_at: datetime,
    ) -> int:
        files = [_local_path(p) for p in paths]
        source = "read_parquet($files, union_by_name = true, hive_partitioning = false"
        described = con.execute(f"SELECT * FROM {source}) LIMIT 0", {"files": files}).description
        present = {d[0] for d in described or []}
        _check_columns(table, present, load_id)
        data = [f for f in table.schema if f.name not in ddl.LINEAGE_COLUMNS]
        casts = ", ".join(
            f"CAST({_Q(f.name) if f.name in present else 'NULL'} AS {ddl.duckdb_type(f)}) "
            f"AS {_Q(f.name)}"
            for f in data
        )
        keys = [_Q(k) for k in table.primary_key]
        key_expr = keys[0] if len(keys) == 1 else f"({', '.join(keys)})"
        by_name = {f.name: f for f in data}
        key_casts = ", ".join(
            f"CAST({_Q(k)} AS {ddl.duckdb_type(by_name[k])}) AS {_Q(k)}" for k in table.primary_key
        )
        total, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT {key_expr}) FROM {source})", {"files": files}
        ).fetchone() or (0, 0)
        if total == distinct:
            relation = f"(SELECT {casts} FROM {source}))"
            key_relation = f"(SELECT {key_casts} FROM {source}))"
            self._merge_relation(
                con, table, relation, key_relation, {"files": files}, load_id, loaded_at
            )
            return int(distinct)
        # The same key more than once in this load: merge occurrence by occurrence, in order.
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_STAGE} AS SELECT {casts}, row_number() OVER ("
            f"PARTITION BY {', '.join(keys)} ORDER BY o.__file_ord, s.file_row_number) AS __gen "
            f"FROM {source}, filename = true, file_row_number = true) s JOIN (SELECT "
            "unnest($files) AS filename, generate_subscripts($files, 1) AS __file_ord) o "
            "USING (filename)",
            {"files": files},
        )
        generations = con.execute(f"SELECT max(__gen) FROM {_STAGE}").fetchone()
        names = ", ".join(_Q(f.name) for f in data)
        for gen in range(1, int(generations[0] if generations else 0) + 1):
            relation = f"(SELECT {names} FROM {_STAGE} WHERE __gen = {gen})"
            key_relation = f"(SELECT {', '.join(keys)} FROM {_STAGE} WHERE __gen = {gen})"
            self._merge_relation(con, table, relation, key_relation, {}, load_id, loaded_at)
        con.execute(f"DROP TABLE {_STAGE}")
        return int(distinct)

    def _merge_relation(
        self,
        con: duckdb.DuckDBPyConnection,
        table: Table,
        relation: str,
        key_relation: str,
        params: dict[str, Any],
        load_id: str,
        loaded_at: datetime,
    ) -> None:
        """Replace the target's rows that share a key with ``relation`` by its rows.

        ``key_relation`` is ``relation``'s keys alone, cast by themselves: selecting them out of
        ``relation`` made DuckDB read and cast every column for the join, and a re-load of
        300,000 result rows ran out of the default 64MB (the DELETE of the rows replaced)."""
        target = self.qualified(table.name)
        keys = [_Q(k) for k in table.primary_key]
        match = " AND ".join(f"t.{k} = n.{k}" for k in keys)
        coalesce = COALESCE_ON_MERGE.get(table.name, ())
        data = [f.name for f in table.schema if f.name not in ddl.LINEAGE_COLUMNS]
        if coalesce:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {_OLD} AS SELECT t.* FROM {target} t WHERE EXISTS "
                f"(SELECT 1 FROM {key_relation} n WHERE {match})",
                params,
            )
        con.execute(f"DELETE FROM {target} t USING {key_relation} n WHERE {match}", params)
        selects = [
            f"COALESCE(n.{_Q(c)}, t.{_Q(c)})" if c in coalesce else f"n.{_Q(c)}" for c in data
        ]
        columns = ", ".join(_Q(c) for c in (*data, *ddl.LINEAGE_COLUMNS))
        join = f" LEFT JOIN {_OLD} t ON {match}" if coalesce else ""
        con.execute(
            f"INSERT INTO {target} ({columns}) SELECT {', '.join(selects)}, "
            f"CAST($loaded_at AS TIMESTAMPTZ), $load_id FROM {relation} n{join}",
            {**params, "loaded_at": loaded_at, "load_id": load_id},
        )
        if coalesce:
            con.execute(f"DROP TABLE {_OLD}")

    def _write_load_row(
        self, con: duckdb.DuckDBPyConnection, row: Mapping[str, Any], *, overwrite_committed: bool
    ) -> None:
        names = list(row)
        updates = ", ".join(f"{_Q(n)} = excluded.{_Q(n)}" for n in names if n != "load_id")
        guard = "" if overwrite_committed else f" WHERE {_Q(LOADS.name)}.status <> 'committed'"
        con.execute(
            f"INSERT INTO {self.qualified(LOADS.name)} ({', '.join(_Q(n) for n in names)}) "
            f"VALUES ({', '.join('?' for _ in names)}) ON CONFLICT (load_id) DO UPDATE SET "
            f"{updates}{guard}",
            list(row.values()),
        )

    def _move_watermark(
        self,
        con: duckdb.DuckDBPyConnection,
        stream: str,
        watermark: Watermark,
        load_id: str,
        now: datetime,
    ) -> None:
        target = self.qualified(SYNC_STATE.name)
        row = con.execute(
            f"SELECT watermark_check_id, watermark_created_at FROM {target} WHERE stream = ?",
            [stream],
        ).fetchone()
        current = None
        if row is not None and row[0] is not None and row[1] is not None:
            current = Watermark(int(row[0]), utc(row[1]))
        if not watermark.newer_than(current):
            return
        con.execute(
            f"INSERT INTO {target} (stream, watermark_check_id, watermark_created_at, load_id, "
            "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream) DO UPDATE SET "
            "watermark_check_id = excluded.watermark_check_id, watermark_created_at = "
            "excluded.watermark_created_at, load_id = excluded.load_id, updated_at = "
            "excluded.updated_at",
            [stream, watermark.check_id, utc(watermark.created_at), load_id, now],
        )


def _results_loaded(alias: str) -> str:
    """SQL: the check ``alias`` has its results rows (``other_results`` for a type this
    version does not model)."""
    whens = " ".join(
        f"WHEN {ddl.quote_literal(typ)} THEN EXISTS (SELECT 1 FROM "
        f"{ddl.duckdb_qualified(table)} r WHERE r.check_id = {alias}.check_id)"
        for typ, table in RESULTS_TABLE_BY_TYPE.items()
    )
    other = (
        f"EXISTS (SELECT 1 FROM {ddl.duckdb_qualified(OTHER_RESULTS)} r "
        f"WHERE r.check_id = {alias}.check_id)"
    )
    return f"(CASE {alias}.type {whens} ELSE {other} END)"


def _check_columns(table: Table, present: set[str], load_id: str) -> None:
    unknown = sorted(present - set(table.schema.names))
    if unknown:
        raise LoadError(
            f"load {load_id}: the Parquet files for {table.name} have column(s) "
            f"{', '.join(unknown)} that {SCHEMA_NAME}.{table.name} does not have (landed by a "
            "newer version? upgrade airflow-provider-numberyo); nothing was committed"
        )
    missing = [
        f.name
        for f in table.schema
        if not f.nullable and f.name not in present and f.name not in ddl.LINEAGE_COLUMNS
    ]
    if missing:
        raise LoadError(
            f"load {load_id}: the Parquet files for {table.name} lack the required column(s) "
            f"{', '.join(missing)}; nothing was committed"
        )


def _keyed_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT DISTINCT table_name FROM duckdb_constraints() WHERE schema_name = ? AND "
        "database_name = current_database() AND constraint_type = 'PRIMARY KEY'",
        [SCHEMA_NAME],
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def _drop_primary_key(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    """Rebuild ``table`` (made by an earlier version) without its PRIMARY KEY: DuckDB cannot
    drop a constraint, and the key's index must fit in memory whole (see :mod:`.ddl`). Every
    column and row is kept; the caller's transaction makes the swap atomic."""
    name = ddl.duckdb_qualified(table)
    old = f"__numberyo_keyed_{table.name}"
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND "
        "table_name = ? AND database_name = current_database() ORDER BY column_index",
        [SCHEMA_NAME, table.name],
    ).fetchall()
    log.info("rebuilding %s without its PRIMARY KEY (bounded memory for large loads)", name)
    con.execute(f"ALTER TABLE {name} RENAME TO {_Q(old)}")
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM {_Q(SCHEMA_NAME)}.{_Q(old)} LIMIT 0")
    for f in table.schema:
        if not f.nullable and f.name in {str(c[0]) for c in columns}:
            con.execute(f"ALTER TABLE {name} ALTER COLUMN {_Q(f.name)} SET NOT NULL")
    con.execute(f"INSERT INTO {name} SELECT * FROM {_Q(SCHEMA_NAME)}.{_Q(old)}")
    con.execute(f"DROP TABLE {_Q(SCHEMA_NAME)}.{_Q(old)}")
    for statement in ddl.duckdb_comments(table):
        if "COMMENT ON TABLE" in statement or any(
            f".{_Q(str(c[0]))} IS " in statement for c in columns
        ):
            con.execute(statement)


def _connect(path: str, config: Mapping[str, str]) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(path, config=dict(config))
    except duckdb.ProgrammingError as exc:
        raise ConfigurationError(
            f"bad DuckDB setting in the warehouse URL ({dict(config)}): {exc}"
        ) from None


def _merge_groups(paths: list[str], rows: Mapping[str, int]) -> list[list[str]]:
    """``paths`` in order, cut into groups of at most :data:`MAX_FILES_PER_MERGE` files and
    :data:`MAX_ROWS_PER_MERGE` rows (by the rows each file was landed with)."""
    groups: list[list[str]] = []
    group: list[str] = []
    group_rows = 0
    for path in paths:
        n = rows.get(path, 0)
        if group and (len(group) >= MAX_FILES_PER_MERGE or group_rows + n > MAX_ROWS_PER_MERGE):
            groups.append(group)
            group, group_rows = [], 0
        group.append(path)
        group_rows += n
    if group:
        groups.append(group)
    return groups


def _row_group_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_ROW_GROUP_SIZE
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 2048 or size % 2048:
        raise ConfigurationError(
            f"bad {ROW_GROUP_SIZE_OPTION}={value!r} in the DuckDB warehouse URL: use a multiple "
            f"of 2048 rows, e.g. {DEFAULT_ROW_GROUP_SIZE} (ours) or 122880 (DuckDB's default)"
        )
    return size


def _local_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _register_filesystems(
    con: duckdb.DuckDBPyConnection, paths: Sequence[str], commit: LoadCommit
) -> None:
    protocols = {p.split("://", 1)[0] for p in paths if "://" in p} - {"file"}
    for protocol in sorted(protocols):
        fs = fsspec.filesystem(protocol, **dict(commit.storage_options or {}))
        try:
            con.register_filesystem(fs)
        except duckdb.ProgrammingError as exc:
            if "already been registered" not in str(exc):
                raise


def _rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    with suppress(duckdb.Error):
        con.rollback()
