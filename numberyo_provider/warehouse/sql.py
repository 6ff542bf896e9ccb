"""Any SQLAlchemy database as the warehouse; PostgreSQL (psycopg 3) gets a ``COPY`` fast path.

A load is committed in one transaction. Per data table: a TEMP staging table is filled from the
landed files, streamed batch by batch with ``pyarrow.parquet.ParquetFile.iter_batches`` (files on
object stores are opened through fsspec), so memory stays flat whatever the load's size:

* PostgreSQL + psycopg 3: each batch becomes CSV (Arrow's C++ writer) fed to
  ``COPY ... FROM STDIN``; the merge is ``INSERT ... ON CONFLICT (key) DO UPDATE``;
* any other database (or PostgreSQL through another driver): batches are inserted with
  ``executemany``; the merge deletes the keys being loaded and inserts the staged rows.

Keys loaded more than once in the same load are merged occurrence by occurrence, in landing order,
as if they came in successive loads. Types beyond PostgreSQL are best effort through SQLAlchemy's
generic types: SQLite, for one, keeps ``NUMERIC`` as a float and timestamps as naive UTC text.
On PostgreSQL commits are serialised with a transaction-level advisory lock and every lock wait is
bounded by ``lock_timeout``.

Why one module of about 730 lines: as for the DuckDB backend, one class implementing
:class:`~numberyo_provider.warehouse.base.Warehouse` around one transaction per load; the COPY fast
path and the generic ``executemany`` path are two ways of staging for the same merge.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, NoSuchModuleError

from numberyo_provider.errors import (
    ConfigurationError,
    LoadError,
    SchemaMismatchError,
    WarehouseError,
    WarehouseLockedError,
)
from numberyo_provider.schema import (
    CHECKS,
    LOADS,
    OTHER_RESULTS,
    RESULTS_TABLE_BY_TYPE,
    SCHEMA_NAME,
    SYNC_STATE,
    Table,
)
from numberyo_provider.sync.land import conform
from numberyo_provider.warehouse import ddl
from numberyo_provider.warehouse.base import (
    ACCEPTED_URLS,
    COALESCE_ON_MERGE,
    LoadCommit,
    Warehouse,
    Watermark,
    first_error,
    paths_from_manifest,
    upsert_batch,
    upsert_rows,
    utc,
)

try:  # SQLAlchemy 2.1, where select().distinct(*keys) is deprecated
    from sqlalchemy.dialects.postgresql import distinct_on as _pg_distinct_on
except ImportError:  # pragma: no cover - SQLAlchemy 2.0
    _pg_distinct_on = None  # type: ignore[assignment]


def _distinct_on(select: sa.Select[Any], keys: Sequence[Any]) -> sa.Select[Any]:
    """PostgreSQL's ``DISTINCT ON (keys)``, the way the installed SQLAlchemy wants it."""
    if _pg_distinct_on is None:  # pragma: no cover - SQLAlchemy 2.0
        return select.distinct(*keys)
    return select.ext(_pg_distinct_on(*keys))


#: Rows per Arrow batch read from a Parquet file (and per COPY chunk / executemany call). Landed
#: files hold up to 250,000 rows since landing partitions by load: a batch, its conformed copy
#: and its CSV text are in memory at once, so batches stay small. In a 100,000-check sync into
#: PostgreSQL 65,536-row batches cost 17 MB more peak RSS than 16,384, which cost 23 MB more
#: than 4,096; the COPY of a million rows took as long (docs/benchmarks.md).
BATCH_ROWS = 4_096
#: Upsert rows turned into Python values per statement: bounds the memory of a large upsert
#: (a million ``check_requests`` rows), as Python dicts cost about 1 kB a row.
ROWS_PER_STATEMENT = 5_000
#: Ids per ``IN (...)`` list of ``existing_check_ids`` (below every database's parameter limit).
ID_CHUNK = 1_000
#: Key of the PostgreSQL advisory lock serialising schema changes and commits ("numbery0").
ADVISORY_LOCK_KEY = 0x6E756D6265727930
_ORD = "__ord"
_GEN = "__gen"


