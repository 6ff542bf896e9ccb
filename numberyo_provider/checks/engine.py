"""Check numbers from a source: hygiene, then paid POSTs that are never sent twice.

One run (one shard of a run), in order (``docs/credits-and-idempotency.md`` has the why):

1. **Reconcile** ``pending`` ledger rows of this shard's numbers (this run's of any age, earlier
   runs' within ``max_age``) against the account's checks
   (:mod:`numberyo_provider.checks.reconcile`): found ones become ``created`` and their results
   are landed; the others are safe to send.
2. **Hygiene**, streamed chunk by chunk: normalise to E.164 (``default_region``); invalid values go
   to the ledger's rejected list, never to the API; keep this shard's numbers; drop duplicates;
   skip numbers this run already created (a retry) and, unless ``force``, numbers with a result of
   this type newer than ``max_age`` (warehouse ``checks`` or any run's ``created`` ledger row).
3. **Send**: each number is reserved against the budget, marked ``pending`` in the ledger in a
   batch (committed) *before* its POST is submitted to ``max_workers`` threads, and its row is
   updated after the answer (batched too). Created checks and their results go to the lander.
4. On 422 "not enough credits", a budget limit or a stop request: no new POST is sent, POSTs in
   flight finish and are recorded; the rest of the source is recorded ``not_checked`` with the
   reason (a stop request skips that and returns at once).
5. **Reconcile** again the requests of this run whose outcome stayed unknown (read timeouts).

Loading into the warehouse is separate (:func:`commit_check_run`), so that shard tasks can land
in parallel and one task commits them all (DuckDB has one writer).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from hashlib import sha256
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from numberyo_provider import schema
from numberyo_provider.checks.budget import DEFAULT_COST_ESTIMATE, WAIT, Budget, Reservation
from numberyo_provider.checks.ledger import (
    CREATED,
    DEFAULT_CLAIM_LEASE,
    FAILED,
    NOT_CHECKED,
    PENDING,
    Ledger,
    LedgerRow,
    Outcome,
    default_ledger_url,
    new_owner,
    request_id,
    retire_owner,
)
from numberyo_provider.checks.numbers import Deduplicator, RejectedNumber, check_region, normalize
from numberyo_provider.checks.reconcile import (
    DEFAULT_SETTLE,
    DEFAULT_SKEW,
    reconcile,
    wait_until_settled,
)
from numberyo_provider.checks.sharding import check_shard, shard_of
from numberyo_provider.client import NumberYoClient
from numberyo_provider.errors import (
    CheckRunError,
    ConfigurationError,
    InsufficientCreditsError,
    InsufficientCreditsStop,
    NotFoundError,
    NumberYoError,
    SyncCancelled,
    TransportError,
    UnsupportedCheckTypeError,
    ValidationError,
)
from numberyo_provider.models import Check, CheckResults, CreatedCheck, normalize_check_type
from numberyo_provider.normalize import normalize_checks, normalize_created

if TYPE_CHECKING:
    from numberyo_provider.land import LandedFile
    from numberyo_provider.privacy import PrivacyPolicy
    from numberyo_provider.progress import Progress
    from numberyo_provider.warehouse import LoadResult, Warehouse

log = logging.getLogger("numberyo_provider.checker")

__all__ = [
    "DEFAULT_MAX_AGE",
    "ON_INSUFFICIENT_CREDITS",
    "CheckOptions",
    "CheckRunError",
    "CheckSummary",
    "Checker",
    "InsufficientCreditsStop",
    "check_load_id",
    "default_cli_run_id",
]

DEFAULT_MAX_AGE = timedelta(days=30)
ON_INSUFFICIENT_CREDITS = ("fail", "warn", "skip")
#: Stop kinds in :attr:`CheckSummary.stopped`.
STOP_INTERRUPTED = "interrupted"
STOP_CREDITS = "insufficient_credits"
STOP_ERROR = "error"

_EXTRA_ENVELOPE_KEYS = frozenset({"status"})
_LOAD_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class Sink(Protocol):
    """Where created checks' rows go (a :class:`~numberyo_provider.land.ParquetLander`)."""

    def write(self, table: schema.Table, data: pa.Table) -> None: ...


