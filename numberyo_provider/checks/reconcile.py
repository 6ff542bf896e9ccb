"""Resolve ``pending`` ledger rows ("maybe sent") against the account's checks, before resending.

A row stays ``pending`` when its POST's outcome is unknown: a read timeout after sending, a dropped
connection, a 5xx that may follow the charge, or the process died between marking and recording.
The API has no idempotency key and no search by number, so the evidence is the account's history:

1. wait until every pending row is at least ``settle`` old: a request the server is still working
   on would otherwise look "not found";
2. page ``GET /api/checks`` (newest first) back to the oldest pending row's time minus ``skew``
   (clock difference between this machine and the server, and whole-second ``created_at``),
   stopping early once every row is found;
3. for each listed check of a pending type whose id the ledger does not already attribute,
   ``GET /api/checks/{id}/results`` and read the number it was for (``number_requested``; then the
   HLR ``msisdn`` or the Verify ``e164_format``);
4. match: a check of the row's type for the row's number, created at or after the row's time
   minus ``skew``. Newest checks match the newest rows first; each check settles at most one row.

Found rows become ``created`` (with the check id; the caller lands the results). Rows not found
are safe to send again. Both listing and results are free requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.api.models import Check, CheckResults, HlrResult, VerifyResult
from numberyo_provider.checks.ledger import LedgerRow
from numberyo_provider.sync.extract import CheckLister, ResultFetcher

__all__ = [
    "DEFAULT_SETTLE",
    "DEFAULT_SKEW",
    "Found",
    "ReconcileReport",
    "number_of",
    "reconcile",
    "wait_until_settled",
]

#: Margin for clock skew and the API's whole-second ``created_at``.
DEFAULT_SKEW = timedelta(minutes=10)
#: How old a pending row must be before "not in the account's checks" is believed.
DEFAULT_SETTLE = timedelta(seconds=30)


@dataclass(frozen=True)
class Found:
    row: LedgerRow
    check: Check
    results: CheckResults


@dataclass
class ReconcileReport:
    found: list[Found] = field(default_factory=list)
    not_found: list[LedgerRow] = field(default_factory=list)
    checks_listed: int = 0
    results_fetched: int = 0


def _digits(value: object) -> str | None:
    if value is None:
        return None
    text = "".join(str(value).split()).removeprefix("+")
    return text or None


def number_of(results: CheckResults) -> str | None:
    """The number a check was for, as its results tell it (digits without ``+``)."""
    for result in results.results:
        requested = (
            result.number_requested
            if isinstance(result, HlrResult)
            else result.extra.get("number_requested")
        )
        if _digits(requested):
            return _digits(requested)
    for result in results.results:
        if isinstance(result, HlrResult) and _digits(result.msisdn):
            return _digits(result.msisdn)
        if isinstance(result, VerifyResult) and _digits(result.e164_format):
            return _digits(result.e164_format)
    return None


def wait_until_settled(
    rows: Sequence[LedgerRow],
    settle: timedelta,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> None:
    """Sleep until the newest pending row is ``settle`` old (its POST has surely finished)."""
    if not rows:
        return
    newest = max(r.updated_at for r in rows)
    wait = (newest + settle - now()).total_seconds()
    if wait > 0:
        if log is not None:
            log(
                f"waiting {wait:.1f} s before reconciling {len(rows)} request(s) whose outcome is "
                "unknown, so that a request the server is still processing is not missed"
            )
        sleep(wait)


@dataclass(frozen=True)
class _Since:
    """The lister's stop rule: checks older than the window need not be listed."""

    created_at: datetime
    check_id: int | None = None


def reconcile(
    client: NumberYoClient,
    pending: Sequence[LedgerRow],
    *,
    executor: Executor,
    known_check_ids: set[int] | frozenset[int] = frozenset(),
    skew: timedelta = DEFAULT_SKEW,
    cancel: threading.Event | None = None,
) -> ReconcileReport:
    """Match pending rows to the account's checks (see the module docstring); no writes.

    Listing goes through :class:`~numberyo_provider.sync.extract.CheckLister`, which proves that no
    check was hidden by the list moving under us (checks created or deleted meanwhile): a row is
    only reported not found when the whole window was seen.
    """
    report = ReconcileReport()
    if not pending:
        return report
    window_start = min(r.requested_at for r in pending) - skew
    types = {r.check_type for r in pending}
    # (type, number) -> unmatched rows, newest first.
    open_rows: dict[tuple[str, str], list[LedgerRow]] = {}
    for row in sorted(pending, key=lambda r: r.requested_at, reverse=True):
        open_rows.setdefault((row.check_type, row.phone_number), []).append(row)
    remaining = len(pending)
    matched: set[str] = set()
    lister = CheckLister(
        client, executor, watermark=_Since(window_start), max_in_flight=4, cancel=cancel
    )
    fetcher = ResultFetcher(client, executor, cancel=cancel)
    batches = iter(lister)
    try:
        for batch in batches:
            report.checks_listed += len(batch)
            wanted = [
                c
                for c in batch
                if c.created_at >= window_start and c.type in types and c.id not in known_check_ids
            ]
            if not wanted:
                continue
            report.results_fetched += len(wanted)
            results_by_id, _errors = fetcher.submit(wanted).wait()  # 404: deleted, not ours
            for check in sorted(wanted, key=lambda c: (c.created_at, c.id), reverse=True):
                results = results_by_id.get(check.id)
                if not isinstance(results, CheckResults):  # missing (404), or a type not ours
                    continue
                number = number_of(results)
                rows = open_rows.get((check.type, number)) if number else None
                if not rows:
                    continue
                for i, row in enumerate(rows):
                    if check.created_at >= row.requested_at - skew:
                        report.found.append(Found(row, check, results))
                        matched.add(row.request_id)
                        del rows[i]
                        remaining -= 1
                        break
            if remaining == 0:
                break
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    report.not_found = [r for r in pending if r.request_id not in matched]
    return report
