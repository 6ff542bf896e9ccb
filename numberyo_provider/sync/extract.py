"""Reading the check history: paging ``GET /api/checks`` safely under drift, fetching results.

Listing is newest first, 10 a page, and the list moves while we read it: a check created meanwhile
is prepended and pushes every older check one position down (possibly onto the next page); a
deleted check pulls the older ones up. The rule this module is built on:

    A boundary between page ``p`` and page ``p+1`` can hide a check only if the shift of the list
    grew from the moment page ``p+1`` was answered to the moment page ``p`` was answered.

Two provable cases make a boundary *safe*: page ``p+1`` was requested after page ``p`` was answered
and its ``pagination.total`` did not shrink (prepends only push unseen checks further down, where
we still go), or both answers report the same total (nothing changed between them; a creation and
a deletion cancelling out exactly between two concurrent requests is the one case this cannot see,
see ``docs``). A *pass* whose every boundary is safe saw every check that existed when it started,
down to where it stopped. Passes run pages concurrently when they can (a backfill needs it for
throughput) and fall back to sequential verification passes, each of which only needs the total
not to shrink, until one is clean; after ``max_verification_passes`` unclean ones the run fails
cleanly with :class:`ListingUnstableError`. Checks are deduplicated by id across pages and passes.

The listing does not trust the server blindly: it pages while pages are full and the reported
``total`` is not reached, whatever ``total_pages`` says; a pass that sees more repeated ids than the
account's growth explains (plus one page), a non-empty page beyond what its own ``total`` allows, or
a complete listing that ends with checks unaccounted for (fewer listed than the total, beyond what
the falls of the total show were deleted) raise :class:`InconsistentPaginationError`.

Results are fetched concurrently on the same bounded executor, one shared client. A 404 or 400 for
a listed check is recorded (:class:`ResultError`), not fatal; anything else fails the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from numberyo_provider.api.client import CHECKS_PATH, NumberYoClient
from numberyo_provider.api.models import CHECK_TYPES, Check, CheckPage, CheckResults
from numberyo_provider.errors import (
    BadResponseError,
    InconsistentPaginationError,
    ListingUnstableError,
    NotFoundError,
    SyncCancelled,
    UnsupportedCheckTypeError,
)
from numberyo_provider.sync.id_set import IdSet
from numberyo_provider.sync.normalize import UntypedResults

log = logging.getLogger(__name__)

#: Statuses of ``GET /api/checks/{id}/results`` recorded per check instead of failing the run.
RECORDED_STATUSES = (400, 404)
#: Pages read past the first one holding a check older than the watermark's second. So an
#: incremental run on an account of more than one page always reads pages 1 and 2.
OVERLAP_PAGES = 1


class WatermarkLike(Protocol):
    """Where the last sync stopped: the newest check it loaded."""

    @property
    def check_id(self) -> int | None: ...

    @property
    def created_at(self) -> datetime | None: ...


def check_order_key(check: Check) -> tuple[datetime, int]:
    """The API's order, newest first = largest key: creation time, then id."""
    return (check.created_at, check.id)


@dataclass(frozen=True)
class FetchedPage:
    """One page of the list, with when it was asked for and answered (``time.monotonic()``): the
    drift rule compares them."""

    number: int
    page: CheckPage
    sent: float
    received: float


def fetch_page(
    client: NumberYoClient, number: int, cancel: threading.Event | None = None
) -> FetchedPage:
    """``GET /api/checks?page=number``, refusing an answer for another page (an API ignoring
    ``?page=`` would otherwise be read as an endless list)."""
    _checked(cancel)
    sent = time.monotonic()
    page = client.list_checks(number)
    received = time.monotonic()
    if page.pagination.current_page != number:
        raise BadResponseError(
            f"asked for page {number}, the server answered page {page.pagination.current_page}",
            method="GET",
            path=f"{CHECKS_PATH}?page={number}",
            status=200,
        )
    return FetchedPage(number, page, sent, received)


@dataclass
class ListingStats:
    """What the listing did (for the summary)."""

    pages: int = 0
    passes: int = 0
    checks_seen: int = 0
    drift_detected: bool = False
    totals: list[int] = field(default_factory=list)
    #: Checks first seen by a verification pass (skipped by an unclean pass, or new meanwhile).
    found_by_verification: int = 0
    #: ``pagination.total`` of the first answer of the run (the account's size when we started).
    first_total: int | None = None
    #: ``pagination.total`` of the last answer read (the account's size when the listing ended).
    last_total: int | None = None
    #: Sums of the rises and falls of ``pagination.total`` between answers: checks created and
    #: deleted upstream while we listed, as far as the totals show (lower bounds).
    created_while_listing: int = 0
    deleted_while_listing: int = 0
    #: Checks per page: the longest page seen (the API sends 10).
    page_size: int = 0
    #: The last pass read to the end of the list (not stopped at the watermark on purpose).
    reached_end: bool = False


