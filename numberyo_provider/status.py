"""What is in a warehouse and what happened to it: the report behind ``numberyo status``.

The counterpart of ``dlt pipeline info`` / ``trace``, read from what the sync and the check runs
already write: ``_sync_state`` (the watermark), ``_loads`` (one row per load, committed or
failed), the data tables, and the request ledger (:mod:`numberyo_provider.checks.ledger`).
Nothing is written: DuckDB is opened read-only, PostgreSQL in a read-only transaction, and a
warehouse or a ledger that does not exist is reported as such, never created.

:func:`read_status` returns a :class:`StatusReport` (``as_dict()`` for JSON, ``render()`` for
people). Its :attr:`StatusReport.attention` lists what needs a person, each with a stable code
(see :data:`ATTENTION_CODES`); a report with an empty list is healthy. Phone numbers are masked
and URLs carry no password.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from numberyo_provider import schema
from numberyo_provider.errors import ConfigurationError, NeedsAttention, NumberYoError, StatusError
from numberyo_provider.privacy import mask_value

#: Why a report needs attention (``Attention.code``), and what to do about each.
ATTENTION_CODES: Mapping[str, str] = {
    "last_load_failed": "the newest load of a kind (sync or check) failed: read its error, fix "
    "the cause, run it again",
    "failed_load_not_cleaned": "a failed load's landed files are still there: the next "
    "`numberyo sync` deletes them (or delete the listed files)",
    "outcome_unknown": "paid requests whose outcome is unknown and that no live process holds: "
    "rerun the same check run (same run id) to reconcile them before anything is sent again",
    "claim_abandoned": "claims whose owner died or whose lease ran out: the next check run of "
    "these numbers reconciles them",
    "results_not_loaded": "checks loaded without any result row: the next `numberyo sync` asks "
    "for their results again (a GET, never a paid check)",
}

DEFAULT_LOADS = 10
DEFAULT_DAYS = 30
#: Rows listed per section (totals are always exact).
SAMPLE = 10


@dataclass(frozen=True)
class Attention:
    code: str
    message: str


@dataclass(frozen=True)
class LoadInfo:
    """One ``_loads`` row, summarised."""

    load_id: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    rows: dict[str, int]
    files: int
    errors: int
    error_samples: list[str]
    cleaned_at: datetime | None


@dataclass(frozen=True)
class PendingRequest:
    """A ledger request whose outcome is unknown (``pending``): maybe paid, maybe not."""

    run_id: str
    check_type: str
    phone_number: str  # masked
    attempts: int
    requested_at: datetime
    updated_at: datetime
    #: ``live`` (a running process holds it: in flight), ``abandoned`` or ``none``.
    claim: str


@dataclass(frozen=True)
class ClaimInfo:
    check_type: str
    phone_number: str  # masked
    owner: str
    run_id: str
    claimed_at: datetime
    lease_until: datetime
    abandoned: bool


@dataclass(frozen=True)
class CreditDay:
    day: date
    check_type: str
    checks: int
    credits: Decimal
    #: Checks of that day and type whose cost is unknown (not counted in ``credits``).
    unpriced: int = 0


@dataclass(frozen=True)
class UnloadedResults:
    """Checks of one type with a ``checks`` row but no row in the type's results table."""

    check_type: str
    count: int
    sample_check_ids: list[int]


