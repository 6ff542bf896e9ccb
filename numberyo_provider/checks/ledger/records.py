"""What the ledger holds, as values: request statuses, rows, claims and outcomes.

A request id is per run and number (:func:`request_id`): a rerun of the run finds the same row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from numberyo_provider.checks.ledger.owners import owner_is_dead

if TYPE_CHECKING:
    from sqlalchemy.engine import RowMapping

__all__ = [
    "CREATED",
    "DEFAULT_CLAIM_LEASE",
    "FAILED",
    "NOT_CHECKED",
    "PENDING",
    "STATUSES",
    "Claim",
    "ClaimResult",
    "LedgerRow",
    "Outcome",
    "claim_from_mapping",
    "new_rows",
    "request_id",
    "row_from_mapping",
    "utcnow",
]

PENDING = "pending"
CREATED = "created"
FAILED = "failed"
NOT_CHECKED = "not_checked"
STATUSES = (PENDING, CREATED, FAILED, NOT_CHECKED)
#: How long a claim holds without renewal. It must outlast the longest a POST can take from the
#: claim to its recorded answer (the owner renews every quarter of it while it runs).
DEFAULT_CLAIM_LEASE = timedelta(minutes=10)


def utcnow() -> datetime:
    return datetime.now(UTC)


def request_id(run_id: str, check_type: str, digits: str) -> str:
    """Stable id of one number's request in one run: a rerun of the run finds the same row."""
    key = f"{run_id}\x1f{check_type}\x1f{digits}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True)
class LedgerRow:
    request_id: str
    run_id: str
    phone_number: str
    check_type: str
    status: str
    check_id: int | None
    attempts: int
    error: str | None
    requested_at: datetime
    updated_at: datetime
    check_created_at: datetime | None
    user_cost: Decimal | None
    last_run_id: str


@dataclass(frozen=True)
class Claim:
    """Who holds a number: a row of ``_ledger_claims``."""

    check_type: str
    phone_number: str
    owner: str
    run_id: str
    request_id: str
    claimed_at: datetime
    lease_until: datetime

    def expired(self, now: datetime) -> bool:
        return self.lease_until <= now

    def abandoned(self, now: datetime) -> bool:
        """Its owner can no longer answer for it: the lease ran out or the owner died."""
        return self.expired(now) or owner_is_dead(self.owner)


@dataclass
class ClaimResult:
    """What :meth:`Ledger.claim` did with each ``(request_id, digits)`` it was given."""

    #: Claimed and committed ``pending``: send these, and only these.
    granted: list[tuple[str, str]] = field(default_factory=list)
    #: Another owner holds the number (its POST is in flight or its outcome is unknown).
    held: list[tuple[str, str, Claim]] = field(default_factory=list)
    #: A ``pending`` row of the number without a live claim: reconcile it before anyone sends.
    unresolved: list[tuple[str, str]] = field(default_factory=list)
    #: Created meanwhile (by another run, or fresher than the caller's horizon): not sent.
    created: list[tuple[str, str]] = field(default_factory=list)
    #: Those of ``created`` that this very run created (another attempt of it, e.g. a retry).
    created_by_run: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Outcome:
    """What became of one request; applied in batches by :meth:`Ledger.record`."""

    request_id: str
    status: str
    check_id: int | None = None
    error: str | None = None
    #: Added to ``attempts``: -1 when a number marked pending was, after all, never sent.
    attempts_delta: int = 0
    check_created_at: datetime | None = None
    user_cost: Decimal | None = None


def row_from_mapping(m: RowMapping) -> LedgerRow:
    """A :class:`LedgerRow` from a database row (a mapping of its columns)."""
    cost = m["user_cost"]
    return LedgerRow(
        request_id=m["request_id"],
        run_id=m["run_id"],
        phone_number=m["phone_number"],
        check_type=m["check_type"],
        status=m["status"],
        check_id=None if m["check_id"] is None else int(m["check_id"]),
        attempts=int(m["attempts"]),
        error=m["error"],
        requested_at=m["requested_at"],
        updated_at=m["updated_at"],
        check_created_at=m["check_created_at"],
        user_cost=None if cost is None else Decimal(cost),
        last_run_id=m["last_run_id"],
    )


def claim_from_mapping(m: RowMapping) -> Claim:
    """A :class:`Claim` from a database row (a mapping of its columns)."""
    return Claim(
        check_type=m["check_type"],
        phone_number=m["phone_number"],
        owner=m["owner"],
        run_id=m["run_id"],
        request_id=m["request_id"],
        claimed_at=m["claimed_at"],
        lease_until=m["lease_until"],
    )


def new_rows(
    run_id: str,
    check_type: str,
    numbers: Sequence[tuple[str, str]],
    status: str,
    attempts: int,
    error: str | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Ledger rows as first inserted for ``(request_id, digits)`` pairs (no check yet)."""
    return [
        {
            "request_id": rid,
            "run_id": run_id,
            "phone_number": digits,
            "check_type": check_type,
            "status": status,
            "check_id": None,
            "attempts": attempts,
            "error": error,
            "requested_at": now,
            "updated_at": now,
            "check_created_at": None,
            "user_cost": None,
            "last_run_id": run_id,
        }
        for rid, digits in numbers
    ]