def _key(digits: str) -> int | str:
    # Same compact key as numbers.Deduplicator: E.164 digits never start with 0.
    if digits.isascii() and digits.isdigit() and not digits.startswith("0"):
        return int(digits)
    return digits


def check_load_id(run_id: str) -> str:
    """The warehouse load id of a check run: stable, so every shard and retry of one run shares
    it (``_load_id`` of the rows, ``_loads`` manifest) and file-name safe."""
    slug = _LOAD_ID_UNSAFE.sub("-", run_id).strip("-.")[:60] or "run"
    digest = sha256(run_id.encode()).hexdigest()[:8]
    return f"check-{slug}-{digest}"


def default_cli_run_id(
    source: str, check_type: str, *, today: datetime | None = None, shard: str = ""
) -> str:
    """``cli-HLR-20250330-<hash of source>``: re-running the same command the same day resumes
    that run (nothing created is sent again); another day is a new run, and the ledger's
    ``created`` rows within ``max_age`` still keep it from re-charging."""
    day = (today or datetime.now(timezone.utc)).strftime("%Y%m%d")
    digest = sha256(f"{source}\x1f{check_type}\x1f{shard}".encode()).hexdigest()[:12]
    return f"cli-{check_type}-{day}-{digest}"


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


@dataclass(frozen=True)
class CheckOptions:
    """What one run (or shard of a run) checks, and within which limits."""

    check_type: str
    run_id: str
    default_region: str | None = None
    max_checks: int | None = None
    max_credits: Decimal | None = None
    cost_estimate: Decimal = DEFAULT_COST_ESTIMATE
    max_age: timedelta = DEFAULT_MAX_AGE
    force: bool = False
    max_workers: int = 8
    shard_index: int = 0
    shards: int = 1
    #: Ledger rows marked pending per transaction (at most); also the outcome flush size.
    batch_size: int = 64
    reconcile_skew: timedelta = DEFAULT_SKEW
    reconcile_settle: timedelta = DEFAULT_SETTLE
    #: This many failed POSTs in a row (transport errors, unknown outcomes) stop the run.
    max_consecutive_errors: int = 20
    #: Hygiene only: count what would be sent (``would_send``); no request, no ledger write.
    dry_run: bool = False
    #: How long a claim on a number holds without renewal (the checker renews it every quarter
    #: of it); another run takes over an unrenewed claim only after this, through reconciliation.
    claim_lease: timedelta = DEFAULT_CLAIM_LEASE
    #: At the end of the run, how long to wait for numbers another run holds (in flight there)
    #: before leaving them ``not_checked`` for the next run.
    claim_wait: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        object.__setattr__(self, "check_type", normalize_check_type(self.check_type))
        if not isinstance(self.run_id, str) or not self.run_id.strip():
            raise ConfigurationError("run_id must be a non-empty string")
        if len(self.run_id) > 250:
            raise ConfigurationError(f"run_id is {len(self.run_id)} characters; at most 250")
        object.__setattr__(self, "default_region", check_region(self.default_region))
        if self.max_checks is not None:
            _positive_int("max_checks", self.max_checks, minimum=0)
        if self.max_credits is not None and not isinstance(self.max_credits, Decimal):
            object.__setattr__(self, "max_credits", Decimal(str(self.max_credits)))
        if not isinstance(self.cost_estimate, Decimal):
            object.__setattr__(self, "cost_estimate", Decimal(str(self.cost_estimate)))
        if not isinstance(self.max_age, timedelta) or self.max_age < timedelta(0):
            raise ConfigurationError(f"max_age must be a duration >= 0, not {self.max_age!r}")
        _positive_int("max_workers", self.max_workers)
        _positive_int("batch_size", self.batch_size)
        _positive_int("max_consecutive_errors", self.max_consecutive_errors)
        if not isinstance(self.claim_lease, timedelta) or self.claim_lease < timedelta(seconds=4):
            raise ConfigurationError(
                f"claim_lease must be a duration of at least 4 seconds, not {self.claim_lease!r}"
            )
        if not isinstance(self.claim_wait, timedelta) or self.claim_wait < timedelta(0):
            raise ConfigurationError(f"claim_wait must be a duration >= 0, not {self.claim_wait!r}")
        check_shard(self.shard_index, self.shards)


