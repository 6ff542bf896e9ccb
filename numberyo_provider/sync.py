"""The incremental sync of the check history: API -> Arrow -> Parquet landing -> warehouse.

One run, in order:

1. Short warehouse session: create the schema if missing, read the watermark (the newest check
   loaded), delete the files of loads recorded as failed. No connection is held while extracting.
2. Stream in batches of ``batch_size`` checks: list pages newest first (see
   :mod:`numberyo_provider.extract` for how page drift is made harmless), ask the warehouse which
   of the batch it already has (short session), fetch the results of the others concurrently,
   normalise (privacy applied there) and hand the rows to the Parquet lander. Three stages
   overlap: the main thread lists pages and dispatches batches, ``concurrency`` workers run the
   requests (list pages before any queued result fetch, so the next batch is known early), and a
   landing thread waits for each batch's results, normalises and lands it. Three batches at most
   are in flight; the set of listed ids is the only state that grows with the account.
3. Flush the lander, then ONE ``commit_load``: every file merged by key, the ``_loads`` manifest
   row and the new watermark in a single transaction. The watermark therefore moves only when
   everything the run read is visible.

A local landing directory that cannot take files fails the run first, before any request and
before the warehouse is touched; later OSErrors of the landing (a full disk) are a
:class:`~numberyo_provider.errors.LandingError`. Ctrl-C is a ``KeyboardInterrupt`` wherever it
lands, inside a DuckDB query included. Any failure before the commit records the load as failed
(``record_failed_load``), deletes its files and re-raises; nothing is visible. A hard crash
(kill -9) leaves at most unreferenced files behind: the watermark did not move, so the next run
reads the same checks again and the merge by key makes the reload exact. Stage names passed to
``on_stage`` (a test seam, also handy for logging): ``started``, ``batch_landed``, ``landed``,
``before_commit``, ``committed``.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from numberyo_provider import schema
from numberyo_provider.cancellation import cancellable_sleep
from numberyo_provider.client import DEFAULT_BASE_URL, NumberYoClient
from numberyo_provider.config import TOKEN_ENV
from numberyo_provider.errors import ConfigurationError, LandingError, NumberYoError
from numberyo_provider.extract import (
    CheckLister,
    PendingResults,
    ResultError,
    ResultFetcher,
    SyncCancelled,
    check_order_key,
)
from numberyo_provider.models import CHECK_TYPES, Check
from numberyo_provider.normalize import normalize_checks
from numberyo_provider.private_files import make_private_dirs

if TYPE_CHECKING:
    from numberyo_provider.land import LandedFile, ParquetLander
    from numberyo_provider.privacy import PrivacyPolicy
    from numberyo_provider.progress import Progress
    from numberyo_provider.warehouse.base import Warehouse, Watermark

log = logging.getLogger("numberyo_provider.sync")

KIND = "sync"
STREAM = "checks"
#: Checks listed, filtered, fetched and landed together; three batches are in flight at most.
DEFAULT_BATCH_SIZE = 1000
#: Rows the lander holds in memory before writing a row group to its open file (bounds memory,
#: not the number of files: a run lands one file per table and check type, and one more per
#: ``DEFAULT_ROWS_PER_FILE`` rows, however many days its checks span).
DEFAULT_MAX_BUFFERED_ROWS = 20_000
DEFAULT_ROWS_PER_FILE = 250_000
#: How many per-check errors the summary lists (all of them go to ``_loads.errors``).
ERROR_SAMPLES = 5
STAGES = ("started", "batch_landed", "landed", "before_commit", "committed")


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

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("started_at", "finished_at"):
            value = out[key]
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        out["files_landed"] = len(self.files)
        return out

    def render(self) -> str:
        """A one-screen report for people (the CLI prints it)."""
        wm_before = _wm_text(self.watermark_before)
        wm_after = _wm_text(self.watermark_after)
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


def _wm_text(value: Mapping[str, Any] | None) -> str:
    if not value:
        return "none"
    return f"check {value['check_id']} ({value['created_at']})"


def _wm_dict(wm: Watermark | None) -> dict[str, Any] | None:
    if wm is None:
        return None
    created = wm.created_at
    return {
        "check_id": wm.check_id,
        "created_at": created.isoformat() if isinstance(created, datetime) else created,
    }


def new_load_id(kind: str = KIND) -> str:
    """``sync-20250330T141023Z-1a2b3c4d``: sortable by time, unique, safe in file names."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{kind}-{stamp}-{uuid.uuid4().hex[:8]}"


