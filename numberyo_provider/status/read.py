"""Reading a warehouse's status: the facts of both sides, gathered into one report.

The two sides (and the warehouse package, which masks URLs) are imported when a report is read,
not with this module: they bring the table definitions (pyarrow) and the drivers, which
``numberyo status --help`` and the operator's DAG file do not need.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from numberyo_provider.errors import ConfigurationError
from numberyo_provider.status.report import (
    DEFAULT_DAYS,
    DEFAULT_LOADS,
    StatusReport,
    _attention,
)


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
    from numberyo_provider.status.ledger_facts import _read_ledger
    from numberyo_provider.status.warehouse_facts import _open_warehouse
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
    now = now or datetime.now(UTC)
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


__all__ = ["read_status"]
