"""The :class:`Ledger`: every read and write of the request ledger, each in one transaction.

What the rows mean and why the ledger is its own database: :mod:`numberyo_provider.checks.ledger`.
Why one module of about 650 lines: the class is the ledger's transactions, and the claims and the
request rows change together in them (a claim is granted and its number marked ``pending`` in
one; an outcome is recorded and its claim released in one), so splitting claims from requests
would split those transactions. Values, owners and the database setup live beside it
(:mod:`.records`, :mod:`.owners`, :mod:`.database`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from numberyo_provider import schema
from numberyo_provider.checks.ledger.database import (
    SQLITE_BUSY_TIMEOUT_MS,
    SUPPORTED_DIALECTS,
    UTCDateTime,
    ledger_tables,
    retrying_conflicts,
    safe_url,
    sqlite_on_begin,
    sqlite_on_connect,
)
from numberyo_provider.checks.ledger.records import (
    CREATED,
    DEFAULT_CLAIM_LEASE,
    NOT_CHECKED,
    PENDING,
    Claim,
    ClaimResult,
    LedgerRow,
    Outcome,
    claim_from_mapping,
    new_rows,
    row_from_mapping,
    utcnow,
)
from numberyo_provider.errors import ConfigurationError
from numberyo_provider.private_files import create_private_file, make_private_dirs

__all__ = ["EXPORT_BATCH_ROWS", "Ledger"]

#: Rows per Arrow batch exported to the warehouse (about 5 MB of Python values a batch).
EXPORT_BATCH_ROWS = 20_000


class Ledger:
    """The request ledger in a SQLite or PostgreSQL database (see the module docstring).

    Thread-safe: writes are serialised by a lock (one writer per process is all a batch needs).
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        try:
            parsed = sa.engine.make_url(url)
        except Exception:
            raise ConfigurationError(
                "ledger must be a SQLAlchemy URL such as sqlite:////path/ledger.sqlite or "
                "postgresql+psycopg://user@host/db"
            ) from None
        dialect = parsed.get_backend_name()
        if dialect not in SUPPORTED_DIALECTS:
            raise ConfigurationError(
                f"the request ledger supports SQLite and PostgreSQL, not {dialect!r} "
                f"({safe_url(url)}): pass ledger=sqlite:////path/ledger.sqlite"
            )
        self.dialect = dialect
        self.url = parsed
        if dialect == "sqlite":
            database = parsed.database or ""
            if not database or database == ":memory:":
                raise ConfigurationError(
                    "the request ledger must outlive the process: use a SQLite file, not :memory:"
                )
            make_private_dirs(Path(database).expanduser().parent)
            # Numbers in clear: born 0600; SQLite gives -wal/-shm the mode of the main file.
            create_private_file(Path(database).expanduser())
            self.engine: Engine = sa.create_engine(
                parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
            sa.event.listen(self.engine, "connect", sqlite_on_connect)
            sa.event.listen(self.engine, "begin", sqlite_on_begin)
            db_schema = None
        else:
            self.engine = sa.create_engine(parsed, pool_pre_ping=True)
            db_schema = schema.SCHEMA_NAME
        self._md, self.requests, self.rejected, self.claims = ledger_tables(db_schema)
        self._db_schema = db_schema
        self._lock = threading.Lock()
        if create:
            self.ensure()

    def __repr__(self) -> str:
        return f"Ledger({self.url.render_as_string(hide_password=True)!r})"

    def ensure(self) -> None:
        """Create the ledger tables if missing (safe when several shard tasks start at once)."""
        with self._write() as conn:
            if self.dialect == "postgresql":
                # Concurrent CREATE ... IF NOT EXISTS can still collide in PostgreSQL's catalog.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7201904511)"))
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self._db_schema}"'))
            self._md.create_all(conn, checkfirst=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes ---------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE), serialised within the process."""
        with self._lock, self.engine.connect() as conn:
            conn = conn.execution_options(ledger_write=True)
            with conn.begin():
                yield conn

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def mark_pending(
        self,
        run_id: str,
        check_type: str,
        numbers: Sequence[tuple[str, str]],
        *,
        now: datetime | None = None,
    ) -> None:
        """Commit ``(request_id, digits)`` as pending, attempts + 1, without a claim.

        For tests and tools that build a ledger by hand; the checker sends only what
        :meth:`claim` granted. A row already ``created`` or ``pending`` is never touched.
        """
        if not numbers:
            return
        now = now or utcnow()
        with self._write() as conn:
            conn.execute(
                self._pending_upsert(),
                new_rows(run_id, check_type, numbers, PENDING, 1, None, now),
            )

    @retrying_conflicts
    def claim(
        self,
        run_id: str,
        check_type: str,
        numbers: Sequence[tuple[str, str]],
        *,
        owner: str,
        lease: timedelta = DEFAULT_CLAIM_LEASE,
        created_since: datetime | None = None,
        now: datetime | None = None,
    ) -> ClaimResult:
        """Claim ``(request_id, digits)`` pairs for ``owner`` and mark the granted ones pending,
        in ONE transaction: the only way a number may become ``pending`` before its POST.

        A number is granted only when no other owner holds it, no row of it (any run) is
        ``pending``, and none is ``created`` by this run or at or after ``created_since`` (None:
        any time). Claims of numbers not granted are not kept.
        """
        result = ClaimResult()
        if not numbers:
            return result
        now = now or utcnow()
        c, t = self.claims, self.requests
        # Sorted: concurrent claimers then lock the keys in one order, which PostgreSQL needs to
        # never deadlock two multi-row inserts.
        by_digits = dict(sorted((d, rid) for rid, d in numbers))
        digits = list(by_digits)
        created_at = sa.func.coalesce(t.c.check_created_at, t.c.updated_at)
        with self._write() as conn:
            conn.execute(
                self._insert(c).on_conflict_do_nothing(),
                [
                    {
                        "check_type": check_type,
                        "phone_number": d,
                        "owner": owner,
                        "run_id": run_id,
                        "request_id": rid,
                        "claimed_at": now,
                        "lease_until": now + lease,
                    }
                    for d, rid in by_digits.items()
                ],
            )
            holders = self._claims_where(conn, check_type, digits)
            blocking = conn.execute(
                sa.select(t.c.phone_number, t.c.status, t.c.run_id).where(
                    t.c.check_type == check_type,
                    t.c.phone_number.in_(digits),
                    sa.or_(
                        t.c.status == PENDING,
                        sa.and_(
                            t.c.status == CREATED,
                            sa.or_(
                                t.c.run_id == run_id,
                                sa.true() if created_since is None else created_at >= created_since,
                            ),
                        ),
                    ),
                )
            ).all()
            pending = {str(r[0]) for r in blocking if r[1] == PENDING}
            created = {str(r[0]) for r in blocking if r[1] == CREATED}
            result.created_by_run = {
                str(r[0]) for r in blocking if r[1] == CREATED and r[2] == run_id
            }
            dropped: list[str] = []
            for d, rid in by_digits.items():
                holder = holders.get(d)
                if holder is None or holder.owner != owner:
                    if holder is not None:
                        result.held.append((rid, d, holder))
                    else:  # pragma: no cover - the insert above or another owner holds it
                        result.unresolved.append((rid, d))
                elif d in pending:
                    result.unresolved.append((rid, d))
                    dropped.append(d)
                elif d in created:
                    result.created.append((rid, d))
                    dropped.append(d)
                else:
                    result.granted.append((rid, d))
            if dropped:
                conn.execute(
                    sa.delete(c).where(
                        c.c.owner == owner,
                        c.c.check_type == check_type,
                        c.c.phone_number.in_(dropped),
                    )
                )
            if result.granted:
                conn.execute(
                    self._pending_upsert(),
                    new_rows(run_id, check_type, result.granted, PENDING, 1, None, now),
                )
        return result

    @retrying_conflicts
    def acquire(
        self,
        check_type: str,
        rows: Sequence[LedgerRow],
        *,
        owner: str,
        lease: timedelta = DEFAULT_CLAIM_LEASE,
        now: datetime | None = None,
    ) -> list[LedgerRow]:
        """Take the claims of ``pending`` rows so that ``owner`` may reconcile them: a number
        nobody holds is claimed; one whose claim was abandoned (lease expired, owner dead) is
        taken over by compare-and-set; a live claim of another owner is left alone. Returns the
        rows now held by ``owner`` (re-read, still ``pending``): only those may be reconciled."""
        if not rows:
            return []
        now = now or utcnow()
        c = self.claims
        digits = sorted({r.phone_number for r in rows})
        with self._write() as conn:
            conn.execute(
                self._insert(c).on_conflict_do_nothing(),
                [
                    {
                        "check_type": check_type,
                        "phone_number": r.phone_number,
                        "owner": owner,
                        "run_id": r.run_id,
                        "request_id": r.request_id,
                        "claimed_at": now,
                        "lease_until": now + lease,
                    }
                    for r in sorted({r.phone_number: r for r in rows}.values(), key=_by_number)
                ],
            )
            for claim in self._claims_where(conn, check_type, digits).values():
                if claim.owner != owner and claim.abandoned(now):
                    conn.execute(
                        sa.update(c)
                        .where(
                            c.c.check_type == check_type,
                            c.c.phone_number == claim.phone_number,
                            c.c.owner == claim.owner,
                            c.c.lease_until == claim.lease_until,
                        )
                        .values(owner=owner, claimed_at=now, lease_until=now + lease)
                    )
            mine = {
                d
                for d, claim in self._claims_where(conn, check_type, digits).items()
                if claim.owner == owner
            }
            # Re-read the rows under the claims: one may have been settled since the caller read
            # it (its owner recorded the answer, then released the claim this call just took).
            t = self.requests
            wanted = [r.request_id for r in rows if r.phone_number in mine]
            fresh = (
                self._rows(
                    conn,
                    sa.select(t).where(t.c.request_id.in_(wanted), t.c.status == PENDING),
                )
                if wanted
                else []
            )
            settled = mine - {r.phone_number for r in fresh}
            if settled:
                conn.execute(
                    sa.delete(c).where(
                        c.c.owner == owner,
                        c.c.check_type == check_type,
                        c.c.phone_number.in_(sorted(settled)),
                    )
                )
        return fresh

    def renew(self, owner: str, lease: timedelta = DEFAULT_CLAIM_LEASE) -> int:
        """Extend every claim of ``owner`` (its heartbeat); returns how many it holds."""
        now = utcnow()
        c = self.claims
        with self._write() as conn:
            done = conn.execute(
                sa.update(c).where(c.c.owner == owner).values(lease_until=now + lease)
            )
        return int(done.rowcount or 0)

    def release(self, owner: str, request_ids: Iterable[str] | None = None) -> None:
        """Drop claims of ``owner`` (all, or those of ``request_ids``) whose outcome is known."""
        c = self.claims
        stmt = sa.delete(c).where(c.c.owner == owner)
        if request_ids is not None:
            ids = list(request_ids)
            if not ids:
                return
            stmt = stmt.where(c.c.request_id.in_(ids))
        with self._write() as conn:
            conn.execute(stmt)

    def release_settled(self, owner: str) -> None:
        """Drop the claims of ``owner`` whose request is no longer ``pending`` (a safety net at
        the end of a run: an unknown outcome keeps its claim until it is reconciled)."""
        c, t = self.claims, self.requests
        still_pending = sa.select(t.c.request_id).where(
            t.c.request_id == c.c.request_id, t.c.status == PENDING
        )
        with self._write() as conn:
            conn.execute(sa.delete(c).where(c.c.owner == owner, ~sa.exists(still_pending)))

    def claims_of(self, check_type: str | None = None, *, owner: str | None = None) -> list[Claim]:
        """Claims now in the ledger (for status reports and tests)."""
        c = self.claims
        stmt = sa.select(c).order_by(c.c.claimed_at, c.c.phone_number)
        if check_type is not None:
            stmt = stmt.where(c.c.check_type == check_type)
        if owner is not None:
            stmt = stmt.where(c.c.owner == owner)
        with self.engine.connect() as conn:
            return [claim_from_mapping(m) for m in conn.execute(stmt).mappings()]

    def _claims_where(
        self, conn: Connection, check_type: str, digits: Sequence[str]
    ) -> dict[str, Claim]:
        c = self.claims
        stmt = sa.select(c).where(c.c.check_type == check_type, c.c.phone_number.in_(digits))
        return {
            str(m["phone_number"]): claim_from_mapping(m) for m in conn.execute(stmt).mappings()
        }

    def _pending_upsert(self) -> postgresql.Insert | sqlite.Insert:
        t = self.requests
        stmt = self._insert(t)
        return stmt.on_conflict_do_update(
            index_elements=[t.c.request_id],
            set_={
                "status": PENDING,
                "attempts": t.c.attempts + 1,
                "error": None,
                "updated_at": stmt.excluded.updated_at,
                "last_run_id": stmt.excluded.last_run_id,
            },
            where=sa.and_(t.c.status != CREATED, t.c.status != PENDING),
        )

    def mark_not_checked(
        self,
        run_id: str,
        check_type: str,
        numbers: Sequence[tuple[str, str]],
        reason: str,
        *,
        now: datetime | None = None,
    ) -> None:
        """Record numbers that this run will not send (budget, credits, stop), never sent."""
        if not numbers:
            return
        now = now or utcnow()
        t = self.requests
        stmt = self._insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.request_id],
            set_={
                "status": NOT_CHECKED,
                "error": stmt.excluded.error,
                "updated_at": stmt.excluded.updated_at,
                "last_run_id": stmt.excluded.last_run_id,
            },
            # Never downgrade a created row, nor a pending one (it may have been sent).
            where=sa.and_(t.c.status != CREATED, t.c.status != PENDING),
        )
        with self._write() as conn:
            conn.execute(stmt, new_rows(run_id, check_type, numbers, NOT_CHECKED, 0, reason, now))

    def record(
        self,
        run_id: str,
        outcomes: Sequence[Outcome],
        *,
        owner: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Apply outcomes to existing rows, in one transaction; ``run_id`` is who changed them.

        With ``owner``, the same transaction releases its claims of the rows whose outcome is now
        definite (anything but ``pending``), so the number is never unclaimed and unrecorded.
        """
        if not outcomes:
            return
        now = now or utcnow()
        t = self.requests
        stmt = (
            sa.update(t)
            .where(
                t.c.request_id == sa.bindparam("b_request_id"),
                # ``created`` is final: nothing may turn a paid check back into "send it again".
                sa.or_(t.c.status != CREATED, sa.bindparam("b_final") == CREATED),
            )
            .values(
                status=sa.bindparam("b_status"),
                check_id=sa.func.coalesce(
                    sa.bindparam("b_check_id", type_=sa.BigInteger), t.c.check_id
                ),
                error=sa.bindparam("b_error"),
                attempts=t.c.attempts + sa.bindparam("b_delta", type_=sa.Integer),
                updated_at=sa.bindparam("b_now", type_=UTCDateTime),
                check_created_at=sa.func.coalesce(
                    sa.bindparam("b_created_at", type_=UTCDateTime), t.c.check_created_at
                ),
                user_cost=sa.func.coalesce(sa.bindparam("b_cost", type_=sa.String), t.c.user_cost),
                last_run_id=sa.bindparam("b_run"),
            )
        )
        params = [
            {
                "b_request_id": o.request_id,
                "b_status": o.status,
                "b_final": o.status,
                "b_check_id": o.check_id,
                "b_error": o.error,
                "b_delta": o.attempts_delta,
                "b_now": now,
                "b_created_at": o.check_created_at,
                "b_cost": None if o.user_cost is None else str(o.user_cost),
                "b_run": run_id,
            }
            for o in outcomes
        ]
        settled = [o.request_id for o in outcomes if o.status != PENDING]
        c = self.claims
        with self._write() as conn:
            conn.execute(stmt, params)
            if owner is not None and settled:
                conn.execute(sa.delete(c).where(c.c.owner == owner, c.c.request_id.in_(settled)))

    def reject(
        self, run_id: str, rejected: Iterable[tuple[str, str]], *, now: datetime | None = None
    ) -> None:
        """Record ``(raw_value, reason)`` pairs of this run (idempotent by primary key)."""
        now = now or utcnow()
        rows = [
            {"run_id": run_id, "raw_value": raw, "reason": reason, "rejected_at": now}
            for raw, reason in rejected
        ]
        if not rows:
            return
        stmt = self._insert(self.rejected).on_conflict_do_nothing()
        with self._write() as conn:
            conn.execute(stmt, rows)

    # --- reads ----------------------------------------------------------------------------------

    def _rows(self, conn: Connection, stmt: sa.Select[Any]) -> list[LedgerRow]:
        return [row_from_mapping(r) for r in conn.execute(stmt).mappings()]

    def rows(
        self,
        *,
        run_id: str | None = None,
        check_type: str | None = None,
        status: str | Sequence[str] | None = None,
    ) -> list[LedgerRow]:
        """Rows matching every given filter (for resumes, reconciliation and tests)."""
        t = self.requests
        stmt = sa.select(t).order_by(t.c.requested_at, t.c.request_id)
        if run_id is not None:
            stmt = stmt.where(t.c.run_id == run_id)
        if check_type is not None:
            stmt = stmt.where(t.c.check_type == check_type)
        if isinstance(status, str):
            stmt = stmt.where(t.c.status == status)
        elif status is not None:
            stmt = stmt.where(t.c.status.in_(list(status)))
        with self.engine.connect() as conn:
            return self._rows(conn, stmt)

    def touched_by(self, run_id: str, *, status: str | None = None) -> list[LedgerRow]:
        """Rows of ``run_id`` and rows it changed (e.g. an earlier run's, reconciled by it)."""
        t = self.requests
        stmt = (
            sa.select(t)
            .where(sa.or_(t.c.run_id == run_id, t.c.last_run_id == run_id))
            .order_by(t.c.requested_at, t.c.request_id)
        )
        if status is not None:
            stmt = stmt.where(t.c.status == status)
        with self.engine.connect() as conn:
            return self._rows(conn, stmt)

    def iter_created_numbers(self, check_type: str, since: datetime) -> Iterator[str]:
        """Numbers of any run created (as a check of ``check_type``) at or after ``since``."""
        t = self.requests
        created = sa.func.coalesce(t.c.check_created_at, t.c.updated_at)
        stmt = (
            sa.select(t.c.phone_number)
            .where(t.c.check_type == check_type, t.c.status == CREATED, created >= since)
            .execution_options(yield_per=10_000)
        )
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                yield str(row[0])

    def known_check_ids(self, since: datetime) -> set[int]:
        """Check ids the ledger already attributes to a number (created at or after ``since``)."""
        t = self.requests
        created = sa.func.coalesce(t.c.check_created_at, t.c.updated_at)
        stmt = sa.select(t.c.check_id).where(t.c.check_id.is_not(None), created >= since)
        with self.engine.connect() as conn:
            return {int(row[0]) for row in conn.execute(stmt)}

    def latest_cost(self, check_type: str) -> Decimal | None:
        """The ``user_cost`` of the newest created check of this type (to budget before the first
        check of a run)."""
        t = self.requests
        stmt = (
            sa.select(t.c.user_cost)
            .where(t.c.check_type == check_type, t.c.user_cost.is_not(None))
            .order_by(sa.func.coalesce(t.c.check_created_at, t.c.updated_at).desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            value = conn.execute(stmt).scalar()
        return None if value is None else Decimal(value)

    def counts(self, run_id: str) -> dict[str, int]:
        """Rows of one run per status."""
        t = self.requests
        stmt = (
            sa.select(t.c.status, sa.func.count()).where(t.c.run_id == run_id).group_by(t.c.status)
        )
        with self.engine.connect() as conn:
            return {str(row[0]): int(row[1]) for row in conn.execute(stmt)}

    # --- export to the warehouse ----------------------------------------------------------------

    def iter_request_batches(
        self, run_id: str, *, batch_size: int = EXPORT_BATCH_ROWS
    ) -> Iterator[pa.Table]:
        """The rows a run wrote or changed, as Arrow tables of ``schema.CHECK_REQUESTS``.

        Streamed in batches of ``batch_size`` rows (a run over a million-row source leaves a
        million ``not_checked`` rows): memory stays flat whatever the run's size.
        """
        t = self.requests
        target = schema.CHECK_REQUESTS.schema
        stmt = sa.select(*[self._exported(t.c[f.name]) for f in target]).where(
            sa.or_(t.c.run_id == run_id, t.c.last_run_id == run_id)
        )
        yield from self._batches(stmt, target, batch_size)

    def iter_rejected_batches(
        self, run_id: str, *, batch_size: int = EXPORT_BATCH_ROWS
    ) -> Iterator[pa.Table]:
        """The values a run rejected, as Arrow tables of ``schema.REJECTED_NUMBERS``."""
        t = self.rejected
        target = schema.REJECTED_NUMBERS.schema
        stmt = sa.select(*[self._exported(t.c[f.name]) for f in target]).where(t.c.run_id == run_id)
        yield from self._batches(stmt, target, batch_size)

    def _exported(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        """SQLite timestamps as their stored text: Arrow parses a batch of them in C, where
        SQLAlchemy's per-value parsing took most of an export's time."""
        if self.dialect == "sqlite" and isinstance(column.type, UTCDateTime):
            return sa.type_coerce(column, sa.String).label(column.name)
        return column

    def _batches(self, stmt: sa.Select[Any], target: pa.Schema, size: int) -> Iterator[pa.Table]:
        with self.engine.connect() as conn:
            # Server-side cursor on PostgreSQL; SQLite's cursor is lazy already.
            result = conn.execution_options(stream_results=self.dialect != "sqlite").execute(stmt)
            while chunk := result.fetchmany(size):
                columns = list(zip(*chunk, strict=True))
                yield pa.Table.from_arrays(
                    [_arrow_column(col, f.type) for col, f in zip(columns, target, strict=True)],
                    schema=target,
                )
                del chunk, columns


def _arrow_column(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    """A column of exported values; timestamps may come as SQLite's naive UTC text."""
    if pa.types.is_timestamp(typ) and any(isinstance(v, str) for v in values):
        naive = pa.array(values, pa.string()).cast(pa.timestamp(typ.unit))
        return naive.cast(typ)  # naive UTC -> the same instants, UTC-aware
    return pa.array(values, type=typ)


def _by_number(row: LedgerRow) -> str:
    return row.phone_number
