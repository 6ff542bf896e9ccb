"""What a check run is asked to do and what it did: :class:`CheckOptions`, :class:`CheckSummary`.

The options of one run (or one shard of a run) are validated once, here, whoever builds them (the
CLI, the operators, a script); the summary is what every step reports back (``as_dict()`` goes to
XCom and ``--json``, ``render()`` to the log, ``merge()`` joins the shards of a run). The run's
identity lives here too: its warehouse load id (:func:`check_load_id`), shared by every shard
and retry, and the default run id of ``numberyo check`` (:func:`default_cli_run_id`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from hashlib import sha256
from typing import Any

from numberyo_provider.api.models import canonical_check_type
from numberyo_provider.checks.budget import DEFAULT_COST_ESTIMATE
from numberyo_provider.checks.ledger import DEFAULT_CLAIM_LEASE
from numberyo_provider.checks.numbers import check_region
from numberyo_provider.checks.reconcile import DEFAULT_SETTLE, DEFAULT_SKEW
from numberyo_provider.checks.sharding import check_shard
from numberyo_provider.deprecation import renamed_keywords, warn_renamed
from numberyo_provider.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_AGE",
    "ON_INSUFFICIENT_CREDITS",
    "STOP_CREDITS",
    "STOP_ERROR",
    "STOP_INTERRUPTED",
    "CheckOptions",
    "CheckSummary",
    "check_load_id",
    "default_cli_run_id",
]

DEFAULT_MAX_AGE = timedelta(days=30)
ON_INSUFFICIENT_CREDITS = ("fail", "warn", "skip")
#: Stop kinds in :attr:`CheckSummary.stopped`.
STOP_INTERRUPTED = "interrupted"
STOP_CREDITS = "insufficient_credits"
STOP_ERROR = "error"

_LOAD_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


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
    day = (today or datetime.now(UTC)).strftime("%Y%m%d")
    digest = sha256(f"{source}\x1f{check_type}\x1f{shard}".encode()).hexdigest()[:12]
    return f"cli-{check_type}-{day}-{digest}"


def _positive_int(name: str, value: object, *, minimum: int = 1) -> int:
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
    #: Parallel POSTs (threads sharing one client). Renamed from ``max_workers`` in 0.2.
    concurrency: int = 8
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
        object.__setattr__(self, "check_type", canonical_check_type(self.check_type))
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
        _positive_int("concurrency", self.concurrency)
        _positive_int("batch_size", self.batch_size)
        _positive_int("max_consecutive_errors", self.max_consecutive_errors)
        if not isinstance(self.claim_lease, timedelta) or self.claim_lease < timedelta(seconds=4):
            raise ConfigurationError(
                f"claim_lease must be a duration of at least 4 seconds, not {self.claim_lease!r}"
            )
        if not isinstance(self.claim_wait, timedelta) or self.claim_wait < timedelta(0):
            raise ConfigurationError(f"claim_wait must be a duration >= 0, not {self.claim_wait!r}")
        check_shard(self.shard_index, self.shards)

    @property
    def max_workers(self) -> int:
        """Deprecated: :attr:`concurrency` (renamed in 0.2)."""
        warn_renamed("max_workers", "concurrency", where="CheckOptions")
        return self.concurrency


# ``CheckOptions(max_workers=...)`` still works until 0.3, with a DeprecationWarning.
CheckOptions.__init__ = renamed_keywords(max_workers="concurrency")(  # type: ignore[method-assign]
    CheckOptions.__init__
)


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
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
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
