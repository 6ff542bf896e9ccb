"""The check run against the simulator over real HTTP; its charge log is the witness.

Every test asserts on what the server charged, not on what our code believes it did.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.checks import Checker, CheckOptions, CheckRunError
from numberyo_provider.checks.ledger import CREATED, NOT_CHECKED, PENDING, Ledger
from numberyo_provider.checks.source import SourceSpec, iter_source_values
from numberyo_provider.errors import AuthenticationError
from numberyo_provider.sync.land import ParquetLander

FAST = {"reconcile_settle": timedelta(seconds=0.2), "reconcile_skew": timedelta(seconds=5)}


def numbers(n: int, start: int = 0) -> list[str]:
    """Valid Belgian mobile numbers in E.164 digits."""
    return [f"32456{start + i:06d}" for i in range(n)]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    book = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield book
    book.close()


class Run:
    """One checker wired to a server, a ledger and a real Parquet lander."""

    def __init__(self, server: Any, ledger: Ledger, root: Path, **kwargs: Any) -> None:
        self.server = server
        client_opts = kwargs.pop("client", {})
        token = kwargs.pop("token", server.token)
        self.client = NumberYoClient(token, server.url, pool_size=8, **client_opts)
        self.lander = ParquetLander(str(root), f"t-{os.urandom(3).hex()}")
        options = {"check_type": "HLR", "run_id": "run-1", **FAST, **kwargs.pop("options", {})}
        self.checker = Checker(
            self.client,
            ledger,
            CheckOptions(**options),
            sink=self.lander,
            load_id="check-test",
            **kwargs,
        )

    def __call__(self, values: list[object]) -> Any:
        try:
            return self.checker.run([values[i : i + 7] for i in range(0, len(values), 7)])
        finally:
            self.client.close()

    def landed_check_ids(self) -> set[int]:
        ids: set[int] = set()
        for f in self.lander.flush():
            if f.table == "checks":
                ids.update(pq.read_table(f.path, columns=["check_id"])["check_id"].to_pylist())
        return ids


def charges_per_number(server: Any) -> Counter[str]:
    return Counter(e.phone_number for e in server.sim.charges())


def posted(server: Any) -> list[str]:
    return [e.phone_number for e in server.sim.requests() if e.method == "POST"]


def test_invalid_and_duplicate_values_never_reach_the_api(
    numberyo_simulator: Any, ledger: Ledger, tmp_path: Path
) -> None:
    valid = numbers(6)
    values: list[object] = [
        *valid,
        "0456 00 00 01",  # national form of valid[1] (region BE)
        "+32 456 00 00 02",  # international form of valid[2]
        32456000003,  # an integer column
        "not a number",
        "",
        None,
        "123",
        "+32 12",
    ]
    summary = Run(numberyo_simulator, ledger, tmp_path, options={"default_region": "BE"})(values)
    assert sorted(posted(numberyo_simulator)) == sorted(valid)
    assert charges_per_number(numberyo_simulator) == Counter(valid)
    assert (summary.read, summary.invalid, summary.duplicates, summary.created) == (14, 5, 3, 6)
    rejected = {
        r[0]: r[1]
        for t in ledger.iter_rejected_batches("run-1")
        for r in zip(t["raw_value"].to_pylist(), t["reason"].to_pylist(), strict=True)
    }
    assert set(rejected) == {"not a number", "", "123", "+32 12"}  # None and "" share a key
    assert all(reason for reason in rejected.values())
    assert ledger.counts("run-1") == {CREATED: 6}


def test_fresh_numbers_are_skipped_and_force_checks_them_again(
    numberyo_simulator: Any, ledger: Ledger, tmp_path: Path
) -> None:
    batch = numbers(5)
    first = Run(numberyo_simulator, ledger, tmp_path)(batch)
    assert first.created == 5
    # Another run within max_age: the ledger's created rows make them fresh; the warehouse's
    # numbers (fresh_numbers) count too.
    extra = numbers(2, start=100)
    second = Run(
        numberyo_simulator, ledger, tmp_path, options={"run_id": "run-2"}, fresh_numbers=extra
    )(batch + extra)
    assert (second.fresh_skipped, second.created) == (7, 0)
    assert len(posted(numberyo_simulator)) == 5
    # max_age 0: nothing is fresh any more.
    third = Run(numberyo_simulator, ledger, tmp_path, options={"run_id": "run-3", "force": True})(
        batch
    )
    assert third.created == 5
    assert charges_per_number(numberyo_simulator) == Counter(batch * 2)


def test_credits_run_out_mid_run_exactly(
    numberyo_simulator_factory: Any, ledger: Ledger, tmp_path: Path
) -> None:
    server = numberyo_simulator_factory(credits=12, costs={"HLR": "1.00"}, latency_ms=5)
    batch = numbers(40)
    summary = Run(server, ledger, tmp_path, options={"concurrency": 8})(batch)
    charged = charges_per_number(server)
    assert len(charged) == 12 and set(charged.values()) == {1}
    assert server.sim.credits() == 0
    assert summary.stopped == "insufficient_credits"
    assert "enough credits" in (summary.stop_message or "")
    assert (summary.created, summary.not_checked) == (12, 28)
    assert summary.credits_spent == Decimal("12.00")
    assert ledger.counts("run-1") == {CREATED: 12, NOT_CHECKED: 28}
    created = {r.phone_number for r in ledger.rows(run_id="run-1", status=CREATED)}
    assert created == set(charged)


def test_max_checks_and_max_credits_stop_cleanly(
    numberyo_simulator_factory: Any, ledger: Ledger, tmp_path: Path
) -> None:
    server = numberyo_simulator_factory(credits=100, costs={"Verify": "0.50"})
    summary = Run(server, ledger, tmp_path, options={"max_checks": 5})(numbers(20))
    assert len(server.sim.charges()) == 5
    assert (summary.stopped, summary.created, summary.not_checked) == ("max_checks", 5, 15)
    assert "max_checks (5)" in (summary.stop_message or "")

    # Verify at 0.50: 2.20 credits buy four checks, not five (the first is a probe at 1.00).
    verify = Run(
        server,
        ledger,
        tmp_path,
        options={"check_type": "Verify", "run_id": "v", "max_credits": Decimal("2.20")},
    )(numbers(20, start=500))
    assert (verify.created, verify.credits_spent, verify.stopped) == (
        4,
        Decimal("2.00"),
        "max_credits",
    )
    assert len([e for e in server.sim.charges() if e.check_type == "Verify"]) == 4

    # A budget below the first check's estimate sends nothing at all.
    none = Run(
        server,
        Ledger(f"sqlite:///{tmp_path / 'other.sqlite'}"),
        tmp_path,
        options={"run_id": "n", "max_credits": Decimal("0.40")},
    )(numbers(3, start=900))
    assert (none.created, none.not_checked) == (0, 3)
    assert len(server.sim.charges()) == 9


def test_read_timeout_after_the_charge_is_reconciled_not_resent(
    numberyo_simulator: Any, ledger: Ledger, tmp_path: Path
) -> None:
    server = numberyo_simulator
    server.sim.charge_delay_s = 1.5  # charged, then the answer comes after our read timeout
    batch = numbers(3)
    run = Run(server, ledger, tmp_path, client={"timeout": (5.0, 0.5)})
    summary = run(batch)
    assert charges_per_number(server) == Counter(batch)
    assert len(posted(server)) == 3  # never resent
    assert (summary.created, summary.reconciled, summary.outcome_unknown) == (0, 3, 0)
    rows = ledger.rows(run_id="run-1")
    assert {r.status for r in rows} == {CREATED}
    assert {r.check_id for r in rows} == {e.check_id for e in server.sim.charges()}
    # The found checks' results are landed too.
    assert run.landed_check_ids() == {e.check_id for e in server.sim.charges()}


def test_a_500_that_may_follow_a_charge_is_not_resent_in_the_run_and_resolved_later(
    numberyo_simulator: Any, ledger: Ledger, tmp_path: Path
) -> None:
    server = numberyo_simulator
    server.sim.fail_next(2, 500, endpoint="create")  # the simulator charged nothing for these
    batch = numbers(6)
    first = Run(server, ledger, tmp_path, options={"concurrency": 1})(batch)
    assert len(posted(server)) == 6  # the two 500s were not retried
    assert (first.created, first.not_checked) == (4, 2)  # reconciled: not on the server
    again = Run(server, ledger, tmp_path, options={"concurrency": 1})(batch)
    assert (again.already_created, again.created) == (4, 2)
    assert charges_per_number(server) == Counter(batch)


def test_a_retry_of_the_run_resumes_without_paying_twice(
    numberyo_simulator_factory: Any, ledger: Ledger, tmp_path: Path
) -> None:
    server = numberyo_simulator_factory(credits=7, costs={"HLR": "1.00"})
    batch = numbers(20)
    assert Run(server, ledger, tmp_path)(batch).created == 7
    server.sim.set_credits(100)
    second = Run(server, ledger, tmp_path)(batch)
    assert (second.already_created, second.created, second.stopped) == (7, 13, None)
    assert charges_per_number(server) == Counter(batch)
    assert ledger.counts("run-1") == {CREATED: 20}


def test_shards_split_the_numbers_without_overlap(
    numberyo_simulator: Any, ledger: Ledger, tmp_path: Path
) -> None:
    batch = numbers(30)
    parts = [
        Run(numberyo_simulator, ledger, tmp_path, options={"shards": 3, "shard_index": i})(
            [*batch, "garbage"]
        )
        for i in range(3)
    ]
    assert charges_per_number(numberyo_simulator) == Counter(batch)
    assert sum(p.created for p in parts) == 30
    assert [p.invalid for p in parts] == [1, 0, 0]  # counted (and recorded) once
    assert all(p.other_shards == 30 - p.created for p in parts)


def test_stop_sends_nothing_new_and_leaves_the_ledger_exact(
    numberyo_simulator_factory: Any, ledger: Ledger, tmp_path: Path
) -> None:
    server = numberyo_simulator_factory(latency_ms=20)
    done: list[str] = []
    holder: dict[str, Checker] = {}

    def after_post(digits: str, kind: str) -> None:
        done.append(digits)
        if len(done) == 10:
            holder["c"].stop("test stop")

    run = Run(server, ledger, tmp_path, on_result=after_post)
    holder["c"] = run.checker
    summary = run(numbers(200))
    charged = charges_per_number(server)
    assert summary.stopped == "interrupted"
    assert 10 <= len(charged) < 60  # the ones in flight finished; nothing new went out
    assert set(charged.values()) == {1}
    assert {r.phone_number for r in ledger.rows(status=CREATED)} == set(charged)
    assert ledger.rows(status=PENDING) == []


def test_a_bad_token_stops_at_once_and_charges_nothing(
    numberyo_simulator: Any, ledger: Ledger, tmp_path: Path
) -> None:
    run = Run(numberyo_simulator, ledger, tmp_path, token="wrong-token-123")
    with pytest.raises(AuthenticationError) as info:
        run(numbers(50))
    assert "wrong-token-123" not in str(info.value)
    assert numberyo_simulator.sim.charges() == []
    assert ledger.rows(status=PENDING) == []
    assert len(posted(numberyo_simulator)) <= 32  # one dispatch window at most


def test_repeated_failures_stop_the_run(
    numberyo_simulator: Any, ledger: Ledger, tmp_path: Path
) -> None:
    numberyo_simulator.sim.fail_next(100, 500, endpoint="create")
    run = Run(
        numberyo_simulator,
        ledger,
        tmp_path,
        options={"concurrency": 2, "max_consecutive_errors": 5},
    )
    with pytest.raises(CheckRunError, match="5 POSTs in a row"):
        run(numbers(50))
    assert len(posted(numberyo_simulator)) < 15


_CHILD = textwrap.dedent(
    """
    import os, sys
    from datetime import timedelta
    from numberyo_provider.checks import Checker, CheckOptions
    from numberyo_provider.api.client import NumberYoClient
    from numberyo_provider.sync.land import ParquetLander
    from numberyo_provider.checks.ledger import Ledger

    url, token, ledger_url, root, kill_after = sys.argv[1:6]
    seen = []

    def after_post(digits, kind):
        seen.append(digits)
        if len(seen) >= int(kill_after):
            os._exit(9)  # a hard kill: no cleanup, no flush, in-flight POSTs cut

    numbers = [f"32456{i:06d}" for i in range(60)]
    Checker(
        NumberYoClient(token, url, pool_size=8),
        Ledger(ledger_url),
        CheckOptions(check_type="HLR", run_id="killed", concurrency=8),
        sink=ParquetLander(root, "child"),
        load_id="check-test",
        on_result=after_post,
    ).run([numbers[i:i + 10] for i in range(0, 60, 10)])
    """
)


@pytest.mark.slow
def test_a_hard_killed_run_reruns_without_charging_any_number_twice(
    numberyo_simulator_factory: Any, ledger: Ledger, tmp_path: Path
) -> None:
    server = numberyo_simulator_factory(latency_ms=30)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            server.url,
            server.token,
            str(ledger.url),
            str(tmp_path / "child"),
            "12",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 9, child.stderr
    killed = charges_per_number(server)
    assert 12 <= len(killed) < 60
    pending = ledger.rows(run_id="killed", status=PENDING)
    assert pending  # requests in flight at the kill, and answers never recorded
    rerun = Run(server, ledger, tmp_path, options={"run_id": "killed"})(numbers(60))
    charged = charges_per_number(server)
    assert charged == Counter(numbers(60))  # every number checked, each charged once
    assert rerun.reconciled + rerun.already_created + rerun.created == 60
    assert ledger.counts("killed") == {CREATED: 60}


@pytest.mark.slow
def test_a_100k_row_source_streams_with_bounded_memory(
    numberyo_simulator: Any, tmp_path: Path, ledger: Ledger
) -> None:
    """100,000 rows, 1,000 distinct numbers (every 50th value is junk).

    Memory: a dry run (hygiene only) traced with tracemalloc: the peak over 100,000 rows is the
    peak over 10,000 (chunks stream; only the distinct numbers are remembered). POSTing 100,000
    distinct numbers would take ~8 minutes here (~200 checks/s, see bench/bench_check.py), so the
    full paid path runs over the same 100,000 rows with their 1,000 distinct numbers.
    """
    db = tmp_path / "contacts.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "CREATE TABLE contacts AS SELECT CASE WHEN i % 50 = 0 THEN 'n/a' "
            "ELSE '+32 456 ' || lpad(CAST(i % 1000 AS VARCHAR), 6, '0') END AS phone "
            "FROM range(100000) t(i)"
        )

    def spec(rows: int) -> SourceSpec:
        return SourceSpec(url=f"duckdb:///{db}", sql=f"SELECT phone FROM contacts LIMIT {rows}")

    def dry_run(rows: int) -> tuple[Any, int]:
        checker = Checker(
            NumberYoClient("unused-token", "http://127.0.0.1:9"),
            ledger,
            CheckOptions(check_type="HLR", run_id=f"dry-{rows}", dry_run=True),
            sink=ParquetLander(str(tmp_path / "dry"), "dry"),
            load_id="check-dry",
        )
        tracemalloc.start()
        try:
            summary = checker.run(iter_source_values(spec(rows), chunk_size=5_000))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return summary, peak

    small, small_peak = dry_run(10_000)
    big, big_peak = dry_run(100_000)
    assert (big.read, big.invalid, big.would_send) == (100_000, 2_000, 980)
    assert big.duplicates == 100_000 - 2_000 - 980
    assert small.would_send == 980
    assert big_peak < 2 * small_peak + 1_000_000  # flat in the number of rows
    assert big_peak < 16_000_000
    assert ledger.rows() == []  # a dry run writes nothing

    paid = Run(numberyo_simulator, ledger, tmp_path, options={"concurrency": 16})
    summary = paid.checker.run(iter_source_values(spec(100_000), chunk_size=5_000))
    paid.client.close()
    assert (summary.read, summary.created, summary.duplicates) == (100_000, 980, 97_020)
    assert len(numberyo_simulator.sim.charges()) == 980
    assert set(charges_per_number(numberyo_simulator).values()) == {1}


# --- loading a run: commit_check_run and the warehouse's upserts ----------------------------------


def _count(wh_url: str, table: str) -> int:
    from numberyo_provider.warehouse import connect_warehouse

    with connect_warehouse(wh_url) as wh:
        return int(wh.query(f"SELECT count(*) FROM {wh.qualified(table)}")[0][0])


def test_a_load_fetches_results_no_file_holds_and_is_idempotent(
    numberyo_simulator: Any, ledger: Ledger, tmp_path: Path
) -> None:
    """A shard killed before landing: its created checks are in the ledger only."""
    from datetime import datetime

    from numberyo_provider.checks import commit_check_run

    run = Run(numberyo_simulator, ledger, tmp_path / "landing")
    batch = numbers(10)
    assert run([*batch, "junk"]).created == 10
    files = run.lander.flush()
    for f in files:  # the files never reached the load task
        Path(f.path).unlink()
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    with NumberYoClient(numberyo_simulator.token, numberyo_simulator.url) as client:
        args = {
            "warehouse": wh,
            "ledger": ledger,
            "run_id": "run-1",
            "started_at": datetime.now(UTC),
            "client": client,
            "parquet_path": str(tmp_path / "landing"),
        }
        report = commit_check_run(files=files, **args)
        assert report.repaired == 10
        gets = len([e for e in numberyo_simulator.sim.requests() if e.endpoint == "results"])
        assert gets == 10
        again = commit_check_run(files=[], **args)  # a retried load task: nothing to fetch
    assert again.repaired == 0
    assert len([e for e in numberyo_simulator.sim.requests() if e.endpoint == "results"]) == 10
    assert numberyo_simulator.sim.charges() and len(numberyo_simulator.sim.charges()) == 10
    assert (_count(wh, "checks"), _count(wh, "hlr_results")) == (10, 10)
    assert (_count(wh, "check_requests"), _count(wh, "rejected_numbers")) == (10, 1)
    from numberyo_provider.warehouse import connect_warehouse

    with connect_warehouse(wh) as w:
        rows = w.query(
            f"SELECT phone_number, user_cost, source FROM {w.qualified('checks')} ORDER BY 1"
        )
    assert [r[0] for r in rows] == sorted(batch)
    assert {r[1] for r in rows} == {Decimal("1.0000")}  # the cost the POST reported, kept


@pytest.mark.parametrize("backend", ["duckdb", "sqlite", "postgres"])
def test_warehouse_upserts_replace_rows_by_key(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    from datetime import datetime

    import pyarrow as pa

    from numberyo_provider import schema
    from numberyo_provider.warehouse import LoadCommit, LoadError, connect_warehouse

    url = {
        "duckdb": f"duckdb:///{tmp_path / 'wh.duckdb'}",
        "sqlite": f"sqlite:///{tmp_path / 'wh.sqlite'}",
    }.get(backend) or request.getfixturevalue("postgres_url")  # COPY-staged on PostgreSQL
    now = datetime(2025, 3, 30, 14, 10, 23, tzinfo=UTC)

    def requests(*rows: tuple[str, str, int]) -> pa.Table:
        return pa.Table.from_pylist(
            [
                {
                    "request_id": rid, "run_id": "r", "phone_number": "32456789023",
                    "check_type": "HLR", "status": status, "check_id": None, "attempts": attempts,
                    "error": None, "requested_at": now, "updated_at": now,
                }
                for rid, status, attempts in rows
            ],
            schema=schema.CHECK_REQUESTS.schema,
        )  # fmt: skip

    def commit(wh: Any, load_id: str, upserts: dict[str, Any]) -> Any:
        return wh.commit_load(LoadCommit(load_id, "check", now, [], None, [], upserts=upserts))

    with connect_warehouse(url) as wh:
        wh.ensure_schema()
        first = commit(wh, "check-a", {"check_requests": iter([requests(("a", "pending", 1))])})
        assert first.rows["check_requests"] == 1
        # Later batches and later rows of one batch win; the key stays unique.
        commit(
            wh,
            "check-b",
            {
                "check_requests": [
                    requests(("a", "failed", 1), ("b", "created", 1)),
                    requests(("a", "created", 2), ("a", "not_checked", 3)),
                ]
            },
        )
        got = wh.query(
            f"SELECT request_id, status, attempts FROM {wh.qualified('check_requests')} "
            "ORDER BY request_id"
        )
        assert [tuple(r) for r in got] == [("a", "not_checked", 3), ("b", "created", 1)]
        with pytest.raises(LoadError, match="cannot upsert rows into 'checks'"):
            commit(wh, "check-c", {"checks": [requests(("c", "created", 1))]})
        bad = requests(("d", "created", 1)).drop_columns(["run_id"])
        with pytest.raises(LoadError, match="run_id"):
            commit(wh, "check-d", {"check_requests": [bad]})
        # Nothing of the failed loads is visible.
        count = wh.query(f"SELECT count(*) FROM {wh.qualified('check_requests')}")
        assert count[0][0] == 2


@pytest.mark.parametrize("mode", ["hmac", "mask"])
def test_privacy_applies_to_the_ledger_copy_and_freshness_still_works(
    numberyo_simulator: Any, tmp_path: Path, mode: str
) -> None:
    from numberyo_provider.checks import run_check
    from numberyo_provider.privacy import PrivacyPolicy
    from numberyo_provider.warehouse import connect_warehouse

    policy = PrivacyPolicy(mode=mode, secret="0123456789abcdef0123456789abcdef")  # type: ignore[arg-type]
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    batch = numbers(6)

    def run(run_id: str, ledger_file: str) -> Any:
        with NumberYoClient(numberyo_simulator.token, numberyo_simulator.url) as client:
            return run_check(
                client=client,
                options=CheckOptions(check_type="HLR", run_id=run_id, **FAST),
                chunks=[[*batch, "bad value 12"]],
                warehouse=wh,
                parquet_path=str(tmp_path / "landing"),
                ledger=f"sqlite:///{tmp_path / ledger_file}",
                privacy=policy,
            ).summary

    assert run("p-1", "a.sqlite").created == 6
    with connect_warehouse(wh) as w:
        stored = [
            r[0]
            for t in ("checks", "check_requests")
            for r in w.query(f"SELECT phone_number FROM {w.qualified(t)}")
        ]
        raw = w.query(f"SELECT raw_value FROM {w.qualified('rejected_numbers')}")[0][0]
    assert len(stored) == 12 and not set(stored) & set(batch)  # no clear number in the warehouse
    assert raw != "bad value 12"
    # Another run sharing the ledger: fresh (the ledger keeps clear digits).
    assert run("p-2", "a.sqlite").fresh_skipped == 6
    # Another run with a new ledger: only the warehouse can tell. hmac pseudonyms compare;
    # masked numbers cannot, so they are checked again (documented).
    again = run("p-3", "b.sqlite")
    if mode == "hmac":
        assert (again.fresh_skipped, again.created) == (6, 0)
    else:
        assert (again.fresh_skipped, again.created) == (0, 6)


def test_a_load_finds_the_run_s_files_nobody_passed_on(
    numberyo_simulator: Any, ledger: Ledger, tmp_path: Path
) -> None:
    """A shard task's retry cleared the first try's XCom: its files are found by name."""
    from datetime import datetime

    from numberyo_provider.checks import check_load_id, commit_check_run, discover_landed_files

    root = tmp_path / "landing"
    run = Run(numberyo_simulator, ledger, root)
    run.lander = ParquetLander(str(root), f"{check_load_id('run-1')}-s0of1-try1")
    run.checker.sink = run.lander
    assert run(numbers(8)).created == 8
    landed = run.lander.flush()
    found = discover_landed_files(str(root), check_load_id("run-1"))
    assert sorted(found, key=lambda f: f.path) == sorted(landed, key=lambda f: f.path)
    assert discover_landed_files(str(root), check_load_id("another-run")) == []
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    with NumberYoClient(numberyo_simulator.token, numberyo_simulator.url) as client:
        report = commit_check_run(
            warehouse=wh,
            ledger=ledger,
            run_id="run-1",
            files=[],
            started_at=datetime.now(UTC),
            client=client,
            parquet_path=str(root),
        )
    assert report.repaired == 0
    assert [e for e in numberyo_simulator.sim.requests() if e.endpoint == "results"] == []
    assert (_count(wh, "checks"), _count(wh, "hlr_results")) == (8, 8)


# --- large sources on the default settings (issue 9) ---------------------------------------------


def _distinct_contacts(path: Path, rows: int) -> SourceSpec:
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE contacts AS SELECT '+32 456 ' || lpad(CAST(i AS VARCHAR), 6, '0') AS "
            f"phone FROM range({rows}) t(i)"
        )
    return SourceSpec(url=f"duckdb:///{path}", table="contacts", column="phone")


@pytest.mark.slow
def test_a_200k_row_source_with_a_budget_of_5_loads_every_ledger_row(
    numberyo_simulator: Any, tmp_path: Path
) -> None:
    """Issue 9: five checks paid, the rest recorded ``not_checked``, all of it loaded in one
    transaction. At memory_limit=32MB the old keyed upsert ran out of memory at 200,000 rows
    (at the default 64MB, at about 600,000) and nothing was loaded."""
    import json

    from numberyo_provider.checks import run_check
    from numberyo_provider.checks.ledger import default_ledger_url

    rows = 200_000
    spec = _distinct_contacts(tmp_path / "contacts.duckdb", rows)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}?memory_limit=32MB"
    with NumberYoClient(numberyo_simulator.token, numberyo_simulator.url) as client:
        run = run_check(
            client=client,
            options=CheckOptions(check_type="HLR", run_id="big", max_checks=5, **FAST),
            chunks=iter_source_values(spec),
            warehouse=wh,
            parquet_path=str(tmp_path / "landing"),
        )
    assert run.error is None
    assert (run.summary.read, run.summary.created, run.summary.not_checked) == (rows, 5, rows - 5)
    assert len(numberyo_simulator.sim.charges()) == 5
    assert run.load is not None and run.load.rows["check_requests"] == rows
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        by_status = con.execute(
            "SELECT status, count(*), count(DISTINCT request_id) FROM numberyo.check_requests "
            "GROUP BY status ORDER BY status"
        ).fetchall()
        loads = con.execute("SELECT status, rows FROM numberyo._loads").fetchall()
        checks = con.execute("SELECT count(*) FROM numberyo.checks").fetchone()
    assert by_status == [("created", 5, 5), ("not_checked", rows - 5, rows - 5)]
    assert checks == (5,)
    assert [(s, json.loads(r)["check_requests"]) for s, r in loads] == [("committed", rows)]
    with Ledger(default_ledger_url(wh)) as book:  # the warehouse copy is the ledger, exactly
        assert book.counts("big") == {CREATED: 5, NOT_CHECKED: rows - 5}


@pytest.mark.slow
def test_a_load_that_runs_out_of_memory_says_so_and_a_rerun_loads_without_paying(
    numberyo_simulator: Any, tmp_path: Path
) -> None:
    """The failure is real (a tiny memory_limit in the warehouse URL), after checks were paid:
    the error names DuckDB's out-of-memory and the setting to raise, not "Current transaction
    is aborted"; nothing is loaded; the same run with a sane limit loads it all, paying nothing."""
    from numberyo_provider.checks import run_check
    from numberyo_provider.warehouse import LoadError, connect_warehouse

    rows = 60_000
    spec = _distinct_contacts(tmp_path / "contacts.duckdb", rows)
    path = tmp_path / "wh.duckdb"
    with connect_warehouse(f"duckdb:///{path}") as wh:
        wh.ensure_schema()

    def run(url: str, max_checks: int = 5) -> Any:
        with NumberYoClient(numberyo_simulator.token, numberyo_simulator.url) as client:
            return run_check(
                client=client,
                options=CheckOptions(check_type="HLR", run_id="oom", max_checks=max_checks, **FAST),
                chunks=iter_source_values(spec),
                warehouse=url,
                parquet_path=str(tmp_path / "landing"),
            )

    with pytest.raises(LoadError) as caught:
        run(f"duckdb:///{path}?memory_limit=4MB&threads=1")
    message = str(caught.value)
    assert "Out of Memory" in message and "memory_limit is 4MB" in message
    assert "memory_limit=1GB" in message and "aborted" not in message.lower()
    assert len(numberyo_simulator.sim.charges()) == 5
    assert _count(f"duckdb:///{path}", "check_requests") == 0
    assert _count(f"duckdb:///{path}", "_loads") == 0

    again = run(f"duckdb:///{path}", max_checks=0)  # load what was paid, pay nothing more
    assert again.error is None and again.summary.created == 0
    assert again.summary.already_created == 5
    assert len(numberyo_simulator.sim.charges()) == 5
    assert (_count(f"duckdb:///{path}", "checks"), _count(f"duckdb:///{path}", "hlr_results")) == (
        5,
        5,
    )
    assert _count(f"duckdb:///{path}", "check_requests") == rows