#: Priorities of the shared request workers: a list page before any result fetch.
_PAGES, _RESULTS = 0, 1
_STOP_WORKER = 99
#: Seconds the landing thread gets to stop after a failure before the run goes on failing.
_LANDING_JOIN_S = 30.0


class _RequestPool:
    """``workers`` threads running queued calls lowest priority first, FIFO within a priority.

    One pool bounds the requests in flight to ``concurrency``; :meth:`lane` gives the lister and
    the result fetcher each an :class:`Executor` of its own priority, so a list page never waits
    behind a batch of result fetches (at most for a worker to finish its current request).
    """

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def lane(self, priority: int) -> Executor:
        return _Lane(self, priority)

    def submit(
        self, priority: int, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Any]:
        if self._closed:
            raise RuntimeError("the request pool is shut down")
        future: Future[Any] = Future()
        self._queue.put((priority, next(self._order), (future, fn, args, kwargs)))
        return future

    def _work(self) -> None:
        while True:
            priority, _, task = self._queue.get()
            if priority == _STOP_WORKER:
                return
            future, fn, args, kwargs = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, *, wait: bool, cancel_futures: bool) -> None:
        self._closed = True
        if cancel_futures:
            kept = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item[0] == _STOP_WORKER:
                    kept.append(item)
                else:
                    item[2][0].cancel()
            for item in kept:
                self._queue.put(item)
        for _ in self._threads:
            self._queue.put((_STOP_WORKER, next(self._order), None))
        if wait:
            for thread in self._threads:
                thread.join()


class _Lane(Executor):
    """One priority of a :class:`_RequestPool`, as the Executor the lister or fetcher expects."""

    def __init__(self, pool: _RequestPool, priority: int) -> None:
        self._pool = pool
        self._priority = priority

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self._pool.submit(self._priority, fn, args, kwargs)