@dataclass
class StatusReport:
    warehouse: str
    ledger: str | None
    generated_at: datetime
    watermark: dict[str, Any] | None
    table_rows: dict[str, int]
    loads_total: int
    loads: list[LoadInfo]
    failed_not_cleaned: list[LoadInfo]
    #: The newest load of each kind (``sync``, ``check``): whether each last ended well.
    latest_by_kind: dict[str, LoadInfo]
    credits_source: str | None
    credits_days: int
    credits: list[CreditDay]
    unloaded_results: list[UnloadedResults]
    pending_total: int = 0
    pending: list[PendingRequest] = field(default_factory=list)
    pending_unheld: int = 0
    claims_total: int = 0
    claims_abandoned: int = 0
    claims: list[ClaimInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attention: list[Attention] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention)

    def raise_for_attention(self) -> None:
        """Fail a task or a script when something needs attention (:class:`NeedsAttention`)."""
        if self.attention:
            raise NeedsAttention(self)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: datetimes as ISO 8601, credits as strings (exact)."""
        out: dict[str, Any] = _jsonable(asdict(self))
        out["needs_attention"] = self.needs_attention
        return out

    def render(self) -> str:
        """A one-screen report for people."""
        lines = [f"Warehouse {self.warehouse}", f"  ledger           {self.ledger or 'none'}"]
        wm = self.watermark
        lines.append(
            "  watermark        "
            + (
                f"check {wm['check_id']} created {_ts(wm['created_at'])} "
                f"(moved {_ts(wm['updated_at'])} by {wm['load_id']})"
                if wm
                else "none (never synced)"
            )
        )
        rows = ", ".join(f"{k} {v:,}" for k, v in self.table_rows.items())
        lines.append(f"  rows             {rows}")
        lines.append(f"Last {len(self.loads)} of {self.loads_total} load(s), newest first:")
        for load in self.loads:
            took = f"{load.duration_s:.1f} s" if load.duration_s is not None else "?"
            written = ", ".join(f"{k} {v:,}" for k, v in load.rows.items() if v) or "no rows"
            lines.append(
                f"  {_ts(load.started_at)}  {load.kind:<5} {load.status:<9} {took:>8}  "
                f"{load.load_id}  {written}" + (f"  errors {load.errors}" if load.errors else "")
            )
            for sample in load.error_samples:
                lines.append(f"      {sample}")
        if self.failed_not_cleaned:
            lines.append("Failed loads whose files were not deleted yet:")
            for load in self.failed_not_cleaned:
                lines.append(f"  {load.load_id}  {load.files} file(s)  {_ts(load.started_at)}")
        if self.ledger is not None:
            lines.append(
                f"Ledger: {self.pending_total} request(s) pending ({self.pending_unheld} not "
                f"held by a live process), {self.claims_total} claim(s) held "
                f"({self.claims_abandoned} abandoned)"
            )
            for p in self.pending:
                lines.append(
                    f"  pending {p.check_type:<6} {p.phone_number}  run {p.run_id}  "
                    f"since {_ts(p.requested_at)}  attempts {p.attempts}  claim {p.claim}"
                )
            for c in self.claims:
                state = "ABANDONED" if c.abandoned else f"lease until {_ts(c.lease_until)}"
                lines.append(
                    f"  claim   {c.check_type:<6} {c.phone_number}  run {c.run_id}  "
                    f"owner {c.owner}  {state}"
                )
        if self.credits_source is not None:
            lines.append(
                f"Credits spent per day and type, last {self.credits_days} day(s) "
                f"(from the {self.credits_source}):"
            )
            if not self.credits:
                lines.append("  none")
            for d in self.credits:
                unpriced = f"  ({d.unpriced} without a known cost)" if d.unpriced else ""
                lines.append(
                    f"  {d.day.isoformat()}  {d.check_type:<6} {d.checks:>6,} check(s)  "
                    f"{d.credits:>10} credits{unpriced}"
                )
        for u in self.unloaded_results:
            ids = ", ".join(str(i) for i in u.sample_check_ids)
            more = " ..." if u.count > len(u.sample_check_ids) else ""
            lines.append(f"{u.count} {u.check_type} check(s) without results loaded: {ids}{more}")
        for note in self.notes:
            lines.append(f"Note: {note}")
        if self.attention:
            lines.append(f"NEEDS ATTENTION ({len(self.attention)}):")
            lines.extend(f"  [{a.code}] {a.message}" for a in self.attention)
        else:
            lines.append("OK: nothing needs attention")
        return "\n".join(lines)


# --- reading -------------------------------------------------------------------------------------


def read_status(
    warehouse: str,
    *,
    ledger: str | None = None,
    loads: int = DEFAULT_LOADS,
    days: int = DEFAULT_DAYS,
    lock_timeout: float = 10.0,
    now: datetime | None = None,
) -> StatusReport:
    """The status of ``warehouse`` (``duckdb:///file`` or a SQLAlchemy URL) and of its request
    ledger (``ledger``; default :func:`~numberyo_provider.checks.ledger.default_ledger_url`, skipped
    when that default does not exist). Raises :class:`StatusError` with one line when the
    warehouse (or a ``ledger`` given explicitly) does not exist or cannot be read."""
    from numberyo_provider.warehouse import mask_url

    if isinstance(loads, bool) or not isinstance(loads, int) or loads < 0:
        raise ConfigurationError(f"loads must be a whole number >= 0, got {loads!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigurationError(f"days must be a whole number >= 1, got {days!r}")
    if not isinstance(warehouse, str) or not warehouse.strip():
        raise ConfigurationError(
            "no warehouse given: pass a URL such as duckdb:///warehouse.duckdb or "
            "postgresql+psycopg://user@host:5432/db"
        )
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(days=days)
    with _open_warehouse(warehouse.strip(), lock_timeout) as wh:
        report = StatusReport(
            warehouse=mask_url(warehouse.strip()),
            ledger=None,
            generated_at=now,
            watermark=wh.watermark(),
            table_rows=wh.table_rows(),
            loads_total=wh.count_loads(),
            loads=wh.loads(loads),
            latest_by_kind=wh.latest_by_kind(),
            failed_not_cleaned=wh.failed_not_cleaned(),
            credits_source=None,
            credits_days=days,
            credits=[],
            unloaded_results=wh.unloaded_results(),
        )
        warehouse_credits = wh.credits(since)
    _read_ledger(report, warehouse.strip(), ledger, since, now)
    if report.credits_source is None:
        report.credits_source = "warehouse"
        report.credits = warehouse_credits
    report.attention = _attention(report)
    return report


def _attention(report: StatusReport) -> list[Attention]:
    out: list[Attention] = []
    for kind, latest in sorted(report.latest_by_kind.items()):
        if latest.status != "committed":
            why = f": {latest.error_samples[-1]}" if latest.error_samples else ""
            out.append(
                Attention(
                    "last_load_failed", f"the newest {kind} load {latest.load_id} failed{why}"
                )
            )
    if report.failed_not_cleaned:
        files = sum(load.files for load in report.failed_not_cleaned)
        out.append(
            Attention(
                "failed_load_not_cleaned",
                f"{len(report.failed_not_cleaned)} failed load(s) left {files} landed file(s); "
                "the next `numberyo sync` deletes them",
            )
        )
    if report.pending_unheld:
        out.append(
            Attention(
                "outcome_unknown",
                f"{report.pending_unheld} paid request(s) with an unknown outcome and no live "
                "process holding them: rerun their check run (same run id) to reconcile them",
            )
        )
    if report.claims_abandoned:
        out.append(
            Attention(
                "claim_abandoned",
                f"{report.claims_abandoned} claim(s) abandoned (owner dead or lease expired); "
                "the next check run of these numbers reconciles them",
            )
        )
    unloaded = sum(u.count for u in report.unloaded_results)
    if unloaded:
        out.append(
            Attention(
                "results_not_loaded",
                f"{unloaded} check(s) have no results loaded; the next `numberyo sync` asks "
                "for them again",
            )
        )
    return out


# --- the warehouse side --------------------------------------------------------------------------


class _WarehouseReader:
    """Portable read-only queries over a DuckDB connection or a SQLAlchemy connection."""

    def __init__(self, run: Any, qualified: Any, day_of: Any, label: str) -> None:
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
    from numberyo_provider.warehouse import mask_url

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
    import re

    from numberyo_provider.warehouse.ddl import duckdb_qualified
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
    con = connect_with_retry(path, timeout_s=lock_timeout, read_only=True)
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


# --- the ledger side -----------------------------------------------------------------------------


def _read_ledger(
    report: StatusReport, warehouse: str, url: str | None, since: datetime, now: datetime
) -> None:
    import sqlalchemy as sa

    from numberyo_provider.checks.ledger import (
        CLAIMS_TABLE,
        CREATED,
        PENDING,
        REQUESTS_TABLE,
        Ledger,
        default_ledger_url,
    )
    from numberyo_provider.warehouse import mask_url

    explicit = url is not None
    if url is None:
        try:
            url = default_ledger_url(warehouse)
        except ConfigurationError:
            report.notes.append("no request ledger: pass --ledger to include one")
            return
    shown = mask_url(url)
    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        raise ConfigurationError(
            "the ledger must be a SQLAlchemy URL such as sqlite:////path/ledger.sqlite"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not path or not os.path.isfile(path):
            if explicit:
                raise StatusError(f"no request ledger at {path or shown} (nothing was created)")
            report.notes.append(
                f"no request ledger at {path}: `numberyo check` never ran with this warehouse"
            )
            return
    try:
        book = Ledger(url, create=False)
    except NumberYoError:
        raise
    except Exception as exc:  # a missing driver, say
        raise StatusError(f"cannot open the request ledger {shown}: {_one_line(exc)}") from None
    try:
        inspector = sa.inspect(book.engine)
        db_schema = book.requests.schema
        if not inspector.has_table(REQUESTS_TABLE, schema=db_schema):
            if explicit:
                raise StatusError(f"{shown} holds no request ledger tables")
            report.notes.append("no request ledger: `numberyo check` never ran here")
            return
        report.ledger = shown
        t = book.requests
        with book.engine.connect() as conn:
            if book.dialect == "postgresql":  # date() of a timestamptz follows the session zone
                conn.exec_driver_sql("SET TIME ZONE 'UTC'")
            pending_rows = conn.execute(
                sa.select(t).where(t.c.status == PENDING).order_by(t.c.requested_at)
            ).mappings()
            pending = [dict(r) for r in pending_rows]
            created_at = sa.func.coalesce(t.c.check_created_at, t.c.updated_at)
            day = sa.func.date(created_at)
            credit_rows = conn.execute(
                sa.select(day, t.c.check_type, t.c.user_cost, sa.func.count())
                .where(t.c.status == CREATED, created_at >= since)
                .group_by(day, t.c.check_type, t.c.user_cost)
            ).all()
        claims = book.claims_of() if inspector.has_table(CLAIMS_TABLE, schema=db_schema) else []
    except NumberYoError:
        raise
    except Exception as exc:
        raise StatusError(f"cannot read the request ledger {shown}: {_one_line(exc)}") from None
    finally:
        book.close()

    held = {(c.check_type, c.phone_number): c for c in claims}
    report.pending_total = len(pending)
    states = []
    for row in pending:
        claim = held.get((row["check_type"], row["phone_number"]))
        state = "none" if claim is None else ("abandoned" if claim.abandoned(now) else "live")
        states.append(state)
        if len(report.pending) < SAMPLE:
            report.pending.append(
                PendingRequest(
                    run_id=row["run_id"],
                    check_type=row["check_type"],
                    phone_number=_mask(row["phone_number"]),
                    attempts=int(row["attempts"]),
                    requested_at=row["requested_at"],
                    updated_at=row["updated_at"],
                    claim=state,
                )
            )
    report.pending_unheld = sum(1 for s in states if s != "live")
    report.claims_total = len(claims)
    report.claims_abandoned = sum(1 for c in claims if c.abandoned(now))
    report.claims = [
        ClaimInfo(
            check_type=c.check_type,
            phone_number=_mask(c.phone_number),
            owner=c.owner,
            run_id=c.run_id,
            claimed_at=c.claimed_at,
            lease_until=c.lease_until,
            abandoned=c.abandoned(now),
        )
        for c in claims[:SAMPLE]
    ]
    per_day: dict[tuple[date, str], list[Any]] = {}
    for day_value, check_type, cost, count in credit_rows:
        entry = per_day.setdefault((_as_date(day_value), str(check_type)), [0, Decimal(0), 0])
        n = int(str(count))
        entry[0] += n
        if cost is None:
            entry[2] += n
        else:
            entry[1] += Decimal(str(cost)) * n
    report.credits_source = "ledger"
    report.credits = [
        CreditDay(day, check_type, n, total.quantize(Decimal("0.01")), unpriced)
        for (day, check_type), (n, total, unpriced) in sorted(per_day.items())
    ]


# --- small conversions ---------------------------------------------------------------------------


def _mask(number: str) -> str:
    return mask_value(number, "international")


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def _one_line(exc: object) -> str:
    """The driver's own words on one line, without SQLAlchemy's statement dump and links."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).split("\n[SQL:")[0].split("(Background on this error")[0]
    return " ".join(text.split()) or type(inner).__name__


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _is_missing_table(exc: BaseException) -> bool:
    """A table or schema of the model is missing (PostgreSQL 42P01 / 3F000, DuckDB's catalog
    error, SQLite's "no such table")."""
    import duckdb

    if _sqlstate(exc) in ("42P01", "3F000"):
        return True
    return isinstance(exc, duckdb.CatalogException) or "no such table" in str(exc).lower()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


__all__ = [
    "ATTENTION_CODES",
    "DEFAULT_DAYS",
    "DEFAULT_LOADS",
    "Attention",
    "ClaimInfo",
    "CreditDay",
    "LoadInfo",
    "NeedsAttention",
    "PendingRequest",
    "StatusError",
    "StatusReport",
    "UnloadedResults",
    "read_status",
]