@dataclass
class CheckSummary:
    """What a run did; ``as_dict()`` goes to XCom, ``render()`` to the log."""

    run_id: str
    check_type: str
    shard_index: int = 0
    shards: int = 1
    #: Source values read (every shard reads the whole source).
    read: int = 0
    #: Values that are not valid numbers (counted by shard 0 only), recorded in rejected_numbers.
    invalid: int = 0
    duplicates: int = 0
    #: Valid numbers that belong to another shard.
    other_shards: int = 0
    #: Numbers with a result of this type newer than max_age (warehouse or ledger).
    fresh_skipped: int = 0
    #: Numbers an earlier attempt of this run already created (never sent again).
    already_created: int = 0
    #: Requests whose outcome was unknown and that were found on the server (not sent again).
    reconciled: int = 0
    created: int = 0
    failed: int = 0
    not_checked: int = 0
    #: Requests still ``pending`` at the end (outcome unknown; the next run reconciles them).
    outcome_unknown: int = 0
    #: Numbers another run held (in flight there, or its outcome unknown) until this run ended:
    #: not sent by this run; the run that holds them, or the next run, settles them.
    in_flight_elsewhere: int = 0
    #: Dry run: numbers that would have been sent.
    would_send: int = 0
    #: The error of the first request that failed or got no answer (None when none did).
    first_error: str | None = None
    credits_spent: Decimal = Decimal(0)
    #: None, or why sending stopped: ``insufficient_credits``, ``max_checks``, ``max_credits``,
    #: ``interrupted``, ``error``.
    stopped: str | None = None
    stop_message: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckSummary:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["credits_spent"] = Decimal(str(values.get("credits_spent", "0")))
        for name in ("started_at", "finished_at"):
            if isinstance(values.get(name), str):
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)

    @classmethod
    def merge(cls, parts: Sequence[CheckSummary]) -> CheckSummary:
        """One summary for the shards of a run (every shard read the whole source)."""
        if not parts:
            raise ValueError("nothing to merge")
        first = parts[0]
        out = cls(run_id=first.run_id, check_type=first.check_type, shards=first.shards)
        out.shard_index = -1
        out.read = max(p.read for p in parts)
        for name in (
            "invalid",
            "duplicates",
            "fresh_skipped",
            "already_created",
            "reconciled",
            "created",
            "failed",
            "not_checked",
            "outcome_unknown",
            "in_flight_elsewhere",
            "would_send",
        ):
            setattr(out, name, sum(getattr(p, name) for p in parts))
        out.credits_spent = sum((p.credits_spent for p in parts), Decimal(0))
        out.first_error = next((p.first_error for p in parts if p.first_error), None)
        stops = [p for p in parts if p.stopped]
        if stops:
            out.stopped = stops[0].stopped
            out.stop_message = stops[0].stop_message
        out.started_at = min(p.started_at for p in parts)
        ends = [p.finished_at for p in parts if p.finished_at is not None]
        out.finished_at = max(ends) if ends else None
        return out

    def render(self) -> str:
        shard = "" if self.shards == 1 else f" (shard {self.shard_index + 1}/{self.shards})"
        if self.shard_index < 0:
            shard = f" ({self.shards} shards)"
        lines = [
            f"numberyo check {self.check_type} run {self.run_id}{shard}:",
            f"  read {self.read:,}, invalid {self.invalid:,}, duplicates {self.duplicates:,}, "
            f"fresh skipped {self.fresh_skipped:,}, already created {self.already_created:,}",
            f"  created {self.created:,}, reconciled {self.reconciled:,}, failed {self.failed:,}, "
            f"not checked {self.not_checked:,}, outcome unknown {self.outcome_unknown:,}",
            f"  credits spent {self.credits_spent}",
        ]
        if self.in_flight_elsewhere:
            lines.append(
                f"  in flight in another run {self.in_flight_elsewhere:,} (not sent by this run)"
            )
        if self.would_send:
            lines.append(f"  dry run: {self.would_send:,} number(s) would be sent")
        if self.stopped:
            lines.append(f"  stopped: {self.stop_message or self.stopped}")
        return "\n".join(lines)


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
        stop_event: threading.Event | None = None,
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
        #: Set when sending must stop; give the client ``sleep=cancellable_sleep(stop_event)`` so
        #: a retry's backoff ends at once too.
        self.stop_event = stop_event if stop_event is not None else threading.Event()
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
        self._max_inflight = max(4 * options.max_workers, 8)
        self._executor: ThreadPoolExecutor | None = None
        self._ran = False
        #: This checker's identity in the ledger's claims (one per checker, never reused).
        self.owner = new_owner()
        self._run_started = datetime.now(timezone.utc)
        #: monotonic time until which every claim of this checker is known to hold.
        self._lease_valid_until = 0.0
        self._heartbeat_stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        #: Numbers another owner held when this run wanted them, ``{digits: request_id}``.
        self._contended: dict[str, str] = {}

    # --- control --------------------------------------------------------------------------------

    def stop(self, message: str = "stopped on request") -> None:
        """Stop promptly (Ctrl-C, ``on_kill``): no new POST; in-flight ones finish and are
        recorded. Safe from any thread and from a signal handler (it takes no lock)."""
        if self._stop_kind != STOP_ERROR:
            self._stop_kind = STOP_INTERRUPTED
            self._stop_message = message
        self.stop_event.set()

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
            self.stop_event.set()
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
            max_workers=opts.max_workers, thread_name_prefix="numberyo-check"
        )
        try:
            if not opts.dry_run:
                self._start_heartbeat()
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
            self._stop_heartbeat()
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
        s.finished_at = datetime.now(timezone.utc)
        if self._fatal is not None:
            raise self._fatal
        return s

    def _mine(self, digits: str) -> bool:
        opts = self.options
        return opts.shards == 1 or shard_of(digits, opts.shards) == opts.shard_index

    # --- claims ----------------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        """Renew this checker's claims every quarter lease, so a claim lapses only when the
        process stops renewing it (killed, frozen), never while its POST may still go out."""
        lease = self.options.claim_lease
        longest = getattr(self.client, "longest_request_seconds", None)
        if callable(longest) and longest() > lease.total_seconds() / 2:
            log.warning(
                "one request may take up to %.0f s with this client's timeout and retries, more "
                "than half the claim lease (%.0f s): raise claim_lease, or lower the timeout",
                longest(),
                lease.total_seconds(),
            )
        self._lease_valid_until = time.monotonic() + lease.total_seconds()
        every = max(lease.total_seconds() / 4, 0.5)

        def beat() -> None:
            while not self._heartbeat_stop.wait(every):
                started = time.monotonic()
                try:
                    self.ledger.renew(self.owner, lease)
                except Exception as exc:  # the workers stop sending once the lease runs short
                    log.warning("could not renew this run's claims in the ledger: %s", exc)
                    continue
                self._lease_valid_until = started + lease.total_seconds()

        self._heartbeat = threading.Thread(target=beat, name="numberyo-claims", daemon=True)
        self._heartbeat.start()

    def _stop_heartbeat(self) -> None:
        self._heartbeat_stop.set()
        if self._heartbeat is None:
            retire_owner(self.owner)
            return
        self._heartbeat.join()
        try:
            # Claims of requests whose outcome is known go; those still pending stay claimed
            # until they are reconciled (by this owner's next run, or a taker after the lease).
            self.ledger.release_settled(self.owner)
        except Exception as exc:
            log.warning("could not release this run's settled claims: %s", exc)
        retire_owner(self.owner)

    def _lease_allows_send(self) -> bool:
        """A POST goes out only while at least half a lease of the claim is left: a frozen process
        that wakes after its claim lapsed (and may have been taken over) sends nothing."""
        half = self.options.claim_lease.total_seconds() / 2
        return time.monotonic() + half < self._lease_valid_until

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
                reservation = self.budget.reserve(opts.check_type, self.stop_event)
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
        now = datetime.now(timezone.utc)
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
            cancel=self.stop_event,
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
            self._land_found(found.check, found.results, found.row.phone_number)
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
        since = datetime.now(timezone.utc) - opts.max_age
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
                number = normalize(raw, region)
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
                    reservation = self.budget.reserve(check_type, self.stop_event)
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
        if self.stop_event.is_set():
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
            self._land_created(self._landing)
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

    # --- landing ---------------------------------------------------------------------------------

    def _write(self, tables: Mapping[str, pa.Table]) -> None:
        for name, data in tables.items():
            if data.num_rows:
                self.sink.write(schema.TABLES_BY_NAME[name], data)

    def _land_created(self, items: Sequence[tuple[CreatedCheck, str]]) -> None:
        plain = [(c, d) for c, d in items if not (set(c.extra) - _EXTRA_ENVELOPE_KEYS)]
        special = [(c, d) for c, d in items if set(c.extra) - _EXTRA_ENVELOPE_KEYS]
        if plain:
            self._write(
                normalize_checks(
                    [c.check for c, _ in plain],
                    {c.check.id: c.results for c, _ in plain},
                    phone_numbers={c.check.id: d for c, d in plain},
                    load_id=self.load_id,
                    privacy=self.privacy,
                )
            )
        for created, digits in special:
            self._write(
                normalize_created(created, digits, load_id=self.load_id, privacy=self.privacy)
            )

    def _land_found(self, check: Check, results: CheckResults, digits: str) -> None:
        self._write(
            normalize_checks(
                [check],
                {check.id: results},
                phone_numbers={check.id: digits},
                load_id=self.load_id,
                privacy=self.privacy,
            )
        )


# --- freshness from the warehouse ----------------------------------------------------------------


def fresh_numbers_in_warehouse(warehouse: Warehouse, check_type: str, since: datetime) -> list[str]:
    """Numbers (as stored: digits, or their privacy pseudonym) with a check of ``check_type``
    created at or after ``since``. Creates the schema when the warehouse is new."""
    warehouse.ensure_schema()
    tables = getattr(warehouse, "tables", None)
    if isinstance(tables, Mapping):  # a SQLAlchemy warehouse: typed, dialect-portable
        import sqlalchemy as sa

        checks = tables[schema.CHECKS.name]
        stmt = (
            sa.select(checks.c.phone_number)
            .distinct()
            .where(
                checks.c.type == check_type,
                checks.c.created_at >= since,
                checks.c.phone_number.is_not(None),
            )
        )
        with warehouse.transaction() as conn:
            return [str(r[0]) for r in conn.execute(stmt)]
    rows = warehouse.query(
        f"SELECT DISTINCT phone_number FROM {warehouse.qualified(schema.CHECKS.name)} "
        "WHERE type = ? AND created_at >= ? AND phone_number IS NOT NULL",
        [check_type, since],
    )
    return [str(r[0]) for r in rows]


# --- one run, end to end (the CLI and the operators) ----------------------------------------------


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
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    part = f"-s{shard_index}of{shards}" if shards > 1 else ""
    return f"{load_id}{part}-{stamp}-{uuid.uuid4().hex[:6]}"


def run_check(
    *,
    client: NumberYoClient,
    options: CheckOptions,
    chunks: Iterable[Sequence[object]],
    warehouse: str,
    parquet_root: str,
    ledger: str | Ledger | None = None,
    storage_options: Mapping[str, Any] | None = None,
    privacy: PrivacyPolicy | None = None,
    lock_timeout_s: float = 60.0,
    commit: bool = True,
    progress: Progress | None = None,
    on_checker: Callable[[Checker], None] | None = None,
    on_result: Callable[[str, str], None] | None = None,
    stop_event: threading.Event | None = None,
) -> CheckRun:
    """Check the numbers of ``chunks`` and land the results; with ``commit`` also load them (and
    the run's ledger rows) into the warehouse in one transaction.

    ``chunks``: a :class:`~numberyo_provider.checks.source.Source` is validated before anything is
    created, so a usage error leaves no warehouse, ledger or landing file.
    ``ledger``: a :class:`Ledger`, its URL, or None for the default beside the warehouse
    (:func:`~numberyo_provider.checks.ledger.default_ledger_url`). ``on_checker`` receives the
    :class:`Checker` before it starts (to wire ``stop()`` to Ctrl-C or ``on_kill``);
    ``stop_event`` is the event the checker sets to stop (share it with the client's ``sleep``).
    """
    from numberyo_provider.checks.source import Source
    from numberyo_provider.land import ParquetLander
    from numberyo_provider.warehouse import connect_warehouse

    if isinstance(chunks, Source):
        chunks.validate()  # a wrong name or a refused query must write nothing: check it first
    own_ledger = not isinstance(ledger, Ledger)
    book = ledger if isinstance(ledger, Ledger) else Ledger(ledger or default_ledger_url(warehouse))
    started_at = datetime.now(timezone.utc)
    load_id = check_load_id(options.run_id)
    try:
        fresh: list[str] = []
        if not options.force:
            since = started_at - options.max_age
            with connect_warehouse(warehouse, lock_timeout_s=lock_timeout_s) as wh:
                fresh = fresh_numbers_in_warehouse(wh, options.check_type, since)
            fresh = _comparable(fresh, privacy)
        lander = ParquetLander(
            parquet_root,
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
            stop_event=stop_event,
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
            summary.stop_message = summary.stop_message or _one_line(exc)
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
                    parquet_root=parquet_root,
                    storage_options=storage_options,
                    privacy=privacy,
                    lock_timeout_s=lock_timeout_s,
                    max_workers=options.max_workers,
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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- loading a run ----------------------------------------------------------------------------


@dataclass
class CommitReport:
    load: LoadResult
    #: Created checks whose results no landed file held and that were fetched again (free GETs).
    repaired: int


def commit_check_run(
    *,
    warehouse: str,
    ledger: Ledger,
    run_id: str,
    files: Sequence[LandedFile],
    started_at: datetime,
    client: NumberYoClient | None,
    parquet_root: str,
    storage_options: Mapping[str, Any] | None = None,
    privacy: PrivacyPolicy | None = None,
    lock_timeout_s: float = 60.0,
    max_workers: int = 8,
) -> CommitReport:
    """Load a run (all its shards' files) into the warehouse in ONE transaction (``kind`` check):
    the landed checks and results, plus the run's ``check_requests`` and ``rejected_numbers``.

    Created checks of the run whose results are neither in ``files`` nor already in the warehouse
    (a shard killed before it landed them, a lost file) are fetched again first (free GETs), so a
    load is complete whatever happened to the shards. Idempotent: loading again changes nothing.
    """
    from numberyo_provider.land import ParquetLander
    from numberyo_provider.warehouse import LoadCommit, connect_warehouse

    load_id = check_load_id(run_id)
    present = [f for f in files if _exists(f.path, storage_options)]
    if len(present) < len(files):
        log.warning(
            "%d landed file(s) no longer exist; their checks' results are fetched again",
            len(files) - len(present),
        )
    # Files of the run that nobody passed on (an earlier try of a shard task, whose XCom a retry
    # cleared): found by name, so their checks need no second GET.
    known_paths = {f.path for f in present}
    for found_file in discover_landed_files(parquet_root, load_id, storage_options):
        if found_file.path not in known_paths:
            present.append(found_file)
            known_paths.add(found_file.path)
    landed_ids = _landed_check_ids(present, storage_options)
    created = [r for r in ledger.touched_by(run_id, status=CREATED) if r.check_id is not None]
    unlanded = [r for r in created if r.check_id not in landed_ids]
    errors: list[dict[str, Any]] = []
    repaired = 0
    all_files = list(present)
    with connect_warehouse(warehouse, lock_timeout_s=lock_timeout_s) as wh:
        wh.ensure_schema()
        loaded = wh.existing_check_ids([r.check_id for r in unlanded if r.check_id is not None])
    missing = [r for r in unlanded if r.check_id not in loaded]
    if missing:
        if client is None:
            raise ConfigurationError(
                f"{len(missing)} created check(s) of run {run_id} have no landed results and no "
                "API client was given to fetch them"
            )
        log.info("fetching the results of %d created check(s) that were not landed", len(missing))
        lander = ParquetLander(
            parquet_root,
            f"{load_id}-repair-{uuid.uuid4().hex[:6]}",
            storage_options=storage_options,
        )
        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            results = list(pool.map(lambda r: _results_or_error(client, r), missing))
        checks: list[Check] = []
        found: dict[int, CheckResults] = {}
        numbers: dict[int, str] = {}
        for row, outcome in zip(missing, results, strict=True):
            assert row.check_id is not None
            if isinstance(outcome, NumberYoError):
                errors.append(
                    {
                        "check_id": row.check_id,
                        "status": getattr(outcome, "status", None),
                        "message": _one_line(outcome),
                    }
                )
            else:
                found[row.check_id] = outcome
            checks.append(
                Check(
                    id=row.check_id,
                    type=row.check_type,
                    created_at=row.check_created_at or row.updated_at,
                    user_cost=row.user_cost,
                )
            )
            numbers[row.check_id] = row.phone_number
        tables = normalize_checks(
            checks, found, phone_numbers=numbers, load_id=load_id, privacy=privacy
        )
        for name, data in tables.items():
            if data.num_rows:
                lander.write(schema.TABLES_BY_NAME[name], data)
        all_files.extend(lander.flush())
        repaired = len(found)
    with connect_warehouse(warehouse, lock_timeout_s=lock_timeout_s) as wh:
        result = wh.commit_load(
            LoadCommit(
                load_id=load_id,
                kind="check",
                started_at=started_at,
                files=all_files,
                watermark=None,
                errors=errors,
                storage_options=storage_options,
                upserts={
                    schema.CHECK_REQUESTS.name: _private(
                        ledger.iter_request_batches(run_id), "phone_number", privacy
                    ),
                    schema.REJECTED_NUMBERS.name: _private(
                        ledger.iter_rejected_batches(run_id), "raw_value", privacy
                    ),
                },
            )
        )
    return CommitReport(load=result, repaired=repaired)


def discover_landed_files(
    parquet_root: str, load_id: str, storage_options: Mapping[str, Any] | None = None
) -> list[LandedFile]:
    """Every file landed under ``parquet_root`` for ``load_id`` (all shards, all tries).

    Both layouts: ``type=*/landed_date=*`` (this version) and ``type=*/created_date=*`` (files a
    run of an older version landed before an upgrade, then resumed by this one).
    """
    from urllib.parse import unquote

    import fsspec
    import pyarrow.parquet as pq

    from numberyo_provider.land import LandedFile

    fs, root = fsspec.core.url_to_fs(parquet_root, **dict(storage_options or {}))
    root = str(root).rstrip("/")
    local = "file" in ([fs.protocol] if isinstance(fs.protocol, str) else list(fs.protocol))
    out: list[LandedFile] = []
    for table in schema.DATA_TABLES:
        paths = {
            str(p)
            for partition in ("landed_date", "created_date")
            for p in fs.glob(f"{root}/{table.name}/type=*/{partition}=*/{load_id}-*.parquet")
        }
        for path in sorted(paths):
            partition = {
                key: unquote(value)
                for key, _, value in (p.partition("=") for p in str(path).split("/")[-3:-1])
            }
            with fs.open(path, "rb") as handle:
                rows = pq.ParquetFile(handle).metadata.num_rows
            shown = str(path) if local else str(fs.unstrip_protocol(path))
            out.append(LandedFile(table.name, shown, rows, partition))
    return out


def _results_or_error(client: NumberYoClient, row: LedgerRow) -> CheckResults | NumberYoError:
    assert row.check_id is not None
    try:
        return client.get_results(row.check_id)
    except (NotFoundError, UnsupportedCheckTypeError) as exc:
        return exc


def _private(
    batches: Iterable[pa.Table], column: str, privacy: PrivacyPolicy | None
) -> Iterable[pa.Table]:
    """The ledger's numbers as the warehouse may hold them (the privacy policy applied)."""
    if privacy is None or getattr(privacy, "mode", "keep") == "keep":
        yield from batches
        return
    for batch in batches:
        values = [privacy.protect(v) for v in batch.column(column).to_pylist()]
        index = batch.schema.get_field_index(column)
        yield batch.set_column(index, batch.schema.field(index), pa.array(values, pa.string()))


def _exists(path: str, storage_options: Mapping[str, Any] | None) -> bool:
    import fsspec

    fs, local = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
    return bool(fs.exists(local))


def _landed_check_ids(
    files: Sequence[LandedFile], storage_options: Mapping[str, Any] | None
) -> set[int]:
    import fsspec
    import pyarrow.parquet as pq

    ids: set[int] = set()
    for f in files:
        if f.table != schema.CHECKS.name:
            continue
        with fsspec.open(f.path, "rb", **dict(storage_options or {})) as handle:
            column = pq.read_table(handle, columns=["check_id"]).column("check_id")
        ids.update(int(v) for v in column.to_pylist() if v is not None)
    return ids
