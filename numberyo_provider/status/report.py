"""The status report: what :func:`~numberyo_provider.status.read_status` returns.

The model (:class:`StatusReport` and its parts, plain data) and the rules of what needs a person
(:func:`_attention`, each item with a stable code from :data:`ATTENTION_CODES`). Gathering the
facts is the job of ``warehouse_facts`` and ``ledger_facts``; showing them, of ``render``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from numberyo_provider.errors import NeedsAttention
from numberyo_provider.status.render import render_json, render_text

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
        return render_json(self)

    def render(self) -> str:
        """A one-screen report for people."""
        return render_text(self)


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


__all__ = [
    "ATTENTION_CODES",
    "DEFAULT_DAYS",
    "DEFAULT_LOADS",
    "SAMPLE",
    "Attention",
    "ClaimInfo",
    "CreditDay",
    "LoadInfo",
    "PendingRequest",
    "StatusReport",
    "UnloadedResults",
]
