"""Per-run spending limits: ``max_checks`` and ``max_credits``, shared by the worker threads.

A check is *reserved* before its POST and *settled* after it, so checks in flight count against
the limits and N workers cannot overshoot them together. What a check costs is only known from the
API's answer (``check.user_cost``), so:

* a reservation holds the highest cost seen so far for the type (this run, or the ledger's newest
  created check of the type from earlier runs);
* before any cost of a type is known, the check is sent *alone* (other reservations of the type
  wait for its answer) and reserved at ``cost_estimate``. That first check is the only one whose
  cost is a guess: a run can overspend by at most its actual cost minus the estimate, plus, if
  costs later rise (another country), the difference on the checks in flight.

What the server says a check cost is evidence, not truth: a missing, zero, negative, non-finite
or absurd ``user_cost`` (over :data:`MAX_PLAUSIBLE_COST`) would loosen the budget, so it is never
used for it. The reservation (the estimate, or the highest plausible cost seen) is counted instead,
and a warning says so. The ledger and the warehouse keep the value as the server sent it.

When the limit would be passed while checks are in flight, :meth:`Budget.try_reserve` answers
:data:`WAIT` (one that fails gives its reservation back; :meth:`Budget.reserve` waits for them),
and ``None`` only when even an idle budget cannot afford one more check; :attr:`Budget.exhausted`
then says which limit it was.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from decimal import Decimal

from numberyo_provider.errors import ConfigurationError

__all__ = ["DEFAULT_COST_ESTIMATE", "MAX_PLAUSIBLE_COST", "WAIT", "Budget", "Reservation"]

log = logging.getLogger(__name__)

#: The API reference's example price of a check ("user_cost": "1.00").
DEFAULT_COST_ESTIMATE = Decimal("1.00")
_WAIT_SLICE_S = 0.2
#: No check costs more than this many credits (the reference's example costs 1.00): a higher
#: ``user_cost`` is taken for a server error, not a price.
MAX_PLAUSIBLE_COST = Decimal(1000)
#: :meth:`Budget.try_reserve`'s answer when the checks in flight decide.
WAIT = "wait"


@dataclass(frozen=True)
class Reservation:
    check_type: str
    amount: Decimal
    #: The first check of a type with an unknown cost: sent alone.
    probe: bool


def _decimal(name: str, value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a number, not {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except ArithmeticError:
        raise ConfigurationError(f"{name} must be a number, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigurationError(f"{name} must be a number >= 0, not {value!r}")
    return amount


def plausible_cost(cost: object) -> Decimal | None:
    """``cost`` when it can be a real price (a finite number, > 0, at most
    :data:`MAX_PLAUSIBLE_COST`), else None."""
    if isinstance(cost, bool) or cost is None:
        return None
    try:
        amount = cost if isinstance(cost, Decimal) else Decimal(str(cost).strip())
    except ArithmeticError:
        return None
    if not amount.is_finite() or amount <= 0 or amount > MAX_PLAUSIBLE_COST:
        return None
    return amount


class Budget:
    """Thread-safe limits for one run; either limit may be ``None`` (unlimited)."""

    def __init__(
        self,
        *,
        max_checks: int | None = None,
        max_credits: Decimal | float | int | str | None = None,
        cost_estimate: Decimal | float | int | str = DEFAULT_COST_ESTIMATE,
        known_costs: dict[str, Decimal] | None = None,
    ) -> None:
        if max_checks is not None and (
            isinstance(max_checks, bool) or not isinstance(max_checks, int) or max_checks < 0
        ):
            raise ConfigurationError(f"max_checks must be an integer >= 0, not {max_checks!r}")
        self.max_checks = max_checks
        self.max_credits = _decimal("max_credits", max_credits)
        estimate = _decimal("cost_estimate", cost_estimate)
        if estimate is None or estimate <= 0:
            raise ConfigurationError(f"cost_estimate must be a number > 0, not {cost_estimate!r}")
        self.cost_estimate = estimate
        self._costs: dict[str, Decimal] = dict(known_costs or {})
        self._cond = threading.Condition()
        self._in_flight = 0
        self._reserved = Decimal(0)
        self._probing: set[str] = set()
        #: Credits of checks created (their ``user_cost``, or the reserved amount when not told).
        self.spent = Decimal(0)
        #: Credits of checks whose outcome is unknown (they may have been charged).
        self.maybe_spent = Decimal(0)
        self.created = 0
        self.unknown = 0
        #: ``"max_checks"`` or ``"max_credits"`` once a reservation was refused.
        self.exhausted: str | None = None
        #: Created checks whose ``user_cost`` was not believed (the reservation was counted).
        self.distrusted = 0

    @property
    def limited(self) -> bool:
        return self.max_checks is not None or self.max_credits is not None

    def cost_of(self, check_type: str) -> Decimal | None:
        with self._cond:
            return self._costs.get(check_type)

    def describe(self) -> str:
        if self.exhausted == "max_checks":
            return f"max_checks ({self.max_checks}) reached"
        if self.exhausted == "max_credits":
            return f"max_credits ({self.max_credits}) reached: {self.spent} credits spent"
        return "budget not exhausted"

    def try_reserve(self, check_type: str) -> Reservation | str | None:
        """A reservation; ``None`` when the budget is spent; :data:`WAIT` when only the checks in
        flight can tell (they may give their reservation back, or teach the type's cost)."""
        with self._cond:
            return self._decide(check_type)

    def reserve(self, check_type: str, stop: threading.Event | None = None) -> Reservation | None:
        """Like :meth:`try_reserve`, waiting out :data:`WAIT`; ``None`` also once ``stop`` is set.

        Only call it when every outstanding reservation is in flight (or it may wait forever).
        """
        with self._cond:
            while True:
                if stop is not None and stop.is_set():
                    return None
                decided = self._decide(check_type)
                if decided is None or isinstance(decided, Reservation):
                    return decided
                self._cond.wait(_WAIT_SLICE_S)

    def _decide(self, check_type: str) -> Reservation | str | None:
        if self.exhausted is not None:
            return None
        known = self._costs.get(check_type)
        needs_probe = self.max_credits is not None and known is None
        if needs_probe and check_type in self._probing:
            return WAIT
        amount = known if known is not None else self.cost_estimate
        settled_checks = self.created + self.unknown
        if self.max_checks is not None and settled_checks + self._in_flight >= self.max_checks:
            if settled_checks >= self.max_checks:
                self.exhausted = "max_checks"
                self._cond.notify_all()
                return None
            return WAIT
        if self.max_credits is not None:
            committed = self.spent + self.maybe_spent
            if committed + self._reserved + amount > self.max_credits:
                if committed + amount > self.max_credits:
                    self.exhausted = "max_credits"
                    self._cond.notify_all()
                    return None
                return WAIT
        self._in_flight += 1
        self._reserved += amount
        if needs_probe:
            self._probing.add(check_type)
        return Reservation(check_type, amount, needs_probe)

    def settle(self, reservation: Reservation, outcome: str, cost: Decimal | None = None) -> None:
        """``outcome``: ``"created"`` (``cost`` = its ``user_cost``), ``"not_created"`` (nothing was
        charged: the reservation is given back) or ``"unknown"`` (maybe charged: counted)."""
        with self._cond:
            self._in_flight -= 1
            self._reserved -= reservation.amount
            self._probing.discard(reservation.check_type)
            if outcome == "created":
                self.created += 1
                believed = plausible_cost(cost)
                if believed is None:
                    self._distrust(reservation.check_type, cost, reservation.amount)
                    self.spent += reservation.amount
                else:
                    self.spent += believed
                    previous = self._costs.get(reservation.check_type)
                    self._costs[reservation.check_type] = (
                        believed if previous is None else max(previous, believed)
                    )
            elif outcome == "unknown":
                self.unknown += 1
                self.maybe_spent += reservation.amount
            elif outcome != "not_created":
                raise ValueError(f"unknown outcome {outcome!r}")
            self._cond.notify_all()

    def record_known(self, check_type: str, cost: Decimal | None) -> None:
        """A cost seen outside this run's POSTs (the ledger's last check) teaches the type's
        price; an implausible one teaches nothing."""
        believed = plausible_cost(cost)
        if believed is None:
            return
        with self._cond:
            previous = self._costs.get(check_type)
            self._costs[check_type] = believed if previous is None else max(previous, believed)
            self._cond.notify_all()

    def record_paid(self, check_type: str, cost: Decimal | None) -> None:
        """A check this run did not create but that was paid for (found by reconciliation): it
        counts in ``spent`` (and against ``max_credits``) at its believed cost or the estimate."""
        believed = plausible_cost(cost)
        with self._cond:
            if believed is None:
                amount = self._costs.get(check_type, self.cost_estimate)
                self._distrust(check_type, cost, amount)
            else:
                amount = believed
                previous = self._costs.get(check_type)
                self._costs[check_type] = believed if previous is None else max(previous, believed)
            self.spent += amount
            self._cond.notify_all()

    def _distrust(self, check_type: str, cost: object, counted: Decimal) -> None:
        self.distrusted += 1
        if self.distrusted <= 3:
            log.warning(
                "the API said a %s check cost %r credits, which cannot be a price; counting %s "
                "credits (the estimate) against the budget instead",
                check_type,
                None if cost is None else str(cost),
                counted,
            )

    def wake(self) -> None:
        """Wake a waiting :meth:`reserve` (after ``stop`` was set)."""
        with self._cond:
            self._cond.notify_all()
