"""Operators: paid checks of the numbers in a table, credit-safe and idempotent.

* :class:`NumberYoCreateChecksOperator` reads a source (an Airflow SQL connection or a SQLAlchemy
  URL), cleans the numbers and creates the checks (:mod:`numberyo_provider.checks`); with
  ``load=True`` (default) it also loads them into the warehouse.
* For large tables, map it over shards (``.partial(shards=N, load=False).expand(shard_index=...)``):
  each mapped task checks the numbers of its shard and only lands Parquet; then ONE
  :class:`NumberYoLoadLandedOperator` loads every shard's files in one commit (DuckDB has one
  writer). See ``dags/numberyo_check_numbers.py``.

Every attempt of a task uses the same run id (default ``<dag_id>:<run_id>``), so a retry or a
cleared task resumes: numbers already created are not sent again, requests whose outcome is unknown
are reconciled first (``docs/credits-and-idempotency.md``).

What each task did goes to XCom (key ``numberyo_check``, and the return value on success):
``{"summary": {...}, "files": [...]}``. The key is pushed even when the task then fails or skips
(out of credits), so the load task can pick the shard's files up.

Cheap to import, as Airflow asks of operators (a DAG file imports it at every parse): the checks
engine, its ledger and sources, the landing (pyarrow, phonenumbers, fsspec) and the lineage
helpers are imported by the methods that use them, when the task runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from numberyo_provider.cancellation import cancellable_sleep
from numberyo_provider.checks.budget import DEFAULT_COST_ESTIMATE
from numberyo_provider.checks.verdict import failed_numbers
from numberyo_provider.coercion import as_bool, as_decimal, as_int, as_text
from numberyo_provider.deprecation import warn_renamed
from numberyo_provider.errors import ConfigurationError
from numberyo_provider.hooks.numberyo import NumberYoHook
from numberyo_provider.operators.sync import default_outlets

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import Logger
    from sqlalchemy.engine import Engine

    from numberyo_provider.checks import Checker, CheckOptions, CheckSummary
    from numberyo_provider.operators.lineage import Lineage
    from numberyo_provider.privacy import PrivacyPolicy
    from numberyo_provider.sync.land import LandedFile

#: XCom key of a check task's summary and landed files (pushed also when the task fails).
XCOM_KEY = "numberyo_check"
#: Airflow connection types -> SQLAlchemy drivers, used when no provider hook is installed.
_SQLALCHEMY_SCHEMES = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mssql": "mssql+pymssql",
    "duckdb": "duckdb",
}


def privacy_policy(mode: object, secret: str | None, hook: NumberYoHook) -> PrivacyPolicy:
    """The privacy policy, resolved like everywhere: :meth:`NumberYoHook.privacy_policy`."""
    return hook.privacy_policy(mode, secret)


def _files_to_xcom(files: Sequence[LandedFile]) -> list[dict[str, Any]]:
    return [asdict(f) for f in files]


def _files_from_xcom(items: Iterable[Mapping[str, Any]] | None) -> list[LandedFile]:
    from numberyo_provider.sync.land import LandedFile  # pyarrow and fsspec: not at parse time

    return [
        LandedFile(
            table=i["table"],
            path=i["path"],
            rows=int(i["rows"]),
            partition=dict(i.get("partition") or {}),
        )
        for i in items or []
    ]


class NumberYoCreateChecksOperator(BaseOperator):
    """Check the numbers of a table or query (paid; never twice; see the module docstring).

    :param check_type: ``HLR`` or ``Verify`` (templated).
    :param source_conn_id: Airflow connection of the source database: a common-sql hook
        (``get_sqlalchemy_engine``) when its provider is installed, else the connection's URI as
        a SQLAlchemy URL (postgres, sqlite, mysql, duckdb). Or give ``source_url`` instead.
    :param source_url: SQLAlchemy URL of the source, e.g. ``duckdb:///crm.duckdb`` (templated).
    :param table: table to read, with ``column`` (and ``schema``); identifiers are checked
        against the database and quoted, never pasted into SQL (templated).
    :param sql: a query returning the numbers (templated; ``.sql`` files too), instead of table.
    :param default_region: ISO region for national numbers (``BE``) (templated).
    :param max_checks: at most this many checks per task (templated).
    :param max_credits: at most this many credits per task (templated); ``cost_estimate``: the
        price assumed for the first check of the type while it is unknown (default 1.00).
    :param max_age_days: reuse results newer than this (default 30) unless ``force``.
    :param concurrency: parallel POSTs (default 8), sharing one HTTP session and rate limit
        (templated). Renamed from ``max_workers`` in 0.2; the old name still works until 0.3.
    :param run_id: the run's id in the ledger; default ``<dag_id>:<run_id>`` (every retry and
        every shard of a DAG run shares it).
    :param warehouse: ``duckdb:///path.duckdb`` or a SQLAlchemy URL (templated).
    :param parquet_path: landing directory or ``s3://bucket/prefix`` (templated).
    :param ledger: request-ledger URL (SQLite or PostgreSQL); default beside the warehouse.
    :param shard_index: this task's shard (map over it with ``.expand``); ``shards``: how many.
    :param load: load into the warehouse at the end (default); ``False`` to land only (shards).
    :param on_insufficient_credits: ``fail`` (default), ``warn`` or ``skip`` when the account
        runs out of credits; in every case what was done is kept and the rest recorded.
    :param allow_failed_numbers: by default the task fails (after landing, loading and pushing
        XCom) when any number failed or its outcome stayed unknown, with one message naming how
        many, the first error and the credits spent; ``True`` logs that message as a warning and
        succeeds (templated).
    :param privacy: ``keep``, ``mask`` or ``hmac`` for phone numbers in the warehouse; default
        ``NUMBERYO_PRIVACY_MODE``, else ``keep`` (:mod:`numberyo_provider.config`).
    :param reconcile_settle_s: how old a request whose outcome is unknown must be before it is
        looked up in the account's history (default 30 s; raise it with a slow rate limit).
    :param plan_only: a dry run: only clean and count the numbers (``would_send`` in the
        summary); nothing is sent, recorded or loaded.
    """

    template_fields: Sequence[str] = (
        "numberyo_conn_id",
        "source_conn_id",
        "source_url",
        "table",
        "column",
        "schema",
        "sql",
        "check_type",
        "default_region",
        "max_checks",
        "max_credits",
        "cost_estimate",
        "max_age_days",
        "force",
        "concurrency",
        "run_id",
        "warehouse",
        "parquet_path",
        "ledger",
        "shard_index",
        "shards",
        "load",
        "on_insufficient_credits",
        "allow_failed_numbers",
        "privacy",
        "plan_only",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql"}
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        check_type: str = "HLR",
        numberyo_conn_id: str = NumberYoHook.default_conn_name,
        source_conn_id: str | None = None,
        source_url: str | None = None,
        table: str | None = None,
        column: str | None = None,
        schema: str | None = None,
        sql: str | None = None,
        default_region: str | None = None,
        max_checks: int | str | None = None,
        max_credits: float | str | Decimal | None = None,
        cost_estimate: float | str | Decimal | None = None,
        max_age_days: float | str = 30,
        force: bool | str = False,
        concurrency: int | str = 8,
        run_id: str | None = None,
        warehouse: str,
        parquet_path: str,
        ledger: str | None = None,
        shard_index: int | str = 0,
        shards: int | str = 1,
        load: bool | str = True,
        on_insufficient_credits: str = "fail",
        allow_failed_numbers: bool | str = False,
        privacy: str | None = None,
        privacy_secret: str | None = None,
        plan_only: bool | str = False,
        lock_timeout: float = 60.0,
        storage_options: dict[str, Any] | None = None,
        chunk_size: int = 10_000,
        reconcile_settle_s: float = 30.0,
        max_workers: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        if max_workers is not None:  # renamed in 0.2
            warn_renamed("max_workers", "concurrency", where=type(self).__name__, stacklevel=3)
            concurrency = max_workers
        if load is True and not plan_only:
            default_outlets(kwargs, warehouse)
        super().__init__(**kwargs)
        self.check_type = check_type
        self.numberyo_conn_id = numberyo_conn_id
        self.source_conn_id = source_conn_id
        self.source_url = source_url
        self.table = table
        self.column = column
        self.schema = schema
        self.sql = sql
        self.default_region = default_region
        self.max_checks = max_checks
        self.max_credits = max_credits
        self.cost_estimate = cost_estimate
        self.max_age_days = max_age_days
        self.force = force
        self.concurrency = concurrency
        self.run_id = run_id
        self.warehouse = warehouse
        self.parquet_path = parquet_path
        self.ledger = ledger
        self.shard_index = shard_index
        self.shards = shards
        self.load = load
        self.on_insufficient_credits = on_insufficient_credits
        self.allow_failed_numbers = allow_failed_numbers
        self.privacy = privacy
        self.privacy_secret = privacy_secret
        self.plan_only = plan_only
        self.lock_timeout = lock_timeout
        self.storage_options = storage_options
        self.chunk_size = chunk_size
        self.reconcile_settle_s = reconcile_settle_s
        self._checker: Checker | None = None
        self._stop = threading.Event()

    # --- the source ------------------------------------------------------------------------------

    @contextmanager
    def _chunks(self) -> Iterator[Iterable[list[object]]]:
        from numberyo_provider.checks.source import (
            SourceSpec,
            iter_values_from_connection,
            open_source,
        )

        table, column, schema, sql = (
            as_text(self.table),
            as_text(self.column),
            as_text(self.schema),
            as_text(self.sql),
        )
        conn_id, url = as_text(self.source_conn_id), as_text(self.source_url)
        if bool(conn_id) == bool(url):
            raise ConfigurationError(
                "give the source as source_conn_id (an Airflow connection) or source_url (a "
                "SQLAlchemy URL), exactly one of them"
            )
        if url:
            spec = SourceSpec(url=url, table=table, column=column, sql=sql, schema=schema)
            # Checked now, read-only, before run_check creates the warehouse or the ledger.
            with open_source(spec, chunk_size=self.chunk_size) as source:
                yield source
            return
        assert conn_id is not None
        engine = _engine_for_connection(conn_id)
        try:
            with engine.connect() as conn:
                chunks = iter_values_from_connection(
                    conn,
                    table=table,
                    column=column,
                    schema=schema,
                    sql=sql,
                    chunk_size=self.chunk_size,
                )
                try:
                    yield chunks
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        close()
        finally:
            engine.dispose()

    # --- execution -------------------------------------------------------------------------------

    def _options(self, context: Context) -> CheckOptions:
        from numberyo_provider.checks import CheckOptions

        run_id = as_text(self.run_id) or f"{context['dag'].dag_id}:{context['run_id']}"
        cost = as_decimal("cost_estimate", self.cost_estimate)
        try:
            max_age = timedelta(days=float(str(self.max_age_days).strip()))
        except ValueError:
            raise ConfigurationError(
                f"max_age_days must be a number of days, got {self.max_age_days!r}"
            ) from None
        return CheckOptions(
            check_type=str(self.check_type),
            run_id=run_id,
            default_region=as_text(self.default_region),
            max_checks=as_int("max_checks", self.max_checks, minimum=0, optional=True),
            max_credits=as_decimal("max_credits", self.max_credits),
            max_age=max_age,
            force=as_bool("force", self.force),
            concurrency=as_int("concurrency", self.concurrency, minimum=1) or 1,
            shard_index=as_int("shard_index", self.shard_index, minimum=0) or 0,
            shards=as_int("shards", self.shards, minimum=1) or 1,
            dry_run=as_bool("plan_only", self.plan_only),
            reconcile_settle=timedelta(seconds=float(self.reconcile_settle_s)),
            cost_estimate=cost if cost is not None else DEFAULT_COST_ESTIMATE,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        # The run's modules (pyarrow, phonenumbers, ...) are imported here, not when the DAG
        # file is parsed.
        from numberyo_provider.checks import ON_INSUFFICIENT_CREDITS, run_check

        policy = str(self.on_insufficient_credits or "fail").strip().lower()
        if policy not in ON_INSUFFICIENT_CREDITS:
            raise ConfigurationError(
                f"on_insufficient_credits must be one of {', '.join(ON_INSUFFICIENT_CREDITS)}, "
                f"got {self.on_insufficient_credits!r}"
            )
        options = self._options(context)
        load = as_bool("load", self.load)
        allow_failed = as_bool("allow_failed_numbers", self.allow_failed_numbers)
        hook = NumberYoHook(self.numberyo_conn_id)
        privacy = privacy_policy(self.privacy, self.privacy_secret, hook)
        self._stop = threading.Event()
        client = hook.get_client(pool_size=options.concurrency, sleep=cancellable_sleep(self._stop))
        try:
            with self._chunks() as chunks:
                run = run_check(
                    client=client,
                    options=options,
                    chunks=chunks,
                    warehouse=self.warehouse,
                    parquet_path=self.parquet_path,
                    ledger=as_text(self.ledger),
                    storage_options=self.storage_options,
                    privacy=privacy,
                    lock_timeout=self.lock_timeout,
                    commit=load,
                    on_checker=self._attach,
                    cancel=self._stop,
                )
        finally:
            self._checker = None
            client.close()
        summary = run.summary
        result: dict[str, Any] = {
            "run_id": options.run_id,
            "summary": summary.as_dict(),
            "files": _files_to_xcom(run.files),
            "loaded": run.load.rows if run.load is not None else None,
        }
        context["ti"].xcom_push(key=XCOM_KEY, value=result)
        self.log.info("%s", summary.render())
        if run.error is not None:
            raise run.error
        if summary.stopped == "interrupted":
            raise AirflowException(f"stopped before the end: {summary.stop_message}")
        if summary.stopped == "insufficient_credits":
            _apply_credit_policy(policy, summary, self.log)
        failure = failed_numbers(
            summary,
            loaded=(run.load is not None) if load else None,
            retry="clear this task to retry them",
        )
        if failure is not None:
            if not allow_failed:
                raise failure
            self.log.warning("%s (allow_failed_numbers=True: the task succeeds)", failure)
        return result

    def _attach(self, checker: Checker) -> None:
        self._checker = checker

    def get_openlineage_facets_on_complete(self, task_instance: object) -> Lineage | None:
        """Lineage for the OpenLineage provider: the source table (or the tables of ``sql``) and
        the API -> the checks created in the account (the API's checks, which the sync reads
        back), the Parquet landing and, with ``load``, the warehouse tables. A ``plan_only`` run
        only reads the source. ``None`` without the provider."""
        from numberyo_provider.operators.lineage import check_lineage

        return check_lineage(self)

    def on_kill(self) -> None:
        """No new POST; the ones in flight finish and are recorded; the ledger stays exact."""
        checker = self._checker
        if checker is not None:
            checker.stop("the task was killed")
        self._stop.set()


def _apply_credit_policy(policy: str, summary: CheckSummary, log: Logger) -> None:
    message = (
        f"the NumberYo account ran out of credits ({summary.stop_message}): {summary.created:,} "
        f"check(s) created and kept, {summary.not_checked:,} number(s) recorded as not checked. "
        "Top up credits and clear this task: it resumes without paying twice."
    )
    if policy == "fail":
        raise AirflowException(message)
    if policy == "skip":
        raise AirflowSkipException(message)
    log.warning("%s", message)


def _engine_for_connection(conn_id: str) -> Engine:
    """A SQLAlchemy engine for an Airflow connection: the common-sql hook's when a provider is
    installed for its type, else one made from the connection's URI."""
    import sqlalchemy as sa  # here: the Task SDK does not promise to import it

    conn = BaseHook.get_connection(conn_id)
    try:
        hook = conn.get_hook()
    except Exception:  # no provider for this connection type: build the URL ourselves
        hook = None
    get_engine = getattr(hook, "get_sqlalchemy_engine", None)
    if get_engine is not None:
        try:
            engine: Engine = get_engine()
        except NotImplementedError:
            pass
        else:
            return engine
    scheme = _SQLALCHEMY_SCHEMES.get(str(conn.conn_type or "").lower())
    if scheme is None:
        raise ConfigurationError(
            f"connection {conn_id!r} (type {conn.conn_type!r}) has no SQL hook installed and no "
            "known SQLAlchemy driver: install its Airflow provider, or pass source_url"
        )
    if scheme in ("sqlite", "duckdb"):
        path = conn.host or conn.schema or ""
        return sa.create_engine(f"{scheme}:///{path}")
    url = sa.engine.URL.create(
        scheme,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return sa.create_engine(url)


class NumberYoLoadLandedOperator(BaseOperator):
    """Load every shard's landed files of a check run into the warehouse, in ONE commit.

    Pulls XCom ``numberyo_check`` of ``check_task_id`` (every map index, including shards that
    failed or skipped after landing), loads their files, the run's ledger rows
    (``check_requests``, ``rejected_numbers``) and fetches the results of any created check no
    file holds (a shard killed before landing). Runs with ``trigger_rule="all_done"`` by default,
    so what the shards did is loaded even when one ran out of credits. Returns the merged summary.
    ``concurrency``: parallel result fetches (default 8); renamed from ``max_workers`` in 0.2, the
    old name still works until 0.3.
    """

    template_fields: Sequence[str] = (
        "numberyo_conn_id",
        "check_task_id",
        "run_id",
        "warehouse",
        "parquet_path",
        "ledger",
        "privacy",
    )
    ui_color = "#d5f5e3"

    def __init__(
        self,
        *,
        check_task_id: str,
        warehouse: str,
        parquet_path: str,
        numberyo_conn_id: str = NumberYoHook.default_conn_name,
        run_id: str | None = None,
        ledger: str | None = None,
        privacy: str | None = None,
        privacy_secret: str | None = None,
        lock_timeout: float = 60.0,
        storage_options: dict[str, Any] | None = None,
        concurrency: int = 8,
        max_workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        if max_workers is not None:  # renamed in 0.2
            warn_renamed("max_workers", "concurrency", where=type(self).__name__, stacklevel=3)
            concurrency = max_workers
        kwargs.setdefault("trigger_rule", "all_done")
        default_outlets(kwargs, warehouse)
        super().__init__(**kwargs)
        self.check_task_id = check_task_id
        self.warehouse = warehouse
        self.parquet_path = parquet_path
        self.numberyo_conn_id = numberyo_conn_id
        self.run_id = run_id
        self.ledger = ledger
        self.privacy = privacy
        self.privacy_secret = privacy_secret
        self.lock_timeout = lock_timeout
        self.storage_options = storage_options
        self.concurrency = concurrency

    def execute(self, context: Context) -> dict[str, Any]:
        from numberyo_provider.checks import CheckSummary, commit_check_run
        from numberyo_provider.checks.ledger import Ledger, default_ledger_url

        pulled = context["ti"].xcom_pull(task_ids=self.check_task_id, key=XCOM_KEY)
        parts = _as_list(pulled)
        run_ids = {p["run_id"] for p in parts}
        run_id = as_text(self.run_id) or (
            run_ids.pop() if len(run_ids) == 1 else f"{context['dag'].dag_id}:{context['run_id']}"
        )
        files = [f for p in parts for f in _files_from_xcom(p.get("files"))]
        summaries = [CheckSummary.from_dict(p["summary"]) for p in parts if p.get("summary")]
        started = min((s.started_at for s in summaries), default=datetime.now(UTC))
        hook = NumberYoHook(self.numberyo_conn_id)
        privacy = privacy_policy(self.privacy, self.privacy_secret, hook)
        ledger = Ledger(as_text(self.ledger) or default_ledger_url(self.warehouse))
        try:
            if not parts and not ledger.touched_by(run_id):
                raise AirflowSkipException(
                    f"nothing to load: no check task of run {run_id} ran (see the upstream tasks)"
                )
            with hook.get_client(pool_size=self.concurrency) as client:
                report = commit_check_run(
                    warehouse=self.warehouse,
                    ledger=ledger,
                    run_id=run_id,
                    files=files,
                    started_at=started,
                    client=client,
                    parquet_path=self.parquet_path,
                    storage_options=self.storage_options,
                    privacy=privacy,
                    lock_timeout=self.lock_timeout,
                    concurrency=self.concurrency,
                )
            counts = ledger.counts(run_id)
        finally:
            ledger.close()
        merged = CheckSummary.merge(summaries).as_dict() if summaries else None
        self.log.info(
            "loaded run %s (%d shard result(s), %d file(s), %d check(s) fetched again): %s; "
            "ledger: %s",
            run_id,
            len(parts),
            len(files),
            report.repaired,
            report.load.rows,
            counts,
        )
        if merged is not None:
            self.log.info("%s", CheckSummary.merge(summaries).render())
        return {
            "run_id": run_id,
            "load_id": report.load.load_id,
            "loaded": report.load.rows,
            "repaired": report.repaired,
            "ledger": counts,
            "summary": merged,
        }

    def get_openlineage_facets_on_complete(self, task_instance: object) -> Lineage | None:
        """Lineage for the OpenLineage provider: the shards' Parquet landing (and the API, for
        the results it fetches again) -> the warehouse tables. ``None`` without the provider."""
        from numberyo_provider.operators.lineage import load_landed_lineage

        return load_landed_lineage(self)


def _as_list(pulled: Any) -> list[Mapping[str, Any]]:
    """XCom of a (possibly mapped) task as a list of dicts, missing map indexes left out."""
    if pulled is None:
        return []
    if isinstance(pulled, Mapping):
        return [pulled]
    return [p for p in list(pulled) if isinstance(p, Mapping)]


__all__ = [
    "XCOM_KEY",
    "NumberYoCreateChecksOperator",
    "NumberYoLoadLandedOperator",
    "privacy_policy",
]
