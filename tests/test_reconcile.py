"""Reconciliation of "maybe sent" requests against the simulator's real history (free GETs only)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.api.models import CheckResults
from numberyo_provider.checks.ledger import Ledger, LedgerRow, request_id
from numberyo_provider.checks.reconcile import number_of, reconcile, wait_until_settled

A, B = "32456789023", "32471234567"
SKEW = timedelta(seconds=5)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    book = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield book
    book.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


def _pending(book: Ledger, run_id: str, numbers: list[str], check_type: str = "HLR") -> None:
    book.mark_pending(run_id, check_type, [(request_id(run_id, check_type, n), n) for n in numbers])


def _rows(book: Ledger) -> list[LedgerRow]:
    return book.rows(status="pending")


def _posts(server) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for e in server.sim.requests() if e.method == "POST")


def test_a_check_the_server_created_is_found_and_an_absent_one_is_not(
    numberyo_simulator, ledger: Ledger, pool: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator
    _pending(ledger, "r1", [A, B])
    # The POST for A reached the server, its answer never came back to us.
    created = server.sim.create_check(server.token, A, "HLR")
    with NumberYoClient(server.token, server.url) as client:
        report = reconcile(client, _rows(ledger), executor=pool, skew=SKEW)
    assert [(f.row.phone_number, f.check.id) for f in report.found] == [(A, created["check"]["id"])]
    assert number_of(report.found[0].results) == A
    assert [r.phone_number for r in report.not_found] == [B]
    assert _posts(server) == 0  # reconciliation never sends a paid request


def test_type_must_match_and_attributed_checks_are_not_claimed_again(
    numberyo_simulator, ledger: Ledger, pool: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator
    _pending(ledger, "r1", [A, B])
    server.sim.create_check(server.token, A, "Verify")  # same number, other type
    known = server.sim.create_check(server.token, B, "HLR")["check"]["id"]
    with NumberYoClient(server.token, server.url) as client:
        report = reconcile(client, _rows(ledger), executor=pool, skew=SKEW, known_check_ids={known})
    assert report.found == []
    assert {r.phone_number for r in report.not_found} == {A, B}


def test_one_check_settles_one_request_the_newest(
    numberyo_simulator, ledger: Ledger, pool: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator
    _pending(ledger, "older-run", [A])
    _pending(ledger, "newer-run", [A])
    server.sim.create_check(server.token, A, "HLR")
    with NumberYoClient(server.token, server.url) as client:
        report = reconcile(client, _rows(ledger), executor=pool, skew=SKEW)
    assert [f.row.run_id for f in report.found] == ["newer-run"]
    assert [r.run_id for r in report.not_found] == ["older-run"]


def test_checks_older_than_the_request_do_not_count_and_paging_stops_at_the_window(
    numberyo_simulator_factory, ledger: Ledger, pool: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=400)
    # A number checked weeks ago (seeded history) is pending now: that old check is not ours.
    old = next(
        t for t in server.sim.truth() if t["check"]["type"] == "HLR" and t["results"] is not None
    )
    old_number = old["results"]["results"][0]["number_requested"]
    _pending(ledger, "r1", [old_number])
    with NumberYoClient(server.token, server.url) as client:
        report = reconcile(client, _rows(ledger), executor=pool, skew=SKEW)
    assert report.found == []
    assert [r.phone_number for r in report.not_found] == [old_number]
    # Only the page(s) reaching back to the window were read, not 40 pages of history.
    pages = [e for e in server.sim.requests() if e.endpoint == "list"]
    assert 1 <= len(pages) <= 3
    assert report.results_fetched == 0


def test_paging_stops_once_every_request_is_found(
    numberyo_simulator_factory, ledger: Ledger, pool: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=50)
    _pending(ledger, "r1", [A])
    server.sim.create_check(server.token, A, "HLR")
    with NumberYoClient(server.token, server.url) as client:
        report = reconcile(
            client, _rows(ledger), executor=pool, skew=timedelta(days=60)
        )  # a window covering all history: only the early stop keeps it short
    assert [f.row.phone_number for f in report.found] == [A]
    assert len([e for e in server.sim.requests() if e.endpoint == "list"]) == 1


def test_number_of_reads_verify_results_too() -> None:
    verify = CheckResults.from_api(
        {"type": "Verify", "results": [{"e164_format": "+32 456 78 90 23", "valid_number": True}]}
    )
    assert number_of(verify) == A
    requested = CheckResults.from_api(
        {"type": "Verify", "results": [{"e164_format": "+1", "number_requested": "32471234567"}]}
    )
    assert number_of(requested) == B
    assert number_of(CheckResults.from_api({"type": "HLR", "results": []})) is None


def test_wait_until_settled_waits_for_the_newest_request(ledger: Ledger) -> None:
    _pending(ledger, "r1", [A, B])
    rows = _rows(ledger)
    newest = max(r.updated_at for r in rows)
    slept: list[float] = []
    wait_until_settled(
        rows, timedelta(seconds=30), now=lambda: newest + timedelta(seconds=10), sleep=slept.append
    )
    assert slept == [pytest.approx(20.0)]
    slept.clear()
    wait_until_settled(
        rows, timedelta(seconds=30), now=lambda: newest + timedelta(seconds=31), sleep=slept.append
    )
    assert slept == []
