"""Check numbers from a source: hygiene, then paid POSTs that are never sent twice.

One run (one shard of a run), in order (``docs/credits-and-idempotency.md`` has the why):

1. **Reconcile** ``pending`` ledger rows of this shard's numbers (this run's of any age, earlier
   runs' within ``max_age``) against the account's checks
   (:mod:`numberyo_provider.checks.reconcile`): found ones become ``created`` and their results
   are landed; the others are safe to send.
2. **Hygiene**, streamed chunk by chunk: to E.164 (``default_region``); invalid values go
   to the ledger's rejected list, never to the API; keep this shard's numbers; drop duplicates;
   skip numbers this run already created (a retry) and, unless ``force``, numbers with a result of
   this type newer than ``max_age`` (warehouse ``checks`` or any run's ``created`` ledger row).
3. **Send**: each number is reserved against the budget, marked ``pending`` in the ledger in a
   batch (committed) *before* its POST is submitted to ``concurrency`` threads, and its row is
   updated after the answer (batched too). Created checks and their results go to the lander.
4. On 422 "not enough credits", a budget limit or a stop request: no new POST is sent, POSTs in
   flight finish and are recorded; the rest of the source is recorded ``not_checked`` with the
   reason (a stop request skips that and returns at once).
5. **Reconcile** again the requests of this run whose outcome stayed unknown (read timeouts).

Loading into the warehouse is separate
(:func:`~numberyo_provider.checks.landing.commit_check_run`), so that shard tasks can land in
parallel and one task commits them all (DuckDB has one writer).

Why one module of about 780 lines: :class:`Checker` is one run's state (the in-flight window, the
indexes of fresh and created numbers, the stop kind, the budget, the claims) shared by every step
above and mutated by the main thread only; its methods read in the order of the run. Its
self-contained parts live beside it: the options and summary (:mod:`.options`), the lease on its
claims (:mod:`.lease`), the landing of its results (:mod:`.landing`), the end-to-end run
(:mod:`.run`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.api.models import CreatedCheck
from numberyo_provider.checks.budget import WAIT, Budget, Reservation
from numberyo_provider.checks.landing import Sink, land_created, land_found
from numberyo_provider.checks.lease import ClaimLease
from numberyo_provider.checks.ledger import (
    CREATED,
    FAILED,
    NOT_CHECKED,
    PENDING,
    Ledger,
    LedgerRow,
    Outcome,
    new_owner,
    request_id,
)
from numberyo_provider.checks.numbers import Deduplicator, RejectedNumber, to_e164
from numberyo_provider.checks.options import (
    STOP_CREDITS,
    STOP_ERROR,
    STOP_INTERRUPTED,
    CheckOptions,
    CheckSummary,
)
from numberyo_provider.checks.reconcile import reconcile, wait_until_settled
from numberyo_provider.checks.sharding import shard_of
from numberyo_provider.deprecation import renamed_keywords, warn_renamed
from numberyo_provider.errors import (
    CheckRunError,
    InsufficientCreditsError,
    NumberYoError,
    SyncCancelled,
    TransportError,
    ValidationError,
)

if TYPE_CHECKING:
    from numberyo_provider.privacy import PrivacyPolicy
    from numberyo_provider.progress import Progress

log = logging.getLogger(__name__)

__all__ = ["Checker"]


def _key(digits: str) -> int | str:
    # Same compact key as numbers.Deduplicator: E.164 digits never start with 0.
    if digits.isascii() and digits.isdigit() and not digits.startswith("0"):
        return int(digits)
    return digits


@dataclass(frozen=True)
class _Job:
    request_id: str
    digits: str
    reservation: Reservation


@dataclass(frozen=True)
class _Result:
    job: _Job
    #: created | not_checked (sent, refused: credits) | unsent | pending (unknown) | failed
    kind: str
    created: CreatedCheck | None = None
    error: str | None = None
    #: An error every further request would hit: stop the run and raise it.
    fatal: BaseException | None = None


class Checker:
    """One run (or shard) of paid checks; see the module docstring. Not reusable."""

    @renamed_keywords(stop_event="cancel")
    def __init__(
        self,
        client: NumberYoClient,
        ledger: Ledger,
        options: CheckOptions,
        *,
        sink: Sink,
        load_id: str,
        privacy: PrivacyPolicy | None = None,
        fresh_numbers: Iterable[str] = (),
        progress: Progress | None = None,
        on_result: Callable[[str, str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.options = options
        self.sink = sink
        self.load_id = load_id
        self.privacy = privacy
        self._fresh_source = fresh_numbers
        self.progress = progress
        #: Test seam / hook: called in the worker thread after each POST with (digits, kind).
        self.on_result = on_result
        #: Set when sending must stop; give the client ``sleep=cancellable_sleep(cancel)`` so a
        #: retry's backoff ends at once too.
        self.cancel = cancel if cancel is not None else threading.Event()
        self._stop_kind: str | None = None
        self._stop_message: str | None = None
        self._fatal: BaseException | None = None
        self._state_lock = threading.Lock()
        self.summary = CheckSummary(
            run_id=options.run_id,
            check_type=options.check_type,
            shard_index=options.shard_index,
            shards=options.shards,
        )
        self.budget = Budget(
            max_checks=options.max_checks,
            max_credits=options.max_credits,
            cost_estimate=options.cost_estimate,
        )
        self._fresh: set[int | str] = set()
        self._fresh_protected: set[str] = set()
        self._run_created: set[int | str] = set()
        self._reconciled_keys: set[int | str] = set()
        self._inflight: set[Future[_Result]] = set()
        self._outcomes: list[Outcome] = []
        self._landing: list[tuple[CreatedCheck, str]] = []
        self._last_flush = time.monotonic()
        self._consecutive_errors = 0
        #: POSTs submitted and not yet recorded: a bound on the "maybe sent" window too.
        self._max_inflight = max(4 * options.concurrency, 8)
        self._executor: ThreadPoolExecutor | None = None
        self._ran = False
        #: This checker's identity in the ledger's claims (one per checker, never reused).
        self.owner = new_owner()
        self._run_started = datetime.now(UTC)
        #: Renews this checker's claims while it runs (started unless ``dry_run``).
        self._lease = ClaimLease(ledger, self.owner, options.claim_lease)
        #: Numbers another owner held when this run wanted them, ``{digits: request_id}``.
        self._contended: dict[str, str] = {}

    @property
    def stop_event(self) -> threading.Event:
        """Deprecated: :attr:`cancel` (renamed in 0.2)."""
        warn_renamed("stop_event", "cancel", where="Checker")
        return self.cancel

    # --- control --------------------------------------------------------------------------------

    def stop(self, message: str = "stopped on request") -> None:
        """Stop promptly (Ctrl-C, ``on_kill``): no new POST; in-flight ones finish and are
        recorded. Safe from any thread and from a signal handler (it takes no lock)."""
        if self._stop_kind != STOP_ERROR:
            self._stop_kind = STOP_INTERRUPTED
            self._stop_message = message
        self.cancel.set()

    def _begin_stop(
        self, kind: str, message: str, *, halt: bool = True, fatal: BaseException | None = None
    ) -> None:
        """Stop sending. ``halt``: also drop the POSTs queued but not started (credits, errors);
        a budget limit does not halt: what was reserved within it still goes out."""
        with self._state_lock:
            hard = kind in (STOP_INTERRUPTED, STOP_ERROR)
            if self._stop_kind is None or (hard and self._stop_kind != STOP_ERROR):
                self._stop_kind = kind
                self._stop_message = message
            if fatal is not None and self._fatal is None:
                self._fatal = fatal
        if halt:
            self.cancel.set()
            self.budget.wake()

    @property
    def _interrupted(self) -> bool:
        return self._stop_kind in (STOP_INTERRUPTED, STOP_ERROR)

    # --- the run --------------------------------------------------------------------------------

    def run(self, chunks: Iterable[Sequence[object]]) -> CheckSummary:
        """Run over ``chunks`` of raw source values; returns the summary.

        Raises :class:`CheckRunError` (or the client's error) when a fatal error stopped the run,
        after recording everything that happened. Running out of credits is *not* raised here:
        ``summary.stopped == "insufficient_credits"``; the caller applies its policy.
        """
        if self._ran:
            raise RuntimeError("a Checker runs once; make a new one")
        self._ran = True
        opts = self.options
        known = self.ledger.latest_cost(opts.check_type)
        if known is not None:
            self.budget.record_known(opts.check_type, known)
        self._executor = ThreadPoolExecutor(
            max_workers=opts.concurrency, thread_name_prefix="numberyo-check"
        )
        try:
            if not opts.dry_run:
                self._lease.start(self.client)
                self._reconcile_before()
            self._load_indexes()
            if not self._interrupted:
                self._main(chunks)
            self._drain(until_empty=True)
            self._flush(force=True)
            if not self._interrupted and not opts.dry_run:
                self._settle_contended()
                self._reconcile_after()
        except BaseException as exc:
            # Record what the workers did before anything propagates (KeyboardInterrupt too).
            self._begin_stop(STOP_ERROR, f"{type(exc).__name__}: {exc}")
            try:
                self._drain(until_empty=True)
                self._flush(force=True)
            except Exception:  # the original failure matters more
                log.exception("could not record the outcome of the requests in flight")
            raise
        finally:
            self._executor.shutdown(wait=True)
            self._lease.stop()
        s = self.summary
        s.credits_spent = self.budget.spent
        s.outcome_unknown = sum(
            1
            for r in self.ledger.rows(
                run_id=opts.run_id, check_type=opts.check_type, status=PENDING
            )
            if self._mine(r.phone_number)
        )
        s.stopped = self._stop_kind
        s.stop_message = self._stop_message
        s.finished_at = datetime.now(UTC)
        if self._fatal is not None:
            raise self._fatal
        return s

    def _mine(self, digits: str) -> bool:
        opts = self.options
        return opts.shards == 1 or shard_of(digits, opts.shards) == opts.shard_index

    # --- claims ----------------------------------------------------------------------------------

    def _lease_allows_send(self) -> bool:
        """A POST goes out only while at least half a lease of the claim is left: a frozen process
        that wakes after its claim lapsed (and may have been taken over) sends nothing."""
        return self._lease.allows_send()

    def _settle_contended(self) -> None:
        """Numbers another run held when this run wanted them: wait (``claim_wait``) for that run
        to settle them, then send the ones it did not create, reconcile the ones it abandoned, and
        leave the rest ``not_checked`` for whoever holds them."""
        opts = self.options
        deadline = time.monotonic() + opts.claim_wait.total_seconds()
        while self._contended and not self._interrupted and self._stop_kind is None:
            pairs = [(rid, d) for d, rid in self._contended.items()]
            self._contended = {}
            abandoned = self._take_over_abandoned([d for _, d in pairs])
            jobs: list[_Job] = []
            todo = [(rid, d) for rid, d in pairs if d not in abandoned]
            for index, (rid, digits) in enumerate(todo):
                reservation = self.budget.reserve(opts.check_type, self.cancel)
                if reservation is None:
                    if self.budget.exhausted and self._stop_kind is None:
                        self._begin_stop(self.budget.exhausted, self.budget.describe(), halt=False)
                    if not self._interrupted:
                        self._record_skipped({self._stop_message or "": todo[index:]})
                    break
                jobs.append(_Job(rid, digits, reservation))
            self._dispatch(jobs)
            self._drain(until_empty=True)
            self._flush(force=True)
            if not self._contended or time.monotonic() >= deadline:
                break
            self._interruptible_sleep(min(1.0, max(deadline - time.monotonic(), 0)))
        left = list(self._contended.items())
        self._contended = {}
        if not left:
            return
        self.summary.in_flight_elsewhere += len(left)
        reason = (
            f"in flight in another run (or its outcome unknown there) until run {opts.run_id} "
            "ended: not sent by this run; the run holding it, or the next run, settles it"
        )
        self.ledger.mark_not_checked(
            opts.run_id, opts.check_type, [(rid, d) for d, rid in left], reason
        )
        log.warning(
            "%d number(s) were in flight in another run until the end of this one; not sent",
            len(left),
        )

    def _take_over_abandoned(self, digits: Sequence[str]) -> set[str]:
        """Reconcile the pending rows of ``digits`` whose claim was abandoned; returns the numbers
        it took over (they are settled by reconciliation, or sent by a later pass)."""
        opts = self.options
        wanted = set(digits)
        rows = [
            r
            for r in self.ledger.rows(check_type=opts.check_type, status=PENDING)
            if r.phone_number in wanted
        ]
        held = self.ledger.acquire(opts.check_type, rows, owner=self.owner, lease=opts.claim_lease)
        if not held:
            return set()
        log.info("taking over %d abandoned request(s) through reconciliation", len(held))
        self._reconcile(held, then_send=True)
        taken = {r.phone_number for r in held}
        for row in held:  # not found: safe to send again, by the next pass
            key = _key(row.phone_number)
            if key not in self._fresh and key not in self._run_created:
                self._contended.setdefault(
                    row.phone_number, request_id(opts.run_id, opts.check_type, row.phone_number)
                )
        return taken

    # --- reconciliation -------------------------------------------------------------------------

    def _reconcile_before(self) -> None:
        opts = self.options
        now = datetime.now(UTC)
        horizon = now - opts.max_age
        pending = [
            r
            for r in self.ledger.rows(check_type=opts.check_type, status=PENDING)
            if self._mine(r.phone_number)
        ]
        # Only rows this checker can claim: another owner's live claim means its POST may be in
        # flight right now, and "not found" would be a lie that pays twice.
        rows = self.ledger.acquire(
            opts.check_type, pending, owner=self.owner, lease=opts.claim_lease
        )
        if len(rows) < len(pending):
            log.info(
                "%d request(s) whose outcome is unknown are held by another run; left to it",
                len(pending) - len(rows),
            )
        stale = [r for r in rows if r.run_id != opts.run_id and r.requested_at < horizon]
        if stale:
            self.ledger.record(
                opts.run_id,
                [
                    Outcome(
                        r.request_id,
                        NOT_CHECKED,
                        error=f"outcome unknown ({r.error or 'interrupted'}); older than max_age, "
                        f"so not reconciled: its result would be stale anyway (run {opts.run_id})",
                    )
                    for r in stale
                ],
                owner=self.owner,
            )
        todo = [r for r in rows if r not in stale]
        if todo:
            log.info(
                "reconciling %d request(s) whose outcome is unknown before sending anything",
                len(todo),
            )
            self._reconcile(todo, then_send=True)

    def _reconcile_after(self) -> None:
        opts = self.options
        pending = [
            r
            for r in self.ledger.rows(
                run_id=opts.run_id, check_type=opts.check_type, status=PENDING
            )
            if self._mine(r.phone_number)
        ]
        # This checker's own (it holds their claims), or abandoned ones; never another live
        # attempt's (a zombie of this run still sending).
        rows = self.ledger.acquire(
            opts.check_type, pending, owner=self.owner, lease=opts.claim_lease
        )
        if not rows:
            return
        log.info("reconciling %d request(s) whose outcome is unknown", len(rows))
        try:
            self._reconcile(rows, then_send=False)
        except NumberYoError as exc:
            log.warning(
                "could not reconcile %d request(s) whose outcome is unknown (%s); they stay "
                "pending and the next run reconciles them before sending anything",
                len(rows),
                exc,
            )

    def _reconcile(self, rows: list[LedgerRow], *, then_send: bool) -> None:
        opts = self.options
        assert self._executor is not None
        wait_until_settled(
            rows,
            opts.reconcile_settle,
            sleep=self._interruptible_sleep,
            log=log.info,
        )
        if self._interrupted:
            return
        window = min(r.requested_at for r in rows) - opts.reconcile_skew - timedelta(hours=1)
        report = reconcile(
            self.client,
            rows,
            executor=self._executor,
            known_check_ids=self.ledger.known_check_ids(window),
            skew=opts.reconcile_skew,
            cancel=self.cancel,
        )
        outcomes: list[Outcome] = []
        for found in report.found:
            outcomes.append(
                Outcome(
                    found.row.request_id,
                    CREATED,
                    check_id=found.check.id,
                    error=None,
                    check_created_at=found.check.created_at,
                )
            )
            land_found(
                self.sink,
                found.check,
                found.results,
                found.row.phone_number,
                load_id=self.load_id,
                privacy=self.privacy,
            )
            self.budget.record_paid(opts.check_type, found.check.user_cost)
            key = _key(found.row.phone_number)
            self._reconciled_keys.add(key)  # counted as reconciled, not again as skipped
            if found.row.run_id == opts.run_id:
                self._run_created.add(key)
            else:
                self._fresh.add(key)
        after = "safe to send again" if then_send else "the next run sends it again"
        for row in report.not_found:
            outcomes.append(
                Outcome(
                    row.request_id,
                    NOT_CHECKED,
                    error=f"outcome unknown ({row.error or 'interrupted before the answer'}); "
                    f"no such check in the account's history: not charged, {after}",
                )
            )
        self.ledger.record(opts.run_id, outcomes, owner=self.owner)
        self.summary.reconciled += len(report.found)
        if not then_send:
            self.summary.not_checked += len(report.not_found)
        log.info(
            "reconciled: %d found on the server (not sent again), %d not found (%s); %d checks "
            "listed, %d results read",
            len(report.found),
            len(report.not_found),
            after,
            report.checks_listed,
            report.results_fetched,
        )

    def _interruptible_sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._interrupted:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))

    # --- indexes ---------------------------------------------------------------------------------

    def _load_indexes(self) -> None:
        opts = self.options
        for row in self.ledger.rows(run_id=opts.run_id, check_type=opts.check_type, status=CREATED):
            self._run_created.add(_key(row.phone_number))
        if opts.force:
            return
        since = datetime.now(UTC) - opts.max_age
        for digits in self.ledger.iter_created_numbers(opts.check_type, since):
            self._fresh.add(_key(digits))
        for stored in self._fresh_source:
            # hmac privacy: the warehouse holds pseudonyms; compare the candidates' pseudonyms.
            if stored.startswith("hmac:"):
                self._fresh_protected.add(stored)
            else:
                self._fresh.add(_key(stored))

    # --- the main pass ---------------------------------------------------------------------------

    def _main(self, chunks: Iterable[Sequence[object]]) -> None:
        opts = self.options
        s = self.summary
        region = opts.default_region
        dedup = Deduplicator()
        check_type = opts.check_type
        ready: list[_Job] = []
        skipped: dict[str, list[tuple[str, str]]] = {}
        for chunk in chunks:
            if self._interrupted:
                break
            rejected: list[tuple[str, str]] = []
            for raw in chunk:
                s.read += 1
                number = to_e164(raw, region)
                if isinstance(number, RejectedNumber):
                    if opts.shard_index == 0:
                        s.invalid += 1
                        rejected.append((number.raw, number.reason))
                    continue
                digits = number.digits
                if opts.shards > 1 and shard_of(digits, opts.shards) != opts.shard_index:
                    s.other_shards += 1
                    continue
                if dedup.seen(digits):
                    s.duplicates += 1
                    continue
                key = _key(digits)
                if key in self._run_created:
                    if key not in self._reconciled_keys:
                        s.already_created += 1
                    continue
                if key in self._fresh or (
                    self._fresh_protected
                    and self.privacy is not None
                    and self.privacy.protect(digits) in self._fresh_protected
                ):
                    if key not in self._reconciled_keys:
                        s.fresh_skipped += 1
                    continue
                if opts.dry_run:
                    s.would_send += 1
                    continue
                rid = request_id(opts.run_id, check_type, digits)
                if self._stop_kind is not None:
                    if self._interrupted:
                        break
                    skipped.setdefault(self._stop_message or "", []).append((rid, digits))
                    continue
                reservation = self.budget.try_reserve(check_type)
                if reservation == WAIT:
                    # Only checks in flight can decide: send what is ready, wait for them.
                    self._dispatch(ready)
                    ready = []
                    reservation = self.budget.reserve(check_type, self.cancel)
                if not isinstance(reservation, Reservation):
                    if self._stop_kind is None and self.budget.exhausted:
                        self._begin_stop(self.budget.exhausted, self.budget.describe(), halt=False)
                    if self._interrupted:
                        break
                    skipped.setdefault(self._stop_message or "", []).append((rid, digits))
                    continue
                ready.append(_Job(rid, digits, reservation))
                if len(ready) >= self._dispatch_size():
                    self._dispatch(ready)
                    ready = []
            if ready and not self._interrupted:
                self._dispatch(ready)
                ready = []
            self._record_rejected(rejected)
            self._record_skipped(skipped)
            skipped = {}
            self._drain()
            self._flush()
        for job in ready:  # reserved but never marked pending: nothing to record
            self.budget.settle(job.reservation, "not_created")
        if not self._interrupted:
            self._record_skipped(skipped)

    def _dispatch_size(self) -> int:
        """Numbers marked pending per commit: half the in-flight window, so the other half keeps
        the workers busy while the batch is committed."""
        return max(1, min(self.options.batch_size, self._max_inflight // 2))

    def _dispatch(self, jobs: list[_Job]) -> None:
        """Mark ``jobs`` pending (one commit), then submit them; waits for room first."""
        opts = self.options
        assert self._executor is not None
        while jobs:
            want = min(len(jobs), self._dispatch_size())
            while self._max_inflight - len(self._inflight) < want:
                self._drain(block=True)
            room = self._max_inflight - len(self._inflight)
            batch, jobs = jobs[:room], jobs[room:]
            if self._stop_kind is not None:
                for job in batch + jobs:
                    self.budget.settle(job.reservation, "not_created")
                if not self._interrupted:
                    self._record_skipped(
                        {self._stop_message or "": [(j.request_id, j.digits) for j in batch + jobs]}
                    )
                return
            claimed = self.ledger.claim(
                opts.run_id,
                opts.check_type,
                [(j.request_id, j.digits) for j in batch],
                owner=self.owner,
                lease=opts.claim_lease,
                created_since=self._run_started - (timedelta(0) if opts.force else opts.max_age),
            )
            granted = {d for _, d in claimed.granted}
            for job in batch:
                if job.digits in granted:
                    self._inflight.add(self._executor.submit(self._send, job))
                else:
                    self.budget.settle(job.reservation, "not_created")
            for rid, digits, _holder in claimed.held:
                self._contended[digits] = rid
            for rid, digits in claimed.unresolved:
                self._contended[digits] = rid
            for _rid, digits in claimed.created:  # created elsewhere since we looked
                key = _key(digits)
                if key in self._run_created or key in self._fresh:
                    continue
                if digits in claimed.created_by_run:  # another attempt of this run
                    self._run_created.add(key)
                    self.summary.already_created += 1
                else:
                    self._fresh.add(key)
                    self.summary.fresh_skipped += 1

    def _send(self, job: _Job) -> _Result:
        """Worker thread: one POST, classified. Never raises."""
        check_type = self.options.check_type
        if self.cancel.is_set():
            self.budget.settle(job.reservation, "not_created")
            return _Result(job, "unsent", error=self._stop_message or "stopped")
        if not self._lease_allows_send():
            self.budget.settle(job.reservation, "not_created")
            return _Result(
                job, "unsent", error="claim lease ran short (ledger unreachable?): not sent"
            )
        try:
            created = self.client.create_check(job.digits, check_type)
        except InsufficientCreditsError as exc:
            self.budget.settle(job.reservation, "not_created")
            message = f"not enough credits: {exc.server_message or exc}"
            self._begin_stop(STOP_CREDITS, message)  # halts: queued POSTs would 422 too
            result = _Result(job, "not_checked", error=message)
        except SyncCancelled:  # stopped while backing off a retry that was provably not received
            self.budget.settle(job.reservation, "not_created")
            result = _Result(job, "not_checked", error=self._stop_message or "stopped")
        except ValidationError as exc:  # this number refused (422), nothing charged
            self.budget.settle(job.reservation, "not_created")
            result = _Result(job, "failed", error=str(exc))
        except NumberYoError as exc:
            if getattr(exc, "check_may_exist", False):
                self.budget.settle(job.reservation, "unknown")
                result = _Result(job, "pending", error=str(exc))
            elif type(exc) is TransportError:  # could not connect, nothing sent
                self.budget.settle(job.reservation, "not_created")
                result = _Result(job, "failed", error=str(exc))
            else:  # token, check type, rate limit or server refusal: every request would fail
                self.budget.settle(job.reservation, "not_created")
                self._begin_stop(STOP_ERROR, str(exc), fatal=exc)
                result = _Result(job, "failed", error=str(exc), fatal=exc)
        except BaseException as exc:  # a bug: keep the row pending (maybe sent), stop the run
            self.budget.settle(job.reservation, "unknown")
            self._begin_stop(STOP_ERROR, f"{type(exc).__name__}: {exc}", fatal=exc)
            result = _Result(job, "pending", error=f"{type(exc).__name__}: {exc}", fatal=exc)
        else:
            self.budget.settle(job.reservation, "created", created.check.user_cost)
            result = _Result(job, "created", created=created)
        if self.on_result is not None:
            self.on_result(job.digits, result.kind)
        return result

    # --- recording -------------------------------------------------------------------------------

    def _drain(self, *, block: bool = False, until_empty: bool = False) -> None:
        """Record finished POSTs (main thread only): those done now; with ``block`` at least
        one; with ``until_empty`` all of them."""
        while self._inflight:
            if block or until_empty:
                done, _ = wait(self._inflight, timeout=0.5, return_when=FIRST_COMPLETED)
            else:
                done = {f for f in self._inflight if f.done()}
            for future in done:
                self._inflight.discard(future)
                self._handle(future.result())
            self._flush()
            if not until_empty and (done or not block):
                return

    def _handle(self, result: _Result) -> None:
        s = self.summary
        job = result.job
        if result.kind == "created":
            assert result.created is not None
            check = result.created.check
            s.created += 1
            self._consecutive_errors = 0
            self._outcomes.append(
                Outcome(
                    job.request_id,
                    CREATED,
                    check_id=check.id,
                    check_created_at=check.created_at,
                    user_cost=check.user_cost,
                )
            )
            self._landing.append((result.created, job.digits))
        elif result.kind == "unsent":
            s.not_checked += 1
            self._outcomes.append(
                Outcome(job.request_id, NOT_CHECKED, error=result.error, attempts_delta=-1)
            )
        elif result.kind == "not_checked":
            s.not_checked += 1
            self._outcomes.append(Outcome(job.request_id, NOT_CHECKED, error=result.error))
        elif result.kind == "pending":
            s.first_error = s.first_error or result.error
            self._consecutive_errors += 1
            self._outcomes.append(Outcome(job.request_id, PENDING, error=result.error))
        else:
            s.failed += 1
            s.first_error = s.first_error or result.error
            if result.fatal is None:
                self._consecutive_errors += 1
            self._outcomes.append(Outcome(job.request_id, FAILED, error=result.error))
        if self._consecutive_errors >= self.options.max_consecutive_errors and not (
            self._interrupted
        ):
            message = (
                f"{self._consecutive_errors} POSTs in a row failed or got no answer; stopping "
                f"(last: {result.error})"
            )
            self._begin_stop(STOP_ERROR, message, fatal=CheckRunError(message))
        if self.progress is not None:
            self.progress.advance()

    def _flush(self, *, force: bool = False) -> None:
        opts = self.options
        due = force or time.monotonic() - self._last_flush >= 0.5
        if self._outcomes and (due or len(self._outcomes) >= opts.batch_size):
            self.ledger.record(opts.run_id, self._outcomes, owner=self.owner)
            self._outcomes = []
            self._last_flush = time.monotonic()
        if self._landing and (force or len(self._landing) >= 256):
            land_created(self.sink, self._landing, load_id=self.load_id, privacy=self.privacy)
            self._landing = []

    def _record_rejected(self, rejected: list[tuple[str, str]]) -> None:
        if rejected and not self.options.dry_run:
            self.ledger.reject(self.options.run_id, rejected)

    def _record_skipped(self, skipped: Mapping[str, list[tuple[str, str]]]) -> None:
        opts = self.options
        for reason, numbers in skipped.items():
            if numbers:
                self.ledger.mark_not_checked(opts.run_id, opts.check_type, numbers, reason)
                self.summary.not_checked += len(numbers)
