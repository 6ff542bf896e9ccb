"""One check run end to end, as the CLI and the operators run it: :func:`run_check`.

In order: the source is validated (a usage error writes nothing), the numbers with a fresh result
in the warehouse are read, a :class:`~numberyo_provider.checks.engine.Checker` sends and lands, and
(with ``commit``) :func:`~numberyo_provider.checks.landing.commit_check_run` loads what the run did
in one transaction. A failure of the checker is recorded, what was done is still landed and
loaded, and the failure is handed back in :attr:`CheckRun.error` for the caller to raise.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from numberyo_provider.checks.engine import Checker
from numberyo_provider.checks.landing import commit_check_run, one_line
from numberyo_provider.checks.ledger import Ledger, default_ledger_url
from numberyo_provider.checks.options import STOP_ERROR, CheckOptions, CheckSummary, check_load_id
from numberyo_provider.checks.source import Source
from numberyo_provider.deprecation import renamed_keywords
from numberyo_provider.sync.land import ParquetLander
from numberyo_provider.warehouse import connect_warehouse

if TYPE_CHECKING:
    from numberyo_provider.api.client import NumberYoClient
    from numberyo_provider.privacy import PrivacyPolicy
    from numberyo_provider.progress import Progress
    from numberyo_provider.sync.land import LandedFile
    from numberyo_provider.warehouse import LoadResult

log = logging.getLogger(__name__)

__all__ = ["CheckRun", "new_lander_id", "run_check"]


@dataclass
class CheckRun:
    """What :func:`run_check` did. ``error``: the failure that stopped it (already recorded and,
    when ``commit``, with everything done so far committed); the caller re-raises it."""

    summary: CheckSummary
    files: list[LandedFile]
    load: LoadResult | None = None
    repaired: int = 0
    error: BaseException | None = None


def new_lander_id(load_id: str, shard_index: int, shards: int) -> str:
    """File-name prefix of one shard attempt's landed files (unique, under the run's load id)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    part = f"-s{shard_index}of{shards}" if shards > 1 else ""
    return f"{load_id}{part}-{stamp}-{uuid.uuid4().hex[:6]}"


@renamed_keywords(parquet_root="parquet_path", lock_timeout_s="lock_timeout", stop_event="cancel")
def run_check(
    *,
    client: NumberYoClient,
    options: CheckOptions,
    chunks: Iterable[Sequence[object]],
    warehouse: str,
    parquet_path: str,
    ledger: str | Ledger | None = None,
    storage_options: Mapping[str, Any] | None = None,
    privacy: PrivacyPolicy | None = None,
    lock_timeout: float = 60.0,
    commit: bool = True,
    progress: Progress | None = None,
    on_checker: Callable[[Checker], None] | None = None,
    on_result: Callable[[str, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> CheckRun:
    """Check the numbers of ``chunks`` and land the results; with ``commit`` also load them (and
    the run's ledger rows) into the warehouse in one transaction.

    ``chunks``: a :class:`~numberyo_provider.checks.source.Source` is validated before anything is
    created, so a usage error leaves no warehouse, ledger or landing file.
    ``ledger``: a :class:`Ledger`, its URL, or None for the default beside the warehouse
    (:func:`~numberyo_provider.checks.ledger.default_ledger_url`). ``on_checker`` receives the
    :class:`Checker` before it starts (to wire ``stop()`` to Ctrl-C or ``on_kill``);
    ``cancel`` is the event the checker sets to stop (share it with the client's ``sleep``).
    ``parquet_path``: where results land (a directory or ``s3://bucket/prefix``);
    ``lock_timeout``: seconds to wait for another writer of the warehouse. Renamed in 0.2 (the
    old keywords ``parquet_root``, ``lock_timeout_s``, ``stop_event`` still work until 0.3).
    """
    if isinstance(chunks, Source):
        chunks.validate()  # a wrong name or a refused query must write nothing: check it first
    own_ledger = not isinstance(ledger, Ledger)
    book = ledger if isinstance(ledger, Ledger) else Ledger(ledger or default_ledger_url(warehouse))
    started_at = datetime.now(UTC)
    load_id = check_load_id(options.run_id)
    try:
        fresh: list[str] = []
        if not options.force:
            since = started_at - options.max_age
            with connect_warehouse(warehouse, lock_timeout=lock_timeout) as wh:
                wh.ensure_schema()  # a new warehouse gets its tables now (and has no numbers)
                fresh = wh.fresh_numbers(options.check_type, since)
            fresh = _comparable(fresh, privacy)
        lander = ParquetLander(
            parquet_path,
            new_lander_id(load_id, options.shard_index, options.shards),
            storage_options=storage_options,
        )
        checker = Checker(
            client,
            book,
            options,
            sink=lander,
            load_id=load_id,
            privacy=privacy,
            fresh_numbers=fresh,
            progress=progress,
            on_result=on_result,
            cancel=cancel,
        )
        if on_checker is not None:
            on_checker(checker)
        error: BaseException | None = None
        try:
            summary = checker.run(chunks)
        except BaseException as exc:  # recorded by the checker; keep what was done
            error = exc
            summary = checker.summary
            summary.stopped = summary.stopped or STOP_ERROR
            summary.stop_message = summary.stop_message or one_line(exc)
        files = lander.flush()
        run = CheckRun(summary=summary, files=files, error=error)
        if commit and not options.dry_run and not isinstance(error, KeyboardInterrupt):
            try:
                report = commit_check_run(
                    warehouse=warehouse,
                    ledger=book,
                    run_id=options.run_id,
                    files=files,
                    started_at=started_at,
                    client=client,
                    parquet_path=parquet_path,
                    storage_options=storage_options,
                    privacy=privacy,
                    lock_timeout=lock_timeout,
                    concurrency=options.concurrency,
                )
            except Exception as exc:
                if error is None:
                    raise
                log.error("could not load what the run did (%s); rerun it to load it", exc)
            else:
                run.load, run.repaired = report.load, report.repaired
        return run
    finally:
        if own_ledger:
            book.close()


def _comparable(stored: list[str], privacy: PrivacyPolicy | None) -> list[str]:
    """Warehouse numbers the checker can compare digits with: as they are, or (``hmac``) kept
    as pseudonyms by :class:`Checker`; masked numbers cannot be compared at all."""
    mode = getattr(privacy, "mode", "keep")
    if mode == "mask":
        log.warning(
            "privacy mode 'mask': numbers in the warehouse cannot be compared, so fresh results "
            "are only recognised from the request ledger (checks created by numberyo check)"
        )
        return []
    return stored