class SqlWarehouse(Warehouse):
    """A warehouse in any database SQLAlchemy reaches; tables from :mod:`.ddl`."""

    def __init__(
        self,
        url: str | sa.URL,
        *,
        lock_timeout: float = 60.0,
        use_copy: bool | None = None,
        engine_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        parsed = _default_driver(sa.engine.make_url(url))
        self.url_for_display = parsed.render_as_string(hide_password=True)
        self.lock_timeout = lock_timeout
        kwargs = dict(engine_kwargs or {})
        if parsed.get_backend_name() == "sqlite":
            kwargs.setdefault("connect_args", {"timeout": lock_timeout})
        try:
            parsed.get_dialect()
            self.engine = sa.create_engine(parsed, **kwargs)
        except NoSuchModuleError as exc:
            raise ConfigurationError(
                f"no SQLAlchemy dialect {parsed.drivername!r} for warehouse URL "
                f"{self.url_for_display!r}: install the dialect's package, or use "
                f"{ACCEPTED_URLS}"
            ) from exc
        except ImportError as exc:
            raise ConfigurationError(
                f"the database driver for {self.url_for_display!r} is not installed ({exc}); "
                "install it (for PostgreSQL: pip install 'airflow-provider-numberyo[postgres]')"
            ) from exc
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _transactional_sqlite(self.engine)
        self.tables: dict[str, sa.Table] = ddl.sqlalchemy_tables(self.dialect)
        #: What a failing merge may raise: SQLAlchemy's errors, the raw driver's (COPY), ours.
        self._load_errors: tuple[type[BaseException], ...] = (
            sa.exc.StatementError,
            SchemaMismatchError,
        )
        driver_error = getattr(self.engine.dialect.loaded_dbapi, "Error", None)
        if isinstance(driver_error, type) and issubclass(driver_error, BaseException):
            self._load_errors += (driver_error,)
        is_psycopg3 = self.dialect == "postgresql" and self.engine.dialect.driver == "psycopg"
        self.use_copy = is_psycopg3 if use_copy is None else bool(use_copy and is_psycopg3)

    # -- connections ----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        errors: tuple[type[BaseException], ...] = (DBAPIError, *self._load_errors)
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    ms = max(int(self.lock_timeout * 1000), 1)
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                yield conn
        except errors as exc:
            first = first_error(exc)
            if first is not exc:  # "current transaction is aborted": show what aborted it
                raise first.with_traceback(first.__traceback__) from None
            if _sqlstate(exc) == "55P03":
                raise WarehouseLockedError(
                    f"{self.url_for_display}: another session held a lock for more than "
                    f"{self.lock_timeout:g} s (a concurrent load or schema change?); retry "
                    "later or raise the lock timeout (lock_timeout, --lock-timeout)"
                ) from exc
            raise

    def qualified(self, table: str) -> str:
        return str(self.engine.dialect.identifier_preparer.format_table(self.tables[table]))

    def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement (SQLAlchemy ``:name`` parameters, or a sequence for the driver's
        own style) in its own transaction and return its rows. For tests and tools: not part of
        the :class:`Warehouse` interface, whose callers use its domain methods."""
        with self.transaction() as conn:
            if params is not None and not isinstance(params, Mapping):
                result = conn.exec_driver_sql(sql, tuple(params))
            else:
                result = conn.execute(sa.text(sql), dict(params or {}))
            return [tuple(r) for r in result] if result.returns_rows else []

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        dialect = self.engine.dialect
        with self.transaction() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {ddl.quote_ident(SCHEMA_NAME)}")
            inspector = sa.inspect(conn)
            for table in self.tables.values():
                if not inspector.has_table(table.name, schema=table.schema):
                    conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
                    if dialect.supports_comments:
                        conn.execute(sa.schema.SetTableComment(table))
                        for column in table.columns:
                            conn.execute(sa.schema.SetColumnComment(column))
                    continue
                have = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
                for column in table.columns:
                    if column.name in have:
                        continue
                    if not column.nullable:
                        raise WarehouseError(
                            f"{self.qualified(_model_name(table))} lacks the required column "
                            f"{column.name}; migrate it (add the column and fill it) first"
                        )
                    preparer = dialect.identifier_preparer
                    conn.exec_driver_sql(
                        f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN "
                        f"{preparer.quote(column.name)} {column.type.compile(dialect=dialect)}"
                    )
                    if dialect.supports_comments:
                        conn.execute(sa.schema.SetColumnComment(column))

    # -- reads ----------------------------------------------------------------------------

    def get_watermark(self, stream: str = "checks") -> Watermark | None:
        state = self.tables[SYNC_STATE.name]
        with self._reading() as conn:
            row = conn.execute(
                sa.select(state.c.watermark_check_id, state.c.watermark_created_at).where(
                    state.c.stream == stream
                )
            ).first()
        if row is None or row[0] is None or row[1] is None:
            return None
        return Watermark(check_id=int(row[0]), created_at=utc(row[1]))

    def has_checks(self) -> bool:
        checks = self.tables[CHECKS.name]
        with self._reading() as conn:
            return conn.execute(sa.select(checks.c.check_id).limit(1)).first() is not None

    def existing_check_ids(self, ids: Sequence[int]) -> set[int]:
        wanted = sorted({int(i) for i in ids})
        checks = self.tables[CHECKS.name]
        loaded = []
        for typ, table in RESULTS_TABLE_BY_TYPE.items():
            results = self.tables[table.name]
            loaded.append(
                sa.and_(
                    checks.c.type == typ,
                    sa.exists().where(results.c.check_id == checks.c.check_id),
                )
            )
        other = self.tables[OTHER_RESULTS.name]
        loaded.append(
            sa.and_(
                checks.c.type.not_in(list(RESULTS_TABLE_BY_TYPE)),
                sa.exists().where(other.c.check_id == checks.c.check_id),
            )
        )
        found: set[int] = set()
        with self._reading() as conn:
            for start in range(0, len(wanted), ID_CHUNK):
                chunk = wanted[start : start + ID_CHUNK]
                query = sa.select(checks.c.check_id).where(
                    checks.c.check_id.in_(chunk), sa.or_(*loaded)
                )
                found.update(int(r[0]) for r in conn.execute(query))
        return found

    def fresh_numbers(self, check_type: str, since: datetime) -> list[str]:
        checks = self.tables[CHECKS.name]
        stmt = (
            sa.select(checks.c.phone_number)
            .distinct()
            .where(
                checks.c.type == check_type,
                checks.c.created_at >= since,
                checks.c.phone_number.is_not(None),
            )
        )
        with self._reading() as conn:
            return [str(r[0]) for r in conn.execute(stmt)]

    def failed_loads_to_clean(self) -> dict[str, list[str]]:
        loads = self.tables[LOADS.name]
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(loads.c.load_id, loads.c.files)
                .where(loads.c.status == "failed", loads.c.cleaned_at.is_(None))
                .order_by(loads.c.started_at, loads.c.load_id)
            )
            return {str(r[0]): paths_from_manifest(r[1]) for r in rows}

    def mark_loads_cleaned(self, load_ids: Sequence[str]) -> None:
        if not load_ids:
            return
        loads = self.tables[LOADS.name]
        with self.transaction() as conn:
            conn.execute(
                loads.update()
                .where(loads.c.status == "failed", loads.c.load_id.in_(list(load_ids)))
                .values(cleaned_at=datetime.now(UTC))
            )

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        try:
            with self.transaction() as conn:
                yield conn
        except sa.exc.ProgrammingError as exc:
            raise WarehouseError(
                f"{self.url_for_display}: cannot read the numberyo tables ({exc.orig}); call "
                "ensure_schema() first"
            ) from exc
        except sa.exc.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            raise WarehouseError(
                f"{self.url_for_display} has no numberyo tables yet; call ensure_schema() first"
            ) from exc

    # -- loads ----------------------------------------------------------------------------

    @contextmanager
    def _load_transaction(self, commit: LoadCommit | None) -> Iterator[sa.Connection]:
        with self.transaction() as conn:
            self._serialise(conn)
            yield conn

    def _merge_files(
        self,
        conn: sa.Connection,
        table: Table,
        paths: list[str],
        commit: LoadCommit,
        loaded_at: datetime,
    ) -> int:
        try:
            return self._merge(conn, table, paths, commit, loaded_at)
        except (*self._load_errors, OSError, pa.ArrowException) as exc:
            if _sqlstate(exc) == "55P03":
                raise
            raise LoadError(
                f"load {commit.load_id}: merging {len(paths)} file(s) into "
                f"{self.qualified(table.name)} failed, nothing was committed: {exc}"
            ) from exc

    def _upsert_batches(
        self, conn: sa.Connection, table: Table, batches: Iterable[pa.Table], load_id: str
    ) -> int:
        try:
            return self._upsert_rows(conn, table, batches)
        except self._load_errors as exc:
            if _sqlstate(exc) == "55P03":
                raise
            raise LoadError(
                f"load {load_id}: upserting rows into "
                f"{self.qualified(table.name)} failed, nothing was committed: {exc}"
            ) from exc

    # -- internals ------------------------------------------------------------------------

    def _serialise(self, conn: sa.Connection) -> None:
        if self.dialect == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))

    def _stage_table(self, table: Table, suffix: str) -> sa.Table:
        target = self.tables[table.name]
        columns = [
            sa.Column(c.name, c.type, nullable=True)
            for c in target.columns
            if c.name not in ddl.LINEAGE_COLUMNS
        ]
        kwargs: dict[str, Any] = {}
        if self.dialect == "postgresql":
            kwargs["postgresql_on_commit"] = "DROP"
        return sa.Table(
            f"{ddl.TABLE_PREFIX}{suffix}_{table.name}",
            sa.MetaData(),
            *columns,
            sa.Column(_ORD, sa.BigInteger(), nullable=False),
            sa.Column(_GEN, sa.Integer(), nullable=False, server_default=sa.text("1")),
            prefixes=["TEMPORARY"],
            **kwargs,
        )

    def _merge(
        self,
        conn: sa.Connection,
        table: Table,
        paths: list[str],
        commit: LoadCommit,
        loaded_at: datetime,
    ) -> int:
        stage = self._stage_table(table, "stage")
        conn.execute(sa.schema.DropTable(stage, if_exists=True))
        stage.create(conn)
        if self.use_copy:
            self._copy_into(conn, stage, table, paths, commit)
            conn.exec_driver_sql(
                f"ANALYZE {self.engine.dialect.identifier_preparer.quote(stage.name)}"
            )
        else:
            self._insert_into(conn, stage, table, paths, commit)
        keys = [stage.c[k] for k in table.primary_key]
        duplicate = conn.execute(
            sa.select(*keys).group_by(*keys).having(sa.func.count() > 1).limit(1)
        ).first()
        source = stage
        generations = 1
        if duplicate is not None:
            source = self._stage_table(table, "gen")
            conn.execute(sa.schema.DropTable(source, if_exists=True))
            source.create(conn)
            names = [c.name for c in stage.columns if c.name != _GEN]
            occurrence = sa.func.row_number().over(partition_by=keys, order_by=stage.c[_ORD])
            conn.execute(
                source.insert().from_select(
                    [*names, _GEN], sa.select(*[stage.c[n] for n in names], occurrence)
                )
            )
            generations = int(conn.execute(sa.select(sa.func.max(source.c[_GEN]))).scalar() or 0)
        for gen in range(1, generations + 1):
            if self.dialect == "postgresql":
                self._upsert(conn, table, source, gen, commit.load_id, loaded_at)
            else:
                self._delete_insert(conn, table, source, gen, commit.load_id, loaded_at)
        written = conn.execute(
            sa.select(sa.func.count()).select_from(source).where(source.c[_GEN] == 1)
        ).scalar()
        if source is not stage:
            source.drop(conn)
        stage.drop(conn)
        return int(written or 0)

    def _upsert_rows(self, conn: sa.Connection, table: Table, batches: Iterable[pa.Table]) -> int:
        """Insert-or-replace rows of a bookkeeping table by primary key (``LoadCommit.upserts``):
        ``ON CONFLICT DO UPDATE`` on PostgreSQL, delete + insert elsewhere."""
        if self.use_copy:
            return self._copy_upsert(conn, table, batches)
        target = self.tables[table.name]
        keys = list(table.primary_key)
        written = 0
        for batch in batches:
            data = upsert_batch(table, batch)
            for offset in range(0, data.num_rows, ROWS_PER_STATEMENT):
                rows = data.slice(offset, ROWS_PER_STATEMENT).to_pylist()
                self._upsert_statement(conn, target, keys, rows)
                written += len(rows)
        return written

    def _copy_upsert(self, conn: sa.Connection, table: Table, batches: Iterable[pa.Table]) -> int:
        """PostgreSQL + psycopg 3: ``COPY`` every batch into a TEMP table, then one
        ``INSERT ... SELECT DISTINCT ON (key) ... ON CONFLICT DO UPDATE`` (a key staged more than
        once keeps its last row): a million ``check_requests`` rows in seconds, not minutes."""
        target = self.tables[table.name]
        stage = self._stage_table(table, "upsert")
        conn.execute(sa.schema.DropTable(stage, if_exists=True))
        stage.create(conn)
        names = list(table.schema.names)

        def numbered() -> Iterator[pa.Table]:
            ordinal = 0
            for batch in batches:
                data = upsert_rows(table, batch)
                n = data.num_rows
                yield data.append_column(_ORD, pa.array(range(ordinal, ordinal + n), pa.int64()))
                ordinal += n

        self._copy(conn, stage, [*names, _ORD], numbered())
        keys = [stage.c[k] for k in table.primary_key]
        latest = _distinct_on(sa.select(*[stage.c[n] for n in names]), keys).order_by(
            *keys, stage.c[_ORD].desc()
        )
        written = conn.execute(
            sa.select(sa.func.count()).select_from(sa.select(*keys).distinct().subquery())
        ).scalar()
        statement = pg_insert(target).from_select(names, latest)
        updates = {n: statement.excluded[n] for n in names if n not in table.primary_key}
        conn.execute(
            statement.on_conflict_do_update(index_elements=list(table.primary_key), set_=updates)
            if updates
            else statement.on_conflict_do_nothing(index_elements=list(table.primary_key))
        )
        stage.drop(conn)
        return int(written or 0)

    def _upsert_statement(
        self, conn: sa.Connection, target: sa.Table, keys: list[str], rows: list[dict[str, Any]]
    ) -> None:
        if not rows:
            return
        if self.dialect == "postgresql":
            statement = pg_insert(target)
            updates = {
                c.name: statement.excluded[c.name] for c in target.columns if c.name not in keys
            }
            conn.execute(
                statement.on_conflict_do_update(index_elements=keys, set_=updates)
                if updates
                else statement.on_conflict_do_nothing(index_elements=keys),
                rows,
            )
            return
        match = sa.and_(*[target.c[k] == sa.bindparam(f"_key_{k}") for k in keys])
        conn.execute(
            target.delete().where(match), [{f"_key_{k}": row[k] for k in keys} for row in rows]
        )
        conn.execute(target.insert(), rows)

    def _batches(self, table: Table, paths: list[str], commit: LoadCommit) -> Iterator[pa.Table]:
        """The load's rows as conformed Arrow tables (lineage columns dropped), with ``__ord``."""
        ordinal = 0
        now = datetime.now(UTC)
        keep = [n for n in table.schema.names if n not in ddl.LINEAGE_COLUMNS]
        for path in paths:
            with _open(path, commit.storage_options) as source:
                parquet = pq.ParquetFile(source)
                # Read on this thread, not Arrow's pool: buffers that pool's threads allocate
                # stay in their allocator heaps after this thread frees them (+27 MB peak RSS
                # in a 100,000-check sync into PostgreSQL); the COPY, not the read, is the cost.
                for batch in parquet.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
                    try:
                        data = conform(table, batch, load_id=commit.load_id, loaded_at=now)
                        data = data.select(keep)
                    except SchemaMismatchError as exc:
                        raise SchemaMismatchError(f"{path}: {exc}") from exc
                    n = data.num_rows
                    data = data.append_column(
                        _ORD, pa.array(range(ordinal, ordinal + n), pa.int64())
                    )
                    ordinal += n
                    yield data

    def _copy_into(
        self,
        conn: sa.Connection,
        stage: sa.Table,
        table: Table,
        paths: list[str],
        commit: LoadCommit,
    ) -> None:
        names = [n for n in table.schema.names if n not in ddl.LINEAGE_COLUMNS] + [_ORD]
        self._copy(conn, stage, names, self._batches(table, paths, commit))

    def _copy(
        self, conn: sa.Connection, stage: sa.Table, names: list[str], batches: Iterable[pa.Table]
    ) -> None:
        """``COPY`` Arrow batches (columns ``names``, in order) into ``stage`` as CSV."""
        preparer = self.engine.dialect.identifier_preparer
        statement = (
            f"COPY {preparer.quote(stage.name)} ({', '.join(preparer.quote(n) for n in names)}) "
            "FROM STDIN (FORMAT csv)"
        )
        raw = conn.connection.driver_connection
        assert raw is not None
        options = pacsv.WriteOptions(include_header=False)
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for data in batches:
                buffer = io.BytesIO()
                pacsv.write_csv(data, buffer, options)
                copy.write(buffer.getbuffer())
        # Arrow's default allocator (mimalloc) keeps what the batches freed; give it back so a
        # process that lives on after the load (an Airflow worker) does not carry it.
        pa.default_memory_pool().release_unused()

    def _insert_into(
        self,
        conn: sa.Connection,
        stage: sa.Table,
        table: Table,
        paths: list[str],
        commit: LoadCommit,
    ) -> None:
        statement = stage.insert()
        for data in self._batches(table, paths, commit):
            conn.execute(statement, data.to_pylist())

    def _generation(
        self, table: Table, source: sa.Table, gen: int, load_id: str, loaded_at: datetime
    ) -> tuple[list[str], sa.Select[Any]]:
        """Target columns, and the staged rows of generation ``gen`` stamped with the lineage."""
        target = self.tables[table.name]
        data = [c.name for c in target.columns if c.name not in ddl.LINEAGE_COLUMNS]
        select = sa.select(
            *[source.c[n] for n in data],
            sa.literal(loaded_at, target.c._loaded_at.type).label("_loaded_at"),
            sa.literal(load_id, target.c._load_id.type).label("_load_id"),
        ).where(source.c[_GEN] == gen)
        return [*data, *ddl.LINEAGE_COLUMNS], select

    def _upsert(
        self,
        conn: sa.Connection,
        table: Table,
        source: sa.Table,
        gen: int,
        load_id: str,
        loaded_at: datetime,
    ) -> None:
        target = self.tables[table.name]
        columns, select = self._generation(table, source, gen, load_id, loaded_at)
        statement = pg_insert(target).from_select(columns, select)
        coalesce = COALESCE_ON_MERGE.get(table.name, ())
        updates = {
            c.name: (
                sa.func.coalesce(statement.excluded[c.name], target.c[c.name])
                if c.name in coalesce
                else statement.excluded[c.name]
            )
            for c in target.columns
            if c.name not in table.primary_key
        }
        conn.execute(
            statement.on_conflict_do_update(index_elements=list(table.primary_key), set_=updates)
        )

    def _delete_insert(
        self,
        conn: sa.Connection,
        table: Table,
        source: sa.Table,
        gen: int,
        load_id: str,
        loaded_at: datetime,
    ) -> None:
        target = self.tables[table.name]
        match = sa.and_(*[source.c[k] == target.c[k] for k in table.primary_key])
        coalesce = COALESCE_ON_MERGE.get(table.name, ())
        if coalesce:
            conn.execute(
                source.update()
                .where(source.c[_GEN] == gen)
                .values(
                    {
                        c: sa.func.coalesce(
                            source.c[c], sa.select(target.c[c]).where(match).scalar_subquery()
                        )
                        for c in coalesce
                    }
                )
            )
        conn.execute(target.delete().where(sa.exists().where(source.c[_GEN] == gen, match)))
        conn.execute(
            target.insert().from_select(*self._generation(table, source, gen, load_id, loaded_at))
        )

    def _write_load_row(
        self, conn: sa.Connection, row: Mapping[str, Any], *, overwrite_committed: bool
    ) -> None:
        loads = self.tables[LOADS.name]
        where = loads.c.load_id == row["load_id"]
        current = conn.execute(sa.select(loads.c.status).where(where)).scalar()
        if current == "committed" and not overwrite_committed:
            return
        if current is not None:
            conn.execute(loads.delete().where(where))
        conn.execute(loads.insert().values(**row))

    def _move_watermark(
        self,
        conn: sa.Connection,
        stream: str,
        watermark: Watermark,
        load_id: str,
        now: datetime,
    ) -> None:
        state = self.tables[SYNC_STATE.name]
        row = conn.execute(
            sa.select(state.c.watermark_check_id, state.c.watermark_created_at).where(
                state.c.stream == stream
            )
        ).first()
        if row is not None:
            current = None
            if row[0] is not None and row[1] is not None:
                current = Watermark(int(row[0]), utc(row[1]))
            if not watermark.newer_than(current):
                return
            conn.execute(state.delete().where(state.c.stream == stream))
        conn.execute(
            state.insert().values(
                stream=stream,
                watermark_check_id=watermark.check_id,
                watermark_created_at=utc(watermark.created_at),
                load_id=load_id,
                updated_at=now,
            )
        )


def _transactional_sqlite(engine: sa.Engine) -> None:
    """Make pysqlite honour transactions for DDL too (SQLAlchemy's documented recipe), so a
    failed load leaves no temp table or half-merged table behind."""

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def _model_name(table: sa.Table) -> str:
    name = table.name
    return name[len(ddl.TABLE_PREFIX) :] if table.schema is None else name


def _default_driver(url: sa.URL) -> sa.URL:
    """``postgres://`` and bare ``postgresql://`` use psycopg 3 when it is installed, as
    SQLAlchemy 2.1 does: 2.0 would take psycopg2 wherever dbt-postgres installed it, and lose
    the ``COPY`` path without a word. ``postgresql+psycopg2://`` still names psycopg2."""
    if url.drivername in ("postgres", "postgresql") and importlib.util.find_spec("psycopg"):
        return url.set(drivername="postgresql+psycopg")
    return url


def _sqlstate(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


@contextmanager
def _open(path: str, storage_options: Mapping[str, Any] | None) -> Iterator[Any]:
    if "://" not in path or path.startswith("file://"):
        yield path[len("file://") :] if path.startswith("file://") else path
        return
    fs, stripped = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
    with fs.open(stripped, "rb") as handle:
        yield handle
