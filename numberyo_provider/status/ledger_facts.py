"""The facts the request ledger holds: the ledger side of the status report.

Paid requests whose outcome is unknown (and whether a live process holds them), the claims held
(abandoned or not) and the credits spent per day and check type, read from the ledger
(:mod:`numberyo_provider.checks.ledger`) without creating it: a ledger that is not there is a note
in the report, or a :class:`~numberyo_provider.errors.StatusError` when it was asked for by name.
Phone numbers are masked.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from numberyo_provider.checks.ledger import (
    CLAIMS_TABLE,
    CREATED,
    PENDING,
    REQUESTS_TABLE,
    Ledger,
    default_ledger_url,
)
from numberyo_provider.errors import ConfigurationError, NumberYoError, StatusError
from numberyo_provider.privacy import mask_value
from numberyo_provider.status.driver_values import _as_date, _one_line
from numberyo_provider.status.report import (
    SAMPLE,
    ClaimInfo,
    CreditDay,
    PendingRequest,
    StatusReport,
)
from numberyo_provider.warehouse import mask_url


def _read_ledger(
    report: StatusReport, warehouse: str, url: str | None, since: datetime, now: datetime
) -> None:
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


def _mask(number: str) -> str:
    return mask_value(number, "international")