class _LandingThread:
    """Waits for each dispatched batch's results, then normalises and lands it, off the main
    thread, which meanwhile lists and dispatches the next batches. ``put`` blocks while one
    batch waits (bounding memory); the first exception stops the run and is re-raised by the
    main thread (``check``/``finish``), not a cancellation it caused."""

    _DONE = None

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._queue: queue.Queue[tuple[list[Check], int, PendingResults] | None] = queue.Queue(1)
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._loop, name=f"numberyo-{run.load_id}-landing", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is self._DONE:
                    return
                self._run._land(*item)
        except BaseException as exc:
            self.error = exc
            self._run.stop.set()  # the main thread stops listing, then raises ``error``

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, item: tuple[list[Check], int, PendingResults]) -> None:
        while True:
            self.check()
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Land what was put, then return (or raise the landing error)."""
        while True:
            self.check()
            try:
                self._queue.put(self._DONE, timeout=0.2)
                break
            except queue.Full:
                continue
        while self._thread.is_alive():
            self._thread.join(0.2)
        self.check()

    def abandon(self) -> None:
        """After a failure: stop, and wait for the thread so nothing lands behind the clean-up."""
        self._run.stop.set()
        while True:  # unblock it if it waits for a batch
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with suppress(queue.Full):
            self._queue.put_nowait(self._DONE)
        self._thread.join(_LANDING_JOIN_S)
        if self._thread.is_alive():
            log.warning("sync %s: the landing thread did not stop in time", self._run.load_id)


class _Run:
    """State of one run; :func:`run_sync` is the public face."""

    def __init__(
        self,
        *,
        client: NumberYoClient,
        warehouse_url: str,
        parquet_path: str,
        full_refresh: bool,
        concurrency: int,
        privacy: PrivacyPolicy | None,
        storage_options: Mapping[str, Any] | None,
        lock_timeout: float,
        batch_size: int,
        load_id: str,
        progress: Progress | None,
        stop: threading.Event,
        on_stage: Callable[[str], None] | None,
        rows_per_file: int,
        max_buffered_rows: int,
    ) -> None:
        self.client = client
        self.warehouse_url = warehouse_url
        self.parquet_path = parquet_path
        self.full_refresh = full_refresh
        self.concurrency = concurrency
        self.privacy = privacy
        self.storage_options = dict(storage_options) if storage_options else None
        self.lock_timeout = lock_timeout
        self.batch_size = batch_size
        self.load_id = load_id
        self.progress = progress
        self.stop = stop
        self.on_stage = on_stage
        self.rows_per_file = rows_per_file
        self.max_buffered_rows = max_buffered_rows
        self.started_at = datetime.now(timezone.utc)
        self.errors: list[ResultError] = []
        self.lander: ParquetLander | None = None
        self.committed = False
        self.prepared = False
        self._total_from_pages = False
        #: The warehouse held no check when the run started: nothing listed can be loaded yet
        #: (a concurrent load of the same checks only costs their results' free GETs again).
        self._warehouse_was_empty = False
        self._warehouse: Warehouse | None = None
        self.summary = SyncSummary(
            load_id=load_id,
            warehouse=warehouse_url,
            parquet_path=parquet_path,
            full_refresh=full_refresh,
            started_at=self.started_at,
            results_loaded={schema.HLR_RESULTS.name: 0, schema.VERIFY_RESULTS.name: 0},
            rows_landed={t.name: 0 for t in schema.DATA_TABLES},
        )

    # --- plumbing -----------------------------------------------------------------------------

    @property
    def warehouse(self) -> Warehouse:
        """One warehouse object for the run. It holds no DuckDB connection between operations
        (each opens and closes the file, so other writers get in while we extract); SQL
        backends keep a small connection pool."""
        if self._warehouse is None:
            from numberyo_provider.warehouse import connect_warehouse

            self._warehouse = connect_warehouse(
                self.warehouse_url, lock_timeout_s=self.lock_timeout
            )
        return self._warehouse

    def close(self) -> None:
        if self._warehouse is not None:
            try:
                self._warehouse.close()
            finally:
                self._warehouse = None

    @contextmanager
    def _db(self, what: str) -> Iterator[None]:
        """Database drivers' own errors as one clear WarehouseError (URL without password)."""
        try:
            yield
        except Exception as exc:
            if _is_interrupt(exc):
                # DuckDB turns Ctrl-C inside a query into its own error (after rolling back):
                # it is still Ctrl-C, and the CLI exits 130 for it.
                raise KeyboardInterrupt(f"{what} was interrupted") from exc
            if isinstance(exc, NumberYoError) or not _is_database_error(exc):
                raise
            from numberyo_provider.warehouse import WarehouseError, mask_url

            raise WarehouseError(
                f"{what} failed on warehouse {mask_url(self.warehouse_url)}: "
                f"{_database_message(exc)}"
            ) from exc

    @contextmanager
    def _landing(self) -> Iterator[None]:
        """Local faults of the Parquet landing (permission, not a directory, disk full) as one
        clear LandingError, at the boundary of :mod:`numberyo_provider.land`."""
        try:
            yield
        except OSError as exc:
            raise LandingError.from_os_error(
                exc, self.parquet_path, outcome="Nothing was committed."
            ) from exc

    def check_landing_root(self) -> None:
        """A local landing directory that cannot take files fails the run before any request is
        sent and before the warehouse is touched (a probe file is created and removed)."""
        path = self.parquet_path.removeprefix("file://")
        if "://" in path:
            return  # an object store: its own errors come with the first upload
        with self._landing():
            make_private_dirs(path)
            fd, probe = tempfile.mkstemp(prefix=".numberyo-probe-", dir=path)
            os.close(fd)
            os.unlink(probe)

    def _stage(self, name: str) -> None:
        log.debug("sync %s: stage %s", self.load_id, name)
        if self.on_stage is not None:
            self.on_stage(name)

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise SyncCancelled("the sync was cancelled; nothing was committed")

    # --- the run ------------------------------------------------------------------------------

    def prepare(self) -> Watermark | None:
        from numberyo_provider.land import remove_files

        with self._db("preparing the sync"):
            wh = self.warehouse
            self.summary.warehouse = wh.url_for_display
            wh.ensure_schema()
            watermark = wh.get_watermark(STREAM)
            stale = wh.failed_loads_to_clean()
            self._warehouse_was_empty = not wh.has_checks()
        if stale:
            log.info("deleting the landed files of %d earlier failed load(s)", len(stale))
            cleaned: list[str] = []
            for load_id, paths in stale.items():
                try:
                    gone = remove_files(
                        self.parquet_path, paths, storage_options=self.storage_options
                    )
                except OSError as exc:  # old leftovers must not keep new data out
                    log.warning("could not delete the files of failed load %s: %s", load_id, exc)
                    continue
                self.summary.failed_load_files_cleaned += len(gone)
                if len(gone) == len(paths):  # else: landed under another root; left listed
                    cleaned.append(load_id)
            with self._db("noting the cleaned failed loads"):
                wh.mark_loads_cleaned(cleaned)
        self.summary.watermark_before = _wm_dict(watermark)
        self.prepared = True
        return None if self.full_refresh else watermark

    def execute(self) -> SyncSummary:
        from numberyo_provider.land import ParquetLander
        from numberyo_provider.warehouse.base import LoadCommit, Watermark

        clock = time.monotonic()
        self.check_landing_root()
        watermark = self.prepare()
        previous_watermark = self.summary.watermark_before
        self._total_from_pages = watermark is None
        self._stage("started")
        with self._landing():
            self.lander = ParquetLander(
                self.parquet_path,
                self.load_id,
                storage_options=self.storage_options,
                rows_per_file=self.rows_per_file,
                max_buffered_rows=self.max_buffered_rows,
            )
        pool = _RequestPool(self.concurrency, f"numberyo-{self.load_id}")
        clean_exit = False
        landing = _LandingThread(self)
        try:
            lister = CheckLister(
                self.client,
                pool.lane(_PAGES),
                watermark=watermark,
                concurrent=True,
                max_in_flight=self.concurrency,
                cancel=self.stop,
                on_page=self._on_page if self.progress is not None else None,
            )
            fetcher = ResultFetcher(self.client, pool.lane(_RESULTS), cancel=self.stop)
            batch: list[Check] = []
            for fresh in lister:
                batch.extend(fresh)
                if len(batch) >= self.batch_size:
                    landing.put(self._dispatch(batch, fetcher))
                    batch = []
            if batch:
                landing.put(self._dispatch(batch, fetcher))
            landing.finish()
            self._check_stop()
            clean_exit = True
        except BaseException as exc:
            # A landing failure stops the run (the lister then sees a cancellation): report the
            # failure itself. Read it before abandon(), which cancels the landing thread too.
            first = landing.error
            landing.abandon()
            if first is not None and first is not exc:
                raise first from None
            raise
        finally:
            pool.shutdown(wait=clean_exit, cancel_futures=True)

        stats = lister.stats
        self.summary.checks_seen = stats.checks_seen
        self.summary.pages = stats.pages
        self.summary.listing_passes = stats.passes
        self.summary.drift_detected = stats.drift_detected
        self.summary.account_total = stats.first_total
        self.summary.account_total_end = stats.last_total
        self.summary.deleted_while_listing = stats.deleted_while_listing
        self.summary.created_while_listing = stats.created_while_listing
        self.summary.listing_complete = stats.reached_end

        with self._landing():
            files = self.lander.flush()
        self.summary.files = [f.path for f in files]
        self._stage("landed")

        new_watermark = _newer(lister.newest, previous_watermark, Watermark)
        commit = LoadCommit(
            load_id=self.load_id,
            kind=KIND,
            started_at=self.started_at,
            files=list(files),
            watermark=new_watermark,
            errors=[e.as_dict() for e in self.errors],
            storage_options=self.storage_options,
            stream=STREAM,
        )
        self._check_stop()
        self._stage("before_commit")
        with self._db("committing the load"):
            result = self.warehouse.commit_load(commit)
        self.committed = True
        self._stage("committed")

        self.summary.rows_committed = dict(result.rows)
        self.summary.finished_at = result.finished_at
        self.summary.duration_s = round(time.monotonic() - clock, 3)
        self.summary.watermark_after = _wm_dict(new_watermark) or previous_watermark
        self.summary.errors = len(self.errors)
        self.summary.error_samples = [e.as_dict() for e in self.errors[:ERROR_SAMPLES]]
        return self.summary

    def _on_page(self, page: Any) -> None:
        # A backfill reads the whole account: its size is the progress total. An incremental run
        # stops at the watermark, so its total is unknown until it ends.
        if self.progress is not None and self._total_from_pages:
            total = page.pagination.total
            if self.progress.total is None or total > self.progress.total:
                self.progress.set_total(total)

    def _dispatch(
        self, batch: list[Check], fetcher: ResultFetcher
    ) -> tuple[list[Check], int, PendingResults]:
        self._check_stop()
        if self.full_refresh or self._warehouse_was_empty:
            new = batch
        else:
            with self._db("reading which checks are loaded"):
                existing = self.warehouse.existing_check_ids([c.id for c in batch])
            new = [c for c in batch if c.id not in existing]
        return new, len(batch), fetcher.submit(new)

    def _land(self, checks: list[Check], listed: int, pending: PendingResults) -> None:
        results, errors = pending.wait()
        self._check_stop()
        self.errors.extend(errors)
        self.summary.results_fetched += len(results)
        self.summary.checks_new += len(checks)
        self._note_other_types(checks)
        if checks:
            tables = normalize_checks(
                checks,
                results,
                load_id=self.load_id,
                loaded_at=self.started_at,
                privacy=self.privacy,
            )
            assert self.lander is not None
            for table in schema.DATA_TABLES:
                data = tables[table.name]
                if data.num_rows:
                    with self._landing():
                        self.lander.write(table, data)
                    self.summary.rows_landed[table.name] += data.num_rows
                    if table.name in self.summary.results_loaded:
                        self.summary.results_loaded[table.name] += data.num_rows
        if self.progress is not None:
            self.progress.advance(listed)
        self._stage("batch_landed")

    def _note_other_types(self, checks: list[Check]) -> None:
        """Checks of a type this version does not model load anyway; say so once per type."""
        counts = self.summary.other_types
        for check in checks:
            if check.type in CHECK_TYPES:
                continue
            if check.type not in counts:
                log.warning(
                    "check type %r is not one this version models (%s): its checks are loaded "
                    "into checks and their results kept whole as JSON in other_results; a later "
                    "release of airflow-provider-numberyo types them",
                    check.type,
                    ", ".join(CHECK_TYPES),
                )
                counts[check.type] = 0
            counts[check.type] += 1

    def fail(self, exc: BaseException) -> None:
        """Record the load as failed and delete its files; never hides ``exc``."""
        from numberyo_provider.land import remove_files

        self.stop.set()
        if self.committed:  # a failure after the commit: the files hold committed rows
            return
        lander = self.lander
        files: list[LandedFile] = list(lander.files) if lander is not None else []
        errors = [e.as_dict() for e in self.errors]
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        errors.append({"check_id": None, "status": None, "message": f"run failed: {reason}"})
        if self.prepared:  # the schema exists: the manifest can tell about this failure
            try:
                with self._db("recording the failed load"):
                    self.warehouse.record_failed_load(
                        self.load_id, KIND, self.started_at, files, errors
                    )
            except Exception as record_exc:  # the original failure matters more
                log.warning(
                    "sync %s: could not record the failed load (%s); its files are deleted now "
                    "and unreferenced anyway",
                    self.load_id,
                    record_exc,
                )
        paths = [f.path for f in files]
        try:
            if lander is not None:
                lander.abort()
            gone = remove_files(self.parquet_path, paths, storage_options=self.storage_options)
        except Exception as remove_exc:
            log.warning(
                "sync %s: could not delete landed files (%s); the next sync deletes them",
                self.load_id,
                remove_exc,
            )
            return
        if paths and self.prepared and len(gone) == len(paths):
            try:
                with self._db("noting the failed load's files as deleted"):
                    self.warehouse.mark_loads_cleaned([self.load_id])
            except Exception as mark_exc:
                log.warning(
                    "sync %s: could not note the failed load's files as deleted (%s); the next "
                    "sync looks for them again",
                    self.load_id,
                    mark_exc,
                )


