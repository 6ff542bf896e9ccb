"""The request ledger on a real SQLite file: durable, guarded, batched, shared by processes."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from numberyo_provider import schema
from numberyo_provider.checks.ledger import (
    CREATED,
    FAILED,
    NOT_CHECKED,
    PENDING,
    Ledger,
    Outcome,
    default_ledger_url,
    request_id,
)
from numberyo_provider.errors import ConfigurationError

NUMBERS = ["32456789023", "32456789024", "32456789025"]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    book = Ledger(f"sqlite:///{tmp_path / 'wh.duckdb.ledger.sqlite'}")
    yield book
    book.close()


def _pending(book: Ledger, run_id: str, numbers: list[str], check_type: str = "HLR") -> list[str]:
    ids = [request_id(run_id, check_type, n) for n in numbers]
    book.mark_pending(run_id, check_type, list(zip(ids, numbers, strict=True)))
    return ids


def test_request_id_is_stable_and_distinct_per_run_type_and_number() -> None:
    a = request_id("run-1", "HLR", "32456789023")
    assert a == request_id("run-1", "HLR", "32456789023")
    others = {
        request_id("run-2", "HLR", "32456789023"),
        request_id("run-1", "Verify", "32456789023"),
        request_id("run-1", "HLR", "32456789024"),
    }
    assert a not in others and len(others) == 3


def test_default_ledger_url_sits_beside_duckdb_and_is_the_postgres_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_ledger_url("duckdb:///wh.duckdb") == (
        f"sqlite:///{tmp_path / 'wh.duckdb'}.ledger.sqlite"
    )
    assert default_ledger_url(f"duckdb:///{tmp_path}/x.duckdb") == (
        f"sqlite:///{tmp_path}/x.duckdb.ledger.sqlite"
    )
    pg = "postgresql+psycopg://u@h:5432/db"
    assert default_ledger_url(pg) == pg
    with pytest.raises(ConfigurationError, match="in-memory"):
        default_ledger_url("duckdb:///:memory:")
    with pytest.raises(ConfigurationError, match="pass ledger="):
        default_ledger_url("mysql://u:secret@h/db")


def test_unsupported_or_volatile_ledgers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SQLite and PostgreSQL") as info:
        Ledger("mysql+pymysql://user:hunter2@host/db")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigurationError, match="outlive the process"):
        Ledger("sqlite:///:memory:")
    with pytest.raises(ConfigurationError, match="SQLAlchemy URL"):
        Ledger("not a url at all")


def test_pending_is_committed_and_visible_to_another_connection(
    ledger: Ledger, tmp_path: Path
) -> None:
    ids = _pending(ledger, "r1", NUMBERS)
    other = Ledger(str(ledger.url), create=False)
    try:
        rows = other.rows(run_id="r1")
    finally:
        other.close()
    assert {r.request_id for r in rows} == set(ids)
    assert {r.status for r in rows} == {PENDING}
    assert all(r.attempts == 1 for r in rows)
    assert all(r.requested_at.tzinfo is UTC for r in rows)


def test_created_rows_are_never_overwritten(ledger: Ledger) -> None:
    rid, other = _pending(ledger, "r1", NUMBERS[:2])
    when = datetime(2025, 3, 30, 14, 10, 23, tzinfo=UTC)
    ledger.record(
        "r1",
        [
            Outcome(rid, CREATED, check_id=123, check_created_at=when, user_cost=Decimal("1.00")),
            Outcome(other, FAILED, error="422: invalid"),
        ],
    )
    # A (buggy) second send attempt and a late "not checked" must not touch the created row.
    ledger.mark_pending("r1", "HLR", [(rid, NUMBERS[0]), (other, NUMBERS[1])])
    ledger.mark_not_checked("r1", "HLR", [(rid, NUMBERS[0])], "budget")
    rows = {r.request_id: r for r in ledger.rows(run_id="r1")}
    assert rows[rid].status == CREATED
    assert rows[rid].check_id == 123
    assert rows[rid].attempts == 1
    assert rows[rid].check_created_at == when
    assert rows[rid].user_cost == Decimal("1.00")
    # The failed one was marked pending again: a second attempt.
    assert rows[other].status == PENDING
    assert rows[other].attempts == 2
    assert rows[other].error is None


def test_not_checked_never_downgrades_a_pending_row(ledger: Ledger) -> None:
    (rid,) = _pending(ledger, "r1", NUMBERS[:1])
    new = request_id("r1", "HLR", NUMBERS[1])
    ledger.mark_not_checked("r1", "HLR", [(rid, NUMBERS[0]), (new, NUMBERS[1])], "max_checks")
    rows = {r.request_id: r for r in ledger.rows(run_id="r1")}
    assert rows[rid].status == PENDING  # maybe sent: only reconciliation may resolve it
    assert rows[new].status == NOT_CHECKED
    assert rows[new].attempts == 0
    assert rows[new].error == "max_checks"


def test_unsent_outcome_gives_the_attempt_back(ledger: Ledger) -> None:
    (rid,) = _pending(ledger, "r1", NUMBERS[:1])
    ledger.record("r1", [Outcome(rid, NOT_CHECKED, error="stopped", attempts_delta=-1)])
    (row,) = ledger.rows(run_id="r1")
    assert (row.status, row.attempts, row.error) == (NOT_CHECKED, 0, "stopped")


def test_reads_for_freshness_costs_and_reconciliation(ledger: Ledger) -> None:
    ids = _pending(ledger, "old", NUMBERS)
    long_ago = datetime.now(UTC) - timedelta(days=90)
    recent = datetime.now(UTC) - timedelta(days=1)
    ledger.record(
        "old",
        [
            Outcome(
                ids[0], CREATED, check_id=1, check_created_at=long_ago, user_cost=Decimal("0.50")
            ),
            Outcome(
                ids[1], CREATED, check_id=2, check_created_at=recent, user_cost=Decimal("1.25")
            ),
        ],
    )
    since = datetime.now(UTC) - timedelta(days=30)
    assert list(ledger.iter_created_numbers("HLR", since)) == [NUMBERS[1]]
    assert list(ledger.iter_created_numbers("Verify", since)) == []
    assert ledger.known_check_ids(since) == {2}
    assert ledger.latest_cost("HLR") == Decimal("1.25")
    assert ledger.latest_cost("Verify") is None
    assert ledger.counts("old") == {CREATED: 2, PENDING: 1}


def test_export_has_the_warehouse_schema_and_rows_the_run_touched(ledger: Ledger) -> None:
    earlier = _pending(ledger, "run-a", NUMBERS[:1])
    mine = _pending(ledger, "run-b", NUMBERS[1:])
    # run-b reconciles run-a's pending request: that row must travel with run-b's load too.
    ledger.record("run-b", [Outcome(earlier[0], CREATED, check_id=7)])
    ledger.reject("run-b", [("not a number", "not a phone number"), ("", "empty")])
    ledger.reject("run-b", [("not a number", "not a phone number")])  # idempotent
    tables = list(ledger.iter_request_batches("run-b", batch_size=2))
    assert sum(t.num_rows for t in tables) == 3
    combined = pa.concat_tables(tables)
    assert combined.schema == schema.CHECK_REQUESTS.schema
    assert set(combined.column("request_id").to_pylist()) == {*earlier, *mine}
    rejected = pa.concat_tables(list(ledger.iter_rejected_batches("run-b")))
    assert rejected.schema == schema.REJECTED_NUMBERS.schema
    assert sorted(rejected.column("raw_value").to_pylist()) == ["", "not a number"]
    assert list(ledger.iter_rejected_batches("run-a")) == []


def _writer(url: str, run_id: str, start: int) -> None:
    book = Ledger(url)
    try:
        for batch in range(20):
            numbers = [f"3245{start + batch * 25 + i:07d}" for i in range(25)]
            book.mark_pending(run_id, "HLR", [(request_id(run_id, "HLR", n), n) for n in numbers])
            book.record(
                run_id,
                [Outcome(request_id(run_id, "HLR", n), CREATED, check_id=int(n)) for n in numbers],
            )
    finally:
        book.close()


@pytest.mark.slow
def test_parallel_shard_processes_share_one_sqlite_ledger(ledger: Ledger) -> None:
    """Shard tasks write the same file at once: WAL + BEGIN IMMEDIATE + busy_timeout queue them."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(ledger.url), "run", i * 1000)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert ledger.counts("run") == {CREATED: 1500}
