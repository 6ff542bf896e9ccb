"""The incremental sync of the check history: API -> Arrow -> Parquet landing -> warehouse.

One run, in order:

1. Short warehouse session: create the schema if missing, read the watermark (the newest check
   loaded), delete the files of loads recorded as failed. No connection is held while extracting.
2. Stream in batches of ``batch_size`` checks: list pages newest first (see
   :mod:`~numberyo_provider.sync.extract` for how page drift is made harmless), ask the warehouse
   which of the batch it already has (short session), fetch the results of the others
   concurrently, normalise (privacy applied there) and hand the rows to the Parquet lander. The
   stages overlap as :mod:`~numberyo_provider.sync.pipeline` describes: the main thread lists
   pages and dispatches batches, ``concurrency`` workers run the requests, and a landing thread
   normalises and lands each batch. Three batches at most are in flight; the set of listed ids
   (8 bytes a check) is the only state that grows with the account, dropped before the commit.
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

Why one module of about 700 lines: :class:`_Run` is one run's state machine (set-up, listing,
dispatch, landing, commit, and the clean-up of a failure), and each failure path must see every
piece of that state; the stages it drives, their overlap, its options and its summary are already
modules of their own.

The warehouse and the lander are imported by the set-up that uses them, not with this module: the
set-up runs on its own thread while the first pages are fetched, and their imports (DuckDB,
pyarrow's Parquet writer, fsspec) are part of what it overlaps; the warehouse package also imports
:mod:`.land`, which imports this package. DuckDB and SQLAlchemy are imported only when an error
must be recognised as theirs (a DuckDB sync that goes well never loads SQLAlchemy).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from numberyo_provider import schema
from numberyo_provider.api.client import DEFAULT_BASE_URL, NumberYoClient
from numberyo_provider.api.models import CHECK_TYPES, Check, CheckPage
from numberyo_provider.cancellation import cancellable_sleep
from numberyo_provider.config import TOKEN_ENV
from numberyo_provider.errors import ConfigurationError, LandingError, NumberYoError
from numberyo_provider.private_files import make_private_dirs
from numberyo_provider.sync.extract import (
    OVERLAP_PAGES,
    CheckLister,
    FetchedPage,
    PendingResults,
    ResultError,
    ResultFetcher,
    SyncCancelled,
    check_order_key,
    fetch_page,
)
from numberyo_provider.sync.heap import trim_heap
from numberyo_provider.sync.normalize import normalize_checks
from numberyo_provider.sync.options import DEFAULT_BATCH_SIZE, SyncOptions
from numberyo_provider.sync.pipeline import (
    LANDING_JOIN_S,
    PAGES,
    RESULTS,
    LandingThread,
    RequestPool,
)
from numberyo_provider.sync.summary import SyncSummary, wm_dict, wm_text

if TYPE_CHECKING:
    from numberyo_provider.progress import Progress
    from numberyo_provider.sync.land import LandedFile, ParquetLander
    from numberyo_provider.warehouse.base import Warehouse, Watermark

log = logging.getLogger("numberyo_provider.sync")

KIND = "sync"
STREAM = "checks"
#: How many per-check errors the summary lists (all of them go to ``_loads.errors``).
ERROR_SAMPLES = 5
STAGES = ("started", "batch_landed", "landed", "before_commit", "committed")


def new_load_id(kind: str = KIND) -> str:
    """``sync-20250330T141023Z-1a2b3c4d``: sortable by time, unique, safe in file names."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{kind}-{stamp}-{uuid.uuid4().hex[:8]}"