def test_the_ledger_export_streams_every_row_of_the_run_exactly(ledger: Ledger) -> None:
    """What the load copies into check_requests: the run's rows and the rows it changed, in
    batches, timestamps to the microsecond (SQLite's text is parsed by Arrow, not per value)."""
    from datetime import datetime

    import pyarrow as pa

    from numberyo_provider.checks.ledger import FAILED, Outcome, request_id

    at = datetime(2025, 3, 30, 14, 10, 23, 456789, tzinfo=UTC)
    mine = [(request_id("run-1", "HLR", d), d) for d in numbers(5)]
    earlier = [(request_id("run-0", "HLR", d), d) for d in numbers(2, start=100)]
    ledger.mark_pending("run-0", "HLR", earlier, now=at)
    ledger.mark_pending("run-1", "HLR", mine[:2], now=at)
    ledger.mark_not_checked("run-1", "HLR", mine[2:], "max_checks (2) reached", now=at)
    ledger.record(
        "run-1",
        [Outcome(mine[0][0], CREATED, check_id=7), Outcome(earlier[0][0], FAILED, error="x")],
    )
    batches = list(ledger.iter_request_batches("run-1", batch_size=2))
    assert [b.num_rows for b in batches] == [2, 2, 2]  # streamed, not one table
    exported = pa.concat_tables(batches).to_pylist()
    expected = ledger.touched_by("run-1")
    assert len(expected) == 6
    assert sorted(exported, key=lambda r: r["request_id"]) == sorted(
        ({name: getattr(row, name) for name in exported[0]} for row in expected),
        key=lambda r: r["request_id"],
    )
    assert {r["requested_at"] for r in exported} == {at}