def _is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is DuckDB's answer to a SIGINT during a query:
    ``InterruptException``, or a ``RuntimeError("Query interrupted")`` in DuckDB 1.x-2.x."""
    import duckdb

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, duckdb.InterruptException):
            return True
        if type(current) is RuntimeError and str(current).strip() == "Query interrupted":
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_database_error(exc: BaseException) -> bool:
    import duckdb
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, SQLAlchemyError | duckdb.Error)


def _database_message(exc: BaseException) -> str:
    """The driver's own words, one line, without SQLAlchemy's statement dump and links."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).split("\n[SQL:")[0].split("(Background on this error")[0]
    return " ".join(text.split()) or type(inner).__name__


def _newer(
    newest: Check | None, previous: Mapping[str, Any] | None, factory: type[Watermark]
) -> Watermark | None:
    """The watermark after this run: the newest check seen, unless the old one is newer."""
    if newest is None:
        return None
    candidate = factory(check_id=newest.id, created_at=newest.created_at)
    if previous is None:
        return candidate
    old_created = datetime.fromisoformat(previous["created_at"])
    if old_created.tzinfo is None:
        old_created = old_created.replace(tzinfo=timezone.utc)
    if check_order_key(newest) >= (old_created, int(previous["check_id"])):
        return candidate
    return None  # keep the existing watermark


def run_sync(
    *,
    warehouse: str,
    parquet_path: str,
    client: NumberYoClient | None = None,
    token: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    client_options: Mapping[str, Any] | None = None,
    full_refresh: bool = False,
    concurrency: int = 8,
    privacy: PrivacyPolicy | None = None,
    storage_options: Mapping[str, Any] | None = None,
    lock_timeout: float = 60.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    load_id: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    on_stage: Callable[[str], None] | None = None,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    max_buffered_rows: int = DEFAULT_MAX_BUFFERED_ROWS,
) -> SyncSummary:
    """Bring the warehouse's copy of the check history up to date, exactly; see the module doc.

    Give either a ready ``client`` (not closed here; size its ``pool_size`` to ``concurrency``) or
    ``token`` (+ ``base_url``, ``client_options`` for :class:`NumberYoClient`). ``warehouse`` is a
    ``duckdb:///file.duckdb`` or SQLAlchemy URL, ``parquet_path`` the landing root (local path or
    fsspec URL, ``storage_options`` for it). ``full_refresh`` re-reads every check and its results.
    ``cancel``: set it to stop promptly (it is also set when the run fails). ``on_stage`` is
    called with each name of :data:`STAGES` (``batch_landed`` from the landing thread; an
    exception it raises fails the run like any landing error).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not warehouse or not isinstance(warehouse, str):
        raise ConfigurationError(
            "no warehouse given: pass a URL such as duckdb:///warehouse.duckdb or "
            "postgresql+psycopg://user@host:5432/db"
        )
    if not parquet_path or not isinstance(parquet_path, str):
        raise ConfigurationError(
            "no parquet path given: pass a directory (or s3://bucket/prefix) to land files in"
        )
    stop = cancel if cancel is not None else threading.Event()
    own_client = client is None
    if client is None:
        if not token:
            raise ConfigurationError(
                f"no API token: set {TOKEN_ENV}, or pass a token or a ready client"
            )
        options = {"pool_size": concurrency, **(client_options or {})}
        options.setdefault("sleep", cancellable_sleep(stop))
        client = NumberYoClient(token, base_url, **options)
    run = _Run(
        client=client,
        warehouse_url=warehouse,
        parquet_path=parquet_path,
        full_refresh=full_refresh,
        concurrency=concurrency,
        privacy=privacy,
        storage_options=storage_options,
        lock_timeout=lock_timeout,
        batch_size=batch_size,
        load_id=load_id or new_load_id(),
        progress=progress,
        stop=stop,
        on_stage=on_stage,
        rows_per_file=rows_per_file,
        max_buffered_rows=max_buffered_rows,
    )
    try:
        summary = run.execute()
    except BaseException as exc:
        run.fail(exc)
        raise
    finally:
        try:
            run.close()
        finally:
            if own_client:
                client.close()
    log.info(
        "sync %s committed: %d checks listed, %d loaded, %d errors, watermark %s",
        summary.load_id,
        summary.checks_seen,
        summary.checks_new,
        summary.errors,
        _wm_text(summary.watermark_after),
    )
    return summary


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "STAGES",
    "SyncCancelled",
    "SyncSummary",
    "new_load_id",
    "run_sync",
]
