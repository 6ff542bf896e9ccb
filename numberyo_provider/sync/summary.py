"""What a sync run did: the summary `run_sync` returns, the XCom and the CLI report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numberyo_provider.warehouse.base import Watermark


@dataclass
class SyncSummary:
    """What a run did; ``as_dict()`` is JSON-able (the operator's XCom, the CLI's ``--json``)."""

    load_id: str
    warehouse: str
    parquet_path: str
    full_refresh: bool
    started_at: datetime
    finished_at: datetime | None = None
    duration_s: float = 0.0
    #: Distinct checks listed (including the overlap already loaded).
    checks_seen: int = 0
    #: Checks whose rows this run landed (not yet in the warehouse, or all under full refresh).
    checks_new: int = 0
    #: ``GET /api/checks/{id}/results`` answered (errors excluded).
    results_fetched: int = 0
    #: Result rows landed per results table.
    results_loaded: dict[str, int] = field(default_factory=dict)
    #: Rows landed per data table.
    rows_landed: dict[str, int] = field(default_factory=dict)
    #: Rows written per table by the commit, as the warehouse reports them.
    rows_committed: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[dict[str, Any]] = field(default_factory=list)
    #: Checks of types this version does not model, per type: in ``checks``, their results whole
    #: as JSON in ``other_results``.
    other_types: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    listing_passes: int = 0
    drift_detected: bool = False
    #: ``pagination.total`` as the run found it first (the account's size).
    account_total: int | None = None
    #: ``pagination.total`` of the last page read (the account's size when listing ended).
    account_total_end: int | None = None
    #: Checks the falls / rises of the total show were deleted / created upstream while listing.
    deleted_while_listing: int = 0
    created_while_listing: int = 0
    #: The listing read to the end of the list (False: an incremental run that stopped at the
    #: watermark on purpose, the older checks being loaded already).
    listing_complete: bool = False
    watermark_before: dict[str, Any] | None = None
    watermark_after: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)
    #: Files of earlier failed loads handed to the clean-up (deleted if they still existed).
    failed_load_files_cleaned: int = 0
    #: Hidden temp files that killed runs left while landing, deleted by this run's set-up.
    abandoned_temp_files_removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("started_at", "finished_at"):
            value = out[key]
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        out["files_landed"] = len(self.files)
        return out

    def render(self) -> str:
        """A one-screen report for people (the CLI prints it)."""
        wm_before = wm_text(self.watermark_before)
        wm_after = wm_text(self.watermark_after)
        results = ", ".join(f"{k} {v:,}" for k, v in sorted(self.results_loaded.items()))
        size = self._listing_note()
        lines = [
            f"Sync {self.load_id} committed in {self.duration_s:.1f} s"
            + (" (full refresh)" if self.full_refresh else ""),
            f"  warehouse        {self.warehouse}",
            f"  parquet          {self.parquet_path} ({len(self.files)} files landed)",
            f"  checks listed    {self.checks_seen:,}{size}",
            f"  checks loaded    {self.checks_new:,}",
            f"  result rows      {results or 'none'}",
            f"  pages read       {self.pages:,} in {self.listing_passes} pass(es)"
            + ("; the list changed while paging (handled)" if self.drift_detected else ""),
            f"  watermark        {wm_before} -> {wm_after}",
        ]
        if self.other_types:
            kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(self.other_types.items()))
            lines.append(
                f"  other types      {kinds} (results kept whole as JSON in other_results; "
                "a later release types them)"
            )
        if self.errors:
            lines.append(
                f"  check errors     {self.errors} (recorded in _loads.errors, not fatal):"
            )
            for err in self.error_samples:
                lines.append(f"    check {err['check_id']}: {err['status']} {err['message']}")
            if self.errors > len(self.error_samples):
                lines.append(f"    ... and {self.errors - len(self.error_samples)} more")
        else:
            lines.append("  check errors     none")
        return "\n".join(lines)

    def _listing_note(self) -> str:
        if self.account_total is None:
            return ""
        start, end = self.account_total, self.account_total_end
        if end is None or end == start:
            note = f"account holds {start:,}"
        else:
            note = f"account held {start:,} at the start, {end:,} at the end"
        changes = []
        if self.deleted_while_listing:
            changes.append(f"{self.deleted_while_listing:,} deleted upstream while listing")
        if self.created_while_listing:
            changes.append(
                f"{self.created_while_listing:,} created while listing (newer ones: next run)"
            )
        if changes:
            note += ": " + ", ".join(changes)
        if not self.listing_complete:
            note += "; stopped at the watermark: older checks are loaded already"
        return f" ({note})"


def wm_text(value: Mapping[str, Any] | None) -> str:
    if not value:
        return "none"
    return f"check {value['check_id']} ({value['created_at']})"


def wm_dict(wm: Watermark | None) -> dict[str, Any] | None:
    if wm is None:
        return None
    created = wm.created_at
    return {
        "check_id": wm.check_id,
        "created_at": created.isoformat() if isinstance(created, datetime) else created,
    }
