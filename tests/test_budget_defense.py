"""A ``user_cost`` the server sends is evidence, never trusted to loosen a budget.

Issue: a ``user_cost`` of ``"-5"`` let ``--max-credits 2`` create 40 checks, and the summary said
``credits spent -200``. The server here is ``tests/hostile_server.py`` answering every POST with
the reference's 201 example and a lying cost.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from api_reference import CREATE_201
from hostile_server import HostileServer, Reply, Request

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.checks import CheckOptions, run_check
from numberyo_provider.checks.budget import Budget, Reservation, plausible_cost
from numberyo_provider.checks.ledger import Ledger, default_ledger_url

NUMBERS = [f"+32456{i:06d}" for i in range(40)]


def lying_api(cost: Any) -> tuple[HostileServer, Counter[str]]:
    ids = itertools.count(1000)
    posted: Counter[str] = Counter()

    def route(req: Request) -> Reply:
        if req.method == "POST" and req.path == "/api/checks":
            number = json.loads(req.body)["phone_number"]
            posted[number] += 1
            body = copy.deepcopy(CREATE_201)
            body["check"]["id"] = next(ids)
            if cost is None:
                del body["check"]["user_cost"]
            else:
                body["check"]["user_cost"] = cost
            body["results"]["results"][0].update(msisdn=number, number_requested=number)
            return Reply.json(body, status=201)
        return Reply.json({"message": "not here"}, status=404)

    return HostileServer(route), posted


@pytest.mark.parametrize("cost", ["-5", "0", "0.00", None, "1e9", "NaN", "Infinity"])
def test_a_lying_cost_never_loosens_max_credits(cost: Any, tmp_path: Path) -> None:
    server, posted = lying_api(cost)
    with server, NumberYoClient("t0ken", server.url) as client:
        run = run_check(
            client=client,
            options=CheckOptions(
                check_type="HLR",
                run_id="lie",
                max_credits=Decimal(2),
                concurrency=4,
                # An unreadable cost leaves outcomes unknown; reconciling them waits this long
                # (30 s by default) for nothing here: the server answers at once.
                reconcile_settle=timedelta(seconds=1),
            ),
            chunks=[NUMBERS],
            warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
            parquet_path=str(tmp_path / "landing"),
        )
    assert run.error is None
    assert sum(posted.values()) == 2, "2 credits at the 1.00 estimate buy two checks, not more"
    assert run.summary.stopped == "max_credits"
    if cost in ("NaN", "Infinity"):  # not a decimal at all: the answer is unreadable, so the
        assert run.summary.outcome_unknown == 2  # outcome stays unknown (maybe charged)
        return
    assert run.summary.created == 2
    assert run.summary.credits_spent == Decimal("2.00")


def test_a_lying_cost_in_the_ledger_teaches_nothing(tmp_path: Path) -> None:
    budget = Budget(max_credits=Decimal(3))
    budget.record_known("HLR", Decimal(-5))  # an earlier run stored what the server said
    assert budget.cost_of("HLR") is None
    first = budget.try_reserve("HLR")
    assert isinstance(first, Reservation) and first.amount == Decimal("1.00") and first.probe


@pytest.mark.parametrize(
    ("value", "believed"),
    [("1.00", Decimal("1.00")), ("0.05", Decimal("0.05")), ("-5", None), ("0", None),
     ("1001", None), ("abc", None), (None, None), (True, None), ("NaN", None)],
)  # fmt: skip
def test_plausible_cost(value: Any, believed: Decimal | None) -> None:
    assert plausible_cost(value) == believed


def test_credits_spent_counts_checks_found_by_reconciliation(
    numberyo_simulator: Any, tmp_path: Path
) -> None:
    """A request whose answer was lost (the run died) but that the server created was paid:
    the run that reconciles it reports those credits."""
    sim = numberyo_simulator.sim
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    book = Ledger(default_ledger_url(warehouse))
    from numberyo_provider.checks.ledger import request_id

    digits = [n[1:] for n in NUMBERS[:3]]
    book.mark_pending("died", "HLR", [(request_id("died", "HLR", d), d) for d in digits])
    for d in digits:  # the POSTs did reach the server before the process died
        sim.create_check(numberyo_simulator.token, d, "HLR")
    with NumberYoClient(numberyo_simulator.token, numberyo_simulator.url) as client:
        run = run_check(
            client=client,
            options=CheckOptions(check_type="HLR", run_id="died", reconcile_settle=timedelta(0)),
            chunks=[NUMBERS[:5]],
            warehouse=warehouse,
            parquet_path=str(tmp_path / "landing"),
            ledger=book,
        )
    book.close()
    assert run.summary.reconciled == 3 and run.summary.created == 2
    assert sorted(e.phone_number for e in sim.charges()) == [n[1:] for n in NUMBERS[3:5]]
    assert len(sim.truth()) == 5
    assert run.summary.credits_spent == Decimal("5.00")  # 3 reconciled + 2 created