class _Run:
    """State of one run; :func:`run_sync` is the public face."""

    def __init__(
        self,
        *,
        client: NumberYoClient,
        warehouse_url: str,
        options: SyncOptions,
        load_id: str,
        progress: Progress | None,
        cancel: threading.Event,
        on_stage: Callable[[str], None] | None,
    ) -> None:
        self.client = client
        self.warehouse_url = warehouse_url
        self.options = options
        self.load_id = load_id
        self.progress = progress
        self.cancel = cancel
        self.on_stage = on_stage
        self.started_at = datetime.now(UTC)
        self.errors: list[ResultError] = []
        self.lander: ParquetLander | None = None
        self.committed = False
        self.prepared = False
        self._total_from_pages = False
        #: The warehouse held no check when the run started: nothing listed can be loaded yet
        #: (a concurrent load of the same checks only costs their results' free GETs again).
        self._warehouse_was_empty = False
        self._warehouse: Warehouse | None = None
        #: The warehouse's watermark once :meth:`_set_up` ran (on its own thread when the run
        #: knows beforehand that everything it lists is new, see :meth:`_knows_all_is_new`).
        self._setup: Future[Watermark | None] = Future()
        self._setup_thread: threading.Thread | None = None
        self.summary = SyncSummary(
            load_id=load_id,
            warehouse=warehouse_url,
            parquet_path=options.parquet_path,
            full_refresh=options.full_refresh,
            started_at=self.started_at,
            results_loaded={schema.HLR_RESULTS.name: 0, schema.VERIFY_RESULTS.name: 0},
            rows_landed={t.name: 0 for t in schema.DATA_TABLES},
        )

    # --- plumbing -----------------------------------------------------------------------------

    @property
    def warehouse(self) -> Warehouse:
        """One warehouse object for the run. It holds no DuckDB connection between operations
        (each opens and closes the file, so other writers get in while we extract; the
        preparation's are one session); SQL backends keep a small connection pool."""
        if self._warehouse is None:
            from numberyo_provider.warehouse import connect_warehouse

            self._warehouse = connect_warehouse(
                self.warehouse_url, lock_timeout=self.options.lock_timeout
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
        clear LandingError, at the boundary of :mod:`numberyo_provider.sync.land`."""
        try:
            yield
        except OSError as exc:
            raise LandingError.from_os_error(
                exc, self.options.parquet_path, outcome="Nothing was committed."
            ) from exc

    def check_landing_root(self) -> None:
        """A local landing directory that cannot take files fails the run before any request is
        sent and before the warehouse is touched (a probe file is created and removed)."""
        path = self.options.parquet_path.removeprefix("file://")
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
        if self.cancel.is_set():
            raise SyncCancelled("the sync was cancelled; nothing was committed")

    # --- the run ------------------------------------------------------------------------------

    def prepare(self) -> Watermark | None:
        from numberyo_provider.sync.land import remove_files
        from numberyo_provider.sync.temp_files import sweep_abandoned_temp_files

        with self._db("preparing the sync"):
            wh = self.warehouse
            self.summary.warehouse = wh.url_for_display
            with wh.session():  # one connection for the four, not one each
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
                        self.options.parquet_path,
                        paths,
                        storage_options=self.options.storage_options,
                    )
                except OSError as exc:  # old leftovers must not keep new data out
                    log.warning("could not delete the files of failed load %s: %s", load_id, exc)
                    continue
                self.summary.failed_load_files_cleaned += len(gone)
                if len(gone) == len(paths):  # else: landed under another root; left listed
                    cleaned.append(load_id)
            with self._db("noting the cleaned failed loads"):
                wh.mark_loads_cleaned(cleaned)
        try:
            swept = sweep_abandoned_temp_files(self.options.parquet_path)
        except OSError as exc:  # like old leftovers above: never a reason to fail the run
            log.warning("could not sweep abandoned temp files: %s", exc)
            swept = []
        if swept:
            log.info("deleted %d temp file(s) that killed runs left while landing", len(swept))
        self.summary.abandoned_temp_files_removed = len(swept)
        self.summary.watermark_before = wm_dict(watermark)
        self.prepared = True
        return None if self.options.full_refresh else watermark

    def _knows_all_is_new(self) -> bool:
        """Whether every check listed will be loaded whatever the warehouse holds: a full
        refresh, or a DuckDB file that does not exist yet (a first backfill). Such a run lists
        and fetches while the warehouse is set up (imports, schema, watermark: a few tenths of a
        second, more behind a lock), instead of after. Conservative: when in doubt, False."""
        if self.options.full_refresh:
            return True
        url = self.warehouse_url.strip()
        if not url.lower().startswith("duckdb:///"):
            return False  # a server database: only a query can tell
        path = url[len("duckdb:///") :].split("?", 1)[0]
        return path == ":memory:" or not os.path.lexists(path)

    def _set_up(self) -> None:
        """Prepare the warehouse, then open the lander; the outcome goes to ``self._setup``."""
        from numberyo_provider.sync.land import ParquetLander

        try:
            watermark = self.prepare()
            self._stage("started")
            with self._landing():
                self.lander = ParquetLander(
                    self.options.parquet_path,
                    self.load_id,
                    storage_options=self.options.storage_options,
                    rows_per_file=self.options.rows_per_file,
                    max_buffered_rows=self.options.max_buffered_rows,
                )
        except BaseException as exc:
            self._setup.set_exception(exc)
            self.cancel.set()  # the main thread stops listing, then raises ``exc``
        else:
            self._setup.set_result(watermark)

    def _set_up_done(self) -> Watermark | None:
        """Wait for :meth:`_set_up` (raises its error); a cancellation ends the wait."""
        while True:
            try:
                return self._setup.result(timeout=0.2)
            except FutureTimeout:
                if not self._setup.done():  # else: its own error, not the stop it caused
                    self._check_stop()

    def _join_setup(self) -> None:
        # The set-up's outcome, not Thread.join: see LandingThread._stopped (Python 3.11).
        if self._setup_thread is not None:
            done, _ = futures_wait([self._setup], timeout=LANDING_JOIN_S)
            if not done:
                log.warning("sync %s: the warehouse set-up did not stop in time", self.load_id)

    def execute(self) -> SyncSummary:
        clock = time.monotonic()
        self.check_landing_root()
        pool = RequestPool(self.options.concurrency, f"numberyo-{self.load_id}")
        clean_exit = False
        landing = LandingThread(self)
        try:
            first_pages: list[Future[FetchedPage]] = []
            if self._knows_all_is_new():
                self._warehouse_was_empty = True
                self._setup_thread = threading.Thread(
                    target=self._set_up, name=f"numberyo-{self.load_id}-setup", daemon=True
                )
                self._setup_thread.start()
                watermark = None
            else:
                # Only the warehouse knows where this run stops, but any run on an account of
                # more than one page reads pages 1 and 2 (the stop rule reads OVERLAP_PAGES past
                # the first page with an old check), so both are asked for while the warehouse
                # is set up and an incremental run waits for neither after it (an account of one
                # page costs an empty page 2, a free GET). Behind another run's lock they may be
                # minutes old when read, which the drift rule allows for (newer checks then wait
                # for the next run).
                first_pages = [
                    pool.lane(PAGES).submit(fetch_page, self.client, number, self.cancel)
                    for number in range(1, 2 + OVERLAP_PAGES)
                ]
                self._set_up()
                watermark = self._setup.result()
            self._total_from_pages = watermark is None
            lister = CheckLister(
                self.client,
                pool.lane(PAGES),
                watermark=watermark,
                concurrent=True,
                max_in_flight=self.options.concurrency,
                cancel=self.cancel,
                on_page=self._on_page if self.progress is not None else None,
                first_pages=first_pages,
            )
            fetcher = ResultFetcher(self.client, pool.lane(RESULTS), cancel=self.cancel)
            batch: list[Check] = []
            for fresh in lister:
                batch.extend(fresh)
                if len(batch) >= self.options.batch_size:
                    landing.put(self._dispatch(batch, fetcher))
                    batch = []
            if batch:
                landing.put(self._dispatch(batch, fetcher))
            landing.finish()
            self._set_up_done()
            self._check_stop()
            clean_exit = True
        except BaseException as exc:
            # A landing or set-up failure stops the run (the lister then sees a cancellation):
            # report the failure itself. Read it before abandon(), which cancels the landing
            # thread too.
            first = landing.error
            if first is None and self._setup.done():
                first = self._setup.exception()
            landing.abandon()
            if first is not None and first is not exc:
                raise first from None
            raise
        finally:
            pool.shutdown(wait=clean_exit, cancel_futures=True)

        stats = lister.stats
        newest = lister.newest
        # The set of listed ids (8 bytes a check) is not needed from here on: freed now, and
        # handed back with the rest of the extract's heap before the merge (trim_heap below).
        del lister, fetcher
        self.summary.checks_seen = stats.checks_seen
        self.summary.pages = stats.pages
        self.summary.listing_passes = stats.passes
        self.summary.drift_detected = stats.drift_detected
        self.summary.account_total = stats.first_total
        self.summary.account_total_end = stats.last_total
        self.summary.deleted_while_listing = stats.deleted_while_listing
        self.summary.created_while_listing = stats.created_while_listing
        self.summary.listing_complete = stats.reached_end

        assert self.lander is not None  # opened by _set_up, which has finished
        with self._landing():
            files = self.lander.flush()
        self.summary.files = [f.path for f in files]
        self._stage("landed")

        # Imported here, not above: it pulls in pyarrow.parquet and the warehouse layer, which
        # a first backfill imports on the set-up thread while its first requests are out.
        from numberyo_provider.warehouse.base import LoadCommit, Watermark

        previous_watermark = self.summary.watermark_before
        new_watermark = _newer(newest, previous_watermark, Watermark)
        commit = LoadCommit(
            load_id=self.load_id,
            kind=KIND,
            started_at=self.started_at,
            files=list(files),
            watermark=new_watermark,
            errors=[e.as_dict() for e in self.errors],
            storage_options=self.options.storage_options,
            stream=STREAM,
        )
        self._check_stop()
        trim_heap()
        self._stage("before_commit")
        with self._db("committing the load"):
            result = self.warehouse.commit_load(commit)
        self.committed = True
        self._stage("committed")

        self.summary.rows_committed = dict(result.rows)
        self.summary.finished_at = result.finished_at
        self.summary.duration_s = round(time.monotonic() - clock, 3)
        self.summary.watermark_after = wm_dict(new_watermark) or previous_watermark
        self.summary.errors = len(self.errors)
        self.summary.error_samples = [e.as_dict() for e in self.errors[:ERROR_SAMPLES]]
        return self.summary

    def _on_page(self, page: CheckPage) -> None:
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
        if self.options.full_refresh or self._warehouse_was_empty:
            new = batch
        else:
            with self._db("reading which checks are loaded"):
                existing = self.warehouse.existing_check_ids([c.id for c in batch])
            new = [c for c in batch if c.id not in existing]
        return new, len(batch), fetcher.submit(new)

    def _land(self, checks: list[Check], listed: int, pending: PendingResults) -> None:
        self._set_up_done()  # the lander exists only then
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
                privacy=self.options.privacy,
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
        from numberyo_provider.sync.land import remove_files

        self.cancel.set()
        self._join_setup()  # nothing of the set-up may happen behind the clean-up
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
            gone = remove_files(
                self.options.parquet_path, paths, storage_options=self.options.storage_options
            )
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
        old_created = old_created.replace(tzinfo=UTC)
    if check_order_key(newest) >= (old_created, int(previous["check_id"])):
        return candidate
    return None  # keep the existing watermark


def _options(options: SyncOptions | None, settings: Mapping[str, Any]) -> SyncOptions:
    """``options``, with the settings given as keywords applied (validated by SyncOptions)."""
    unknown = sorted(set(settings) - SyncOptions.field_names())
    if unknown:
        raise TypeError(f"run_sync() got an unexpected keyword argument {unknown[0]!r}")
    if options is None:
        if "parquet_path" not in settings:
            raise TypeError(
                "run_sync() needs a parquet_path: pass parquet_path=... or "
                "options=SyncOptions(parquet_path=...)"
            )
        return SyncOptions(**settings)
    if not isinstance(options, SyncOptions):
        raise TypeError(f"options must be a SyncOptions, got {type(options).__name__}")
    return dataclasses.replace(options, **settings) if settings else options


def run_sync(
    warehouse: str,
    options: SyncOptions | None = None,
    *,
    client: NumberYoClient | None = None,
    token: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    client_options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    on_stage: Callable[[str], None] | None = None,
    **settings: Any,
) -> SyncSummary:
    """Bring the warehouse's copy of the check history up to date, exactly; see the module doc.

    ``warehouse`` is a ``duckdb:///file.duckdb`` or SQLAlchemy URL. The run's settings are a
    :class:`~numberyo_provider.sync.options.SyncOptions` (``parquet_path``, ``full_refresh``,
    ``concurrency``, ``privacy``, ``lock_timeout``, ...), given either as ``options`` or as
    keyword arguments of the same names; both forms are validated by ``SyncOptions``::

        run_sync("duckdb:///wh.duckdb", SyncOptions(parquet_path="landing"), token=token)
        run_sync(warehouse="duckdb:///wh.duckdb", parquet_path="landing", token=token)

    The keyword form stays, as a convenience rather than a deprecated path (like
    ``requests.get(url, timeout=...)`` next to a prepared ``Session``): for one call it reads best,
    the CLI, the operator, the benchmarks and the docs' examples use it, and it goes through the
    very same checks, so deprecating it would make everyone rewrite working code and gain nothing.
    ``SyncOptions`` is for settings built once and handed around (a configuration resolver, a
    test's fixture). Keywords given with ``options`` override those fields
    (``run_sync(wh, nightly, full_refresh=True)``).

    The API side: a ready ``client`` (not closed here; size its ``pool_size`` to ``concurrency``)
    or ``token`` (+ ``base_url``, ``client_options`` for :class:`NumberYoClient`); two named
    arguments rather than one positional "client or token", so a URL can never be sent as a token.
    ``cancel``: set it to stop promptly (it is also set when the run fails). ``on_stage`` is
    called with each name of :data:`STAGES` (``batch_landed`` from the landing thread; an
    exception it raises fails the run like any landing error).
    """
    opts = _options(options, settings)
    if not warehouse or not isinstance(warehouse, str):
        raise ConfigurationError(
            "no warehouse given: pass a URL such as duckdb:///warehouse.duckdb or "
            "postgresql+psycopg://user@host:5432/db"
        )
    cancel = cancel if cancel is not None else threading.Event()
    own_client = client is None
    if client is None:
        if not token:
            raise ConfigurationError(
                f"no API token: set {TOKEN_ENV}, or pass a token or a ready client"
            )
        kwargs = {"pool_size": opts.concurrency, **(client_options or {})}
        kwargs.setdefault("sleep", cancellable_sleep(cancel))
        client = NumberYoClient(token, base_url, **kwargs)
    run = _Run(
        client=client,
        warehouse_url=warehouse,
        options=opts,
        load_id=opts.load_id or new_load_id(),
        progress=progress,
        cancel=cancel,
        on_stage=on_stage,
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
        wm_text(summary.watermark_after),
    )
    return summary


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "STAGES",
    "SyncCancelled",
    "SyncOptions",
    "SyncSummary",
    "new_load_id",
    "run_sync",
]