_T = TypeVar("_T")


def _checked(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise SyncCancelled("the sync was cancelled")


def _wait(future: Future[_T], cancel: threading.Event | None) -> _T:
    """``future.result()`` that notices a cancellation within a fraction of a second."""
    while True:
        _checked(cancel)
        try:
            return future.result(timeout=0.2)
        except FutureTimeout:
            continue
        except CancelledError:
            _checked(cancel)
            raise


class CheckLister:
    """Iterates the account's checks not yet seen in this run, page by page, newest first.

    With a watermark it stops after the first page holding a check older than the watermark's
    second (checks in that same second are re-read) plus ``overlap_pages`` more pages; without one
    it reads to the end. ``concurrent`` lets the first pass request up to ``max_in_flight`` pages at
    once on ``executor``. ``seen`` (the listed ids, an :class:`~.id_set.IdSet`: about 8 bytes a
    check, 8 MB per million) is the only state that grows with the account.
    """

    def __init__(
        self,
        client: NumberYoClient,
        executor: Executor,
        *,
        watermark: WatermarkLike | None = None,
        concurrent: bool = True,
        max_in_flight: int = 8,
        overlap_pages: int = OVERLAP_PAGES,
        max_verification_passes: int = 3,
        cancel: threading.Event | None = None,
        on_page: Callable[[CheckPage], None] | None = None,
        first_pages: Sequence[Future[FetchedPage]] = (),
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self._client = client
        self._executor = executor
        self._watermark = watermark
        self._concurrent = concurrent
        self._max_in_flight = max_in_flight
        self._overlap = max(0, overlap_pages)
        self._max_verification = max(0, max_verification_passes)
        self._cancel = cancel
        self._on_page = on_page
        #: Pages 1, 2, ... as requested before the lister existed (see :func:`fetch_page`); the
        #: first pass reads them instead of asking again, later passes ask afresh.
        self._first_pages = list(first_pages)
        self.seen = IdSet()
        self._last_page = 0
        self.newest: Check | None = None
        self.stats = ListingStats()

    # --- the stop rule ------------------------------------------------------------------------

    def _is_old(self, check: Check) -> bool:
        """Strictly before the watermark's second (or, without a timestamp, a smaller id)."""
        wm = self._watermark
        if wm is None:
            return False
        if wm.created_at is not None:
            floor = wm.created_at.replace(microsecond=0)
            if floor.tzinfo is None:  # a backend that hands back naive UTC
                floor = floor.replace(tzinfo=UTC)
            return check.created_at < floor
        return wm.check_id is not None and check.id < wm.check_id

    # --- fetching -----------------------------------------------------------------------------

    def _submit(self, number: int) -> Future[FetchedPage]:
        return self._executor.submit(fetch_page, self._client, number, self._cancel)

    # --- passes -------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[list[Check]]:
        return self._passes()

    def _passes(self) -> Generator[list[Check], None, None]:
        clean = yield from self._pass(concurrent=self._concurrent)
        verifications = 0
        while not clean:
            if verifications >= self._max_verification:
                raise ListingUnstableError(
                    f"the account's list of checks changed in ways that may hide checks (checks "
                    f"deleted while paging) during {verifications + 1} listing passes; nothing was "
                    "committed: run the sync again when the account is quieter"
                )
            verifications += 1
            clean = yield from self._pass(concurrent=False)
        if self.stats.reached_end:
            self._account_for_every_check()

    def _pass(self, *, concurrent: bool) -> Generator[list[Check], None, bool]:
        stats = self.stats
        stats.passes += 1
        stats.reached_end = False
        # Ids listed by this pass; the first pass shares ``seen`` (no second set to hold).
        pass_ids = self.seen if stats.passes == 1 else IdSet()
        repeats = 0
        grown = 0
        pass_first_total: int | None = None
        pending: dict[int, Future[FetchedPage]] = {}
        window = 1
        next_submit = 1
        for future in self._first_pages:
            pending[next_submit] = future
            next_submit += 1
        self._first_pages = []
        stop_at: int | None = None
        previous: FetchedPage | None = None
        clean = True
        number = 1
        try:
            while True:
                if concurrent:
                    limit = self._pages_by_total()
                    if stop_at is not None:
                        limit = min(stop_at, limit)
                    while len(pending) < window and next_submit <= limit:
                        pending[next_submit] = self._submit(next_submit)
                        next_submit += 1
                if number not in pending:
                    pending[number] = self._submit(number)
                    next_submit = max(next_submit, number + 1)
                fetched: FetchedPage = _wait(pending.pop(number), self._cancel)
                page = fetched.page
                self._last_page = number
                total = page.pagination.total
                if previous is not None and total > previous.page.pagination.total:
                    grown += total - previous.page.pagination.total
                if pass_first_total is None:
                    pass_first_total = total
                self._account(page)
                if previous is not None and not self._boundary_safe(previous, fetched):
                    clean = False
                previous = fetched
                if not page.checks:
                    stats.reached_end = True
                    break
                self._check_position(number, page)
                fresh: list[Check] = []
                for check in page.checks:
                    if check.id in pass_ids:
                        repeats += 1
                        continue
                    pass_ids.add(check.id)
                    if pass_ids is not self.seen:
                        if check.id in self.seen:
                            continue
                        self.seen.add(check.id)
                    fresh.append(check)
                    if self.newest is None or check_order_key(check) > check_order_key(self.newest):
                        self.newest = check
                # Creations shift the list down, so a page may start with checks of the page
                # before: as many as the account grew (credited up to its size at the start of
                # the pass), plus one page of slack. More than that is a server going in circles.
                allowed = min(grown, pass_first_total) + stats.page_size
                if repeats > allowed:
                    raise InconsistentPaginationError(
                        f"page {number} repeats checks already listed in this pass ({repeats} "
                        f"repeated so far, while the account grew by {grown}): the server's "
                        "pagination goes in circles; nothing was committed, run the sync again "
                        "later and report it to NumberYo if it persists",
                        method="GET",
                        path=f"{CHECKS_PATH}?page={number}",
                        status=200,
                    )
                if stats.passes > 1:
                    stats.found_by_verification += len(fresh)
                stats.checks_seen = len(self.seen)
                if fresh:
                    yield fresh
                if stop_at is None and any(self._is_old(c) for c in page.checks):
                    stop_at = number + self._overlap
                if stop_at is not None and number >= stop_at:
                    break  # reached the watermark: what follows is loaded already
                if len(page.checks) < stats.page_size or number * stats.page_size >= total:
                    stats.reached_end = True  # a short page, or as far as the total goes
                    break
                number += 1
                if concurrent:
                    # A backfill wants every worker at once; an incremental run usually ends on
                    # page 1 or 2, so it widens step by step (1, 2, 4, ...) to waste few requests.
                    window = (
                        self._max_in_flight
                        if self._watermark is None
                        else min(self._max_in_flight, window * 2)
                    )
        finally:
            for future in pending.values():
                future.cancel()
        return clean

    def _pages_by_total(self) -> int:
        """How many pages the largest total seen needs (``total_pages`` is not trusted)."""
        stats = self.stats
        if not stats.page_size or not stats.totals:
            return 1
        return max(1, -(-max(stats.totals) // stats.page_size))

    def _check_position(self, number: int, page: CheckPage) -> None:
        """A non-empty page must lie within the total its own answer reports."""
        total = page.pagination.total
        before = (number - 1) * self.stats.page_size  # checks on the pages before, at least
        if total <= before:
            raise InconsistentPaginationError(
                f"page {number} holds {len(page.checks)} check(s), but the same answer says the "
                f"account holds {total}, which fit{'s' if total == 1 else ''} in "
                f"{-(-total // self.stats.page_size)} page(s) of {self.stats.page_size}: the "
                "server's pagination contradicts itself; nothing was committed",
                method="GET",
                path=f"{CHECKS_PATH}?page={number}",
                status=200,
            )

    def _account_for_every_check(self) -> None:
        """After a listing that read to the end: every check the totals promise was listed, or
        the totals show it was deleted (missing at the start) or created meanwhile (at the end,
        newer than what we saw: the next run reads it)."""
        stats = self.stats
        if stats.first_total is None or stats.last_total is None:
            return
        listed = len(self.seen)
        unexplained = max(
            stats.first_total - listed - stats.deleted_while_listing,
            stats.last_total - listed - stats.created_while_listing,
        )
        if unexplained > 0:
            raise InconsistentPaginationError(
                f"the server reported {stats.first_total} check(s) (then {stats.last_total}) but "
                f"listing them ended after {listed} on page {self._last_page}; "
                f"{unexplained} check(s) are unaccounted for (the total did not fall by as "
                "much, so they were not deleted): nothing was committed; run the sync again "
                "later and report it to NumberYo if it persists",
                method="GET",
                path=CHECKS_PATH,
                status=200,
            )

    def _account(self, page: CheckPage) -> None:
        total = page.pagination.total
        stats = self.stats
        stats.pages += 1
        stats.page_size = max(stats.page_size, len(page.checks))
        if stats.first_total is None:
            stats.first_total = total
            pages = -(-total // stats.page_size) if stats.page_size else 0
            if stats.page_size and page.pagination.total_pages != max(pages, 1):
                log.warning(
                    "the server's total_pages (%d) disagrees with its total (%d checks, %d a "
                    "page); paging by the total and by full pages instead",
                    page.pagination.total_pages,
                    total,
                    stats.page_size,
                )
        if stats.last_total is not None:
            if total > stats.last_total:
                stats.created_while_listing += total - stats.last_total
            else:
                stats.deleted_while_listing += stats.last_total - total
        stats.last_total = total
        if stats.totals and total != stats.totals[-1]:
            stats.drift_detected = True
        if not stats.totals or total != stats.totals[-1]:
            stats.totals.append(total)
        if self._on_page is not None:
            self._on_page(page)

    @staticmethod
    def _boundary_safe(upper: FetchedPage, lower: FetchedPage) -> bool:
        """Whether no check can hide between page ``upper`` and the next page ``lower``."""
        a, b = upper.page.pagination.total, lower.page.pagination.total
        if a == b:
            return True
        return lower.sent >= upper.received and b >= a


@dataclass(frozen=True)
class ResultError:
    """A listed check whose results could not be read (recorded in ``_loads.errors``)."""

    check_id: int
    status: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"check_id": self.check_id, "status": self.status, "message": self.message}


#: What a results request gives: typed results, or whole JSON for a type not modelled here.
AnyResults = CheckResults | UntypedResults


class PendingResults:
    """Results of one batch of checks, being fetched."""

    def __init__(
        self, futures: dict[int, Future[AnyResults]], cancel: threading.Event | None
    ) -> None:
        self._futures = futures
        self._cancel = cancel

    def wait(self) -> tuple[dict[int, AnyResults], list[ResultError]]:
        """Every result, or the first fatal error (the other requests of the batch are
        cancelled)."""
        results: dict[int, AnyResults] = {}
        errors: list[ResultError] = []
        try:
            for check_id, future in self._futures.items():
                try:
                    results[check_id] = _wait(future, self._cancel)
                except (NotFoundError, UnsupportedCheckTypeError) as exc:
                    errors.append(ResultError(check_id, exc.status, exc.server_message or str(exc)))
        except BaseException:
            self.cancel()
            raise
        return results, errors

    def cancel(self) -> None:
        for future in self._futures.values():
            future.cancel()


class ResultFetcher:
    """Fetches ``GET /api/checks/{id}/results`` for many checks on a bounded executor.

    A check of a type this version does not model (listed as, say, ``Email``) never fails the
    run: its answer is kept whole as :class:`UntypedResults` (``other_results`` in the warehouse).
    """

    def __init__(
        self,
        client: NumberYoClient,
        executor: Executor,
        *,
        cancel: threading.Event | None = None,
    ) -> None:
        self._client = client
        self._executor = executor
        self._cancel = cancel

    def _fetch(self, check: Check) -> AnyResults:
        _checked(self._cancel)
        if check.type in CHECK_TYPES:
            return self._client.get_results(check.id)
        return self._fetch_untyped(check)

    def _fetch_untyped(self, check: Check) -> AnyResults:
        path = f"{CHECKS_PATH}/{check.id}/results"
        # The client's one request path (retries, deadline, size limit), without the typed
        # parsing that refuses a type it does not know.
        status, body = self._client._request("GET", path)
        if not isinstance(body, Mapping):
            raise BadResponseError(
                f"expected a JSON object, got {type(body).__name__}",
                method="GET",
                path=path,
                status=status,
            )
        try:  # a type this version does know after all (listed under another spelling)
            return CheckResults.from_api(body)
        except BadResponseError:
            return UntypedResults(type=check.type, body=body)

    def submit(self, checks: Sequence[Check]) -> PendingResults:
        futures = {c.id: self._executor.submit(self._fetch, c) for c in checks}
        return PendingResults(futures, self._cancel)


__all__ = [
    "OVERLAP_PAGES",
    "RECORDED_STATUSES",
    "AnyResults",
    "CheckLister",
    "ListingStats",
    "ListingUnstableError",
    "PendingResults",
    "ResultError",
    "ResultFetcher",
    "SyncCancelled",
    "WatermarkLike",
    "check_order_key",
]
