"""The status report shown: one screen of text for people, JSON for machines.

``numberyo status`` prints :func:`render_text` (or :func:`render_json` with ``--json``); the
operator logs the text and returns the JSON as its XCom. Both are views of a
:class:`~numberyo_provider.status.report.StatusReport` and add nothing to it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numberyo_provider.status.report import StatusReport


def render_json(report: StatusReport) -> dict[str, Any]:
    """JSON-able: datetimes as ISO 8601, credits as strings (exact)."""
    out: dict[str, Any] = _jsonable(asdict(report))
    out["needs_attention"] = report.needs_attention
    return out


def render_text(report: StatusReport) -> str:
    """A one-screen report for people."""
    lines = [f"Warehouse {report.warehouse}", f"  ledger           {report.ledger or 'none'}"]
    wm = report.watermark
    lines.append(
        "  watermark        "
        + (
            f"check {wm['check_id']} created {_ts(wm['created_at'])} "
            f"(moved {_ts(wm['updated_at'])} by {wm['load_id']})"
            if wm
            else "none (never synced)"
        )
    )
    rows = ", ".join(f"{k} {v:,}" for k, v in report.table_rows.items())
    lines.append(f"  rows             {rows}")
    lines.append(f"Last {len(report.loads)} of {report.loads_total} load(s), newest first:")
    for load in report.loads:
        took = f"{load.duration_s:.1f} s" if load.duration_s is not None else "?"
        written = ", ".join(f"{k} {v:,}" for k, v in load.rows.items() if v) or "no rows"
        lines.append(
            f"  {_ts(load.started_at)}  {load.kind:<5} {load.status:<9} {took:>8}  "
            f"{load.load_id}  {written}" + (f"  errors {load.errors}" if load.errors else "")
        )
        for sample in load.error_samples:
            lines.append(f"      {sample}")
    if report.failed_not_cleaned:
        lines.append("Failed loads whose files were not deleted yet:")
        for load in report.failed_not_cleaned:
            lines.append(f"  {load.load_id}  {load.files} file(s)  {_ts(load.started_at)}")
    if report.ledger is not None:
        lines.append(
            f"Ledger: {report.pending_total} request(s) pending ({report.pending_unheld} not "
            f"held by a live process), {report.claims_total} claim(s) held "
            f"({report.claims_abandoned} abandoned)"
        )
        for p in report.pending:
            lines.append(
                f"  pending {p.check_type:<6} {p.phone_number}  run {p.run_id}  "
                f"since {_ts(p.requested_at)}  attempts {p.attempts}  claim {p.claim}"
            )
        for c in report.claims:
            state = "ABANDONED" if c.abandoned else f"lease until {_ts(c.lease_until)}"
            lines.append(
                f"  claim   {c.check_type:<6} {c.phone_number}  run {c.run_id}  "
                f"owner {c.owner}  {state}"
            )
    if report.credits_source is not None:
        lines.append(
            f"Credits spent per day and type, last {report.credits_days} day(s) "
            f"(from the {report.credits_source}):"
        )
        if not report.credits:
            lines.append("  none")
        for d in report.credits:
            unpriced = f"  ({d.unpriced} without a known cost)" if d.unpriced else ""
            lines.append(
                f"  {d.day.isoformat()}  {d.check_type:<6} {d.checks:>6,} check(s)  "
                f"{d.credits:>10} credits{unpriced}"
            )
    for u in report.unloaded_results:
        ids = ", ".join(str(i) for i in u.sample_check_ids)
        more = " ..." if u.count > len(u.sample_check_ids) else ""
        lines.append(f"{u.count} {u.check_type} check(s) without results loaded: {ids}{more}")
    for note in report.notes:
        lines.append(f"Note: {note}")
    if report.attention:
        lines.append(f"NEEDS ATTENTION ({len(report.attention)}):")
        lines.extend(f"  [{a.code}] {a.message}" for a in report.attention)
    else:
        lines.append("OK: nothing needs attention")
    return "\n".join(lines)


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


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


__all__ = ["render_json", "render_text"]
