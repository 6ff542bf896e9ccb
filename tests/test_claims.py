"""At most one payer per number: the ledger's claims, raced by real processes.

Issue: two identical ``numberyo check`` runs started within a second paid every number twice
(``mark_pending`` overwrote a row another process had already marked pending). These tests start
the contenders as separate processes released together by a barrier (``tests/barrier_run.py``)
and count charges in the simulator's own log.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from numberyo_provider.checks.ledger import (
    CREATED,
    NOT_CHECKED,
    PENDING,
    Ledger,
    Outcome,
    default_ledger_url,
    new_owner,
    owner_is_dead,
    request_id,
    retire_owner,
)

BARRIER = Path(__file__).with_name("barrier_run.py")


def ledger_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    book = Ledger(ledger_url(request.param, tmp_path, request))
    yield book
    book.close()


def pairs(run_id: str, numbers: list[str]) -> list[tuple[str, str]]:
    return [(request_id(run_id, "HLR", d), d) for d in numbers]


def race(
    tmp_path: Path, contenders: list[tuple[str, dict[str, Any]]], timeout: float = 240
) -> list[dict[str, Any]]:
    """Start every contender, wait until each has imported what it needs, release them at once."""
    go = tmp_path / f"go-{time.monotonic_ns()}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(BARRIER), str(go), mode, json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode, args in contenders
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob(f"{go.name}.ready.*"))) < len(procs):
        assert time.monotonic() < deadline, "contenders never got ready"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        assert p.returncode == 0, stderr
        out.append(
            {**json.loads(stdout.strip().splitlines()[-1]), "stderr": stderr, "stdout": stdout}
        )
    return out


# --- the ledger's claims ------------------------------------------------------------------------


def test_a_held_number_is_refused_to_any_other_owner(ledger: Ledger) -> None:
    a, b = new_owner(), new_owner()
    first = ledger.claim("run-a", "HLR", pairs("run-a", ["3245600001", "3245600002"]), owner=a)
    assert sorted(d for _, d in first.granted) == ["3245600001", "3245600002"]
    # Same run id (a retry beside its zombie) and another run id: both refused while a holds it.
    for run_id in ("run-a", "run-b"):
        second = ledger.claim(run_id, "HLR", pairs(run_id, ["3245600001", "3245600003"]), owner=b)
        assert [d for _, d in second.granted] == ["3245600003"] or run_id == "run-b"
        assert [(d, h.owner) for _, d, h in second.held] == [("3245600001", a)]
    rows = {r.request_id: r for r in ledger.rows(run_id="run-a")}
    assert rows[request_id("run-a", "HLR", "3245600001")].attempts == 1  # never re-marked
    retire_owner(a)
    retire_owner(b)


def test_pending_or_freshly_created_rows_block_a_claim(ledger: Ledger) -> None:
    owner = new_owner()
    ledger.mark_pending("old", "HLR", pairs("old", ["3245600001"]))  # no claim: a legacy row
    ledger.mark_pending("old", "HLR", pairs("old", ["3245600002"]))
    ledger.record("old", [Outcome(request_id("old", "HLR", "3245600002"), CREATED, check_id=7)])
    horizon = datetime.now(UTC) - timedelta(days=30)
    got = ledger.claim(
        "new", "HLR", pairs("new", ["3245600001", "3245600002", "3245600003"]), owner=owner,
        created_since=horizon,
    )  # fmt: skip
    assert [d for _, d in got.unresolved] == ["3245600001"]
    assert [d for _, d in got.created] == ["3245600002"]
    assert got.created_by_run == set()  # created by run "old", not by "new"
    again = ledger.claim("old", "HLR", pairs("old", ["3245600002"]), owner=owner)
    assert [d for _, d in again.created] == ["3245600002"]
    assert again.created_by_run == {"3245600002"}  # a retry of "old" finds its own check
    assert [d for _, d in got.granted] == ["3245600003"]
    # Claims of numbers not granted are not kept.
    assert [c.phone_number for c in ledger.claims_of("HLR")] == ["3245600003"]
    # A created row older than the horizon does not block (max_age): it may be checked again.
    later = ledger.claim(
        "new2", "HLR", pairs("new2", ["3245600002"]), owner=owner,
        created_since=datetime.now(UTC) + timedelta(seconds=1),
    )  # fmt: skip
    assert [d for _, d in later.granted] == ["3245600002"]
    retire_owner(owner)


def test_recording_an_answer_releases_the_claim_but_an_unknown_outcome_keeps_it(
    ledger: Ledger,
) -> None:
    owner = new_owner()
    numbers = ["3245600001", "3245600002", "3245600003"]
    ledger.claim("r", "HLR", pairs("r", numbers), owner=owner)
    rid = [request_id("r", "HLR", d) for d in numbers]
    ledger.record(
        "r",
        [
            Outcome(rid[0], CREATED, check_id=1),
            Outcome(rid[1], NOT_CHECKED, error="credits"),
            Outcome(rid[2], PENDING, error="read timeout"),
        ],
        owner=owner,
    )
    assert [c.phone_number for c in ledger.claims_of("HLR")] == ["3245600003"]
    ledger.release_settled(owner)  # the end of a run: the unknown outcome stays claimed
    assert [c.phone_number for c in ledger.claims_of("HLR")] == ["3245600003"]
    retire_owner(owner)


def test_only_an_abandoned_claim_is_taken_over(ledger: Ledger) -> None:
    live, taker = new_owner(), new_owner()
    ledger.claim("r", "HLR", pairs("r", ["3245600001"]), owner=live)
    ledger.claim("r", "HLR", pairs("r", ["3245600002"]), owner=live, lease=timedelta(seconds=4))
    far_host = "elsewhere:123:456:abc"  # another host: only its lease can tell
    ledger.claim("r", "HLR", pairs("r", ["3245600003"]), owner=far_host)
    time.sleep(4.2)
    rows = ledger.rows(status=PENDING)
    assert len(rows) == 3
    taken = ledger.acquire("HLR", rows, owner=taker)
    assert [r.phone_number for r in taken] == ["3245600002"]  # its lease ran out
    holders = {c.phone_number: c.owner for c in ledger.claims_of("HLR")}
    assert holders == {"3245600001": live, "3245600002": taker, "3245600003": far_host}
    retire_owner(live)  # the live owner's checker ended: its claim is now free to take over
    assert owner_is_dead(live) and not owner_is_dead(far_host)
    taken = ledger.acquire("HLR", ledger.rows(status=PENDING), owner=taker)
    assert sorted(r.phone_number for r in taken) == ["3245600001", "3245600002"]
    retire_owner(taker)


def test_a_killed_process_is_known_dead_on_this_host(tmp_path: Path) -> None:
    code = "from numberyo_provider.checks.ledger import new_owner; print(new_owner(), flush=True)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code + "; import time; time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    owner = proc.stdout.readline().strip()
    assert not owner_is_dead(owner)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert owner_is_dead(owner)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_processes_racing_for_the_same_numbers_are_granted_each_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = ledger_url(kind, tmp_path, request)
    Ledger(url).close()  # tables exist before the race (creation races are tested elsewhere)
    numbers = [f"32456{i:05d}" for i in range(400)]
    contenders = [
        ("claim", {"ledger": url, "numbers": numbers, "batch": 16, "run_id": run_id})
        for run_id in ("same-run", "same-run", "", "")  # 2 retries of one run, 2 other runs
    ]
    results = race(tmp_path, contenders)
    granted = Counter(d for r in results for d in r["granted"])
    assert granted == Counter(numbers), "each number granted to exactly one process"
    assert all(r["granted"] for r in results[:1]) or any(r["granted"] for r in results)


# --- whole runs against the simulator ------------------------------------------------------------

NUMBERS = [f"+32 456 {i:06d}" for i in range(120)]
DIGITS = [n.replace(" ", "")[1:] for n in NUMBERS]


@pytest.fixture
def slow_api(numberyo_simulator_factory: Any) -> Any:
    # 40 ms an answer, 4 workers: a run of 120 numbers sends for over a second, so runs overlap.
    return numberyo_simulator_factory(credits=100_000, latency_ms=40)


def contacts(tmp_path: Path, numbers: list[str], name: str = "crm") -> str:
    db = tmp_path / f"{name}.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE contacts (phone VARCHAR)")
        con.executemany("INSERT INTO contacts VALUES (?)", [(n,) for n in numbers])
    return f"duckdb:///{db}"


def check_argv(source: str, warehouse: str, landing: Path, *extra: str) -> list[str]:
    return [
        "check", "--source", source, "--table", "contacts", "--column", "phone",
        "--type", "HLR", "--default-region", "BE", "--warehouse", warehouse,
        "--parquet-path", str(landing), "--concurrency", "4", "--no-progress",
        "--reconcile-settle", "0.5", *extra,
    ]  # fmt: skip


def cli_env(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBERYO_BASE_URL", server.url)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", server.token)
    monkeypatch.delenv("NUMBERYO_PRIVACY_MODE", raising=False)


def charged(server: Any) -> Counter[str]:
    return Counter(e.phone_number for e in server.sim.charges())


def warehouse_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "duckdb":
        return f"duckdb:///{tmp_path / 'wh.duckdb'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "runs"),
    [
        ("duckdb", 2),
        ("duckdb", 3),
        pytest.param("postgresql", 2, marks=pytest.mark.postgres),
    ],
)
def test_identical_runs_started_together_pay_each_number_once(
    kind: str,
    runs: int,
    slow_api: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """A cron overlap: the same command started N times at once (same default run id)."""
    cli_env(slow_api, monkeypatch)
    source = contacts(tmp_path, NUMBERS)
    warehouse = warehouse_url(kind, tmp_path, request)
    argv = check_argv(source, warehouse, tmp_path / "landing")
    results = race(tmp_path, [("cli", {"argv": argv})] * runs)
    assert [r["exit"] for r in results] == [0] * runs, [r["stderr"] for r in results]
    assert charged(slow_api) == Counter(DIGITS)  # every number paid exactly once
    book = Ledger(default_ledger_url(warehouse))
    try:
        created = [r for r in book.rows(status=CREATED)]
        assert Counter(r.phone_number for r in created) == Counter(DIGITS)
        assert book.rows(status=PENDING) == []
        assert book.claims_of() == []  # nothing left held
    finally:
        book.close()


@pytest.mark.slow
def test_runs_with_different_run_ids_over_overlapping_numbers_pay_each_number_once(
    slow_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_env(slow_api, monkeypatch)
    first = contacts(tmp_path, NUMBERS[:90], "a")
    second = contacts(tmp_path, NUMBERS[30:], "b")  # 60 numbers in both sources
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    results = race(
        tmp_path,
        [
            ("cli", {"argv": check_argv(first, warehouse, tmp_path / "l", "--run-id", "a")}),
            ("cli", {"argv": check_argv(second, warehouse, tmp_path / "l", "--run-id", "b")}),
            ("cli", {"argv": check_argv(second, warehouse, tmp_path / "l", "--run-id", "c")}),
        ],
    )
    assert [r["exit"] for r in results] == [0, 0, 0], [r["stderr"] for r in results]
    assert charged(slow_api) == Counter(DIGITS)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        loaded = con.execute("SELECT count(DISTINCT phone_number), count(*) FROM numberyo.checks")
        assert loaded.fetchall() == [(120, 120)]


@pytest.mark.slow
def test_an_airflow_shard_retried_beside_its_first_try_pays_each_number_once(
    slow_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Try 2 of a mapped shard task starts while try 1 (a zombie) is still sending: same run id
    (``<dag_id>:<run_id>``), same shard, different processes."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_NUMBERYO_DEFAULT",
        json.dumps({"conn_type": "numberyo", "host": slow_api.url, "password": slow_api.token}),
    )
    source = contacts(tmp_path, NUMBERS)
    operator = {
        "source_url": source,
        "table": "contacts",
        "column": "phone",
        "check_type": "HLR",
        "default_region": "BE",
        "warehouse": f"duckdb:///{tmp_path / 'wh.duckdb'}",
        "parquet_path": str(tmp_path / "landing"),
        "shards": 2,
        "shard_index": 1,
        "load": False,
        "concurrency": 4,
        "reconcile_settle_s": 0.5,
    }
    args = {"operator": operator, "dag_id": "numberyo_check_numbers", "run_id": "manual__1"}
    results = race(tmp_path, [("operator", args), ("operator", args)])
    assert all("summary" in r for r in results), results
    from numberyo_provider.checks.sharding import shard_of

    mine = [d for d in DIGITS if shard_of(d, 2) == 1]
    assert charged(slow_api) == Counter(mine)
    created = sum(r["summary"]["created"] for r in results)
    assert created == len(mine)


@pytest.mark.slow
def test_a_run_killed_mid_flight_is_taken_over_through_reconciliation_never_resent(
    numberyo_simulator_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 while POSTs are in flight; the rerun, started at once, finds the dead owner's
    claims, reconciles their pending rows against the account and sends only what was not
    created."""
    server = numberyo_simulator_factory(credits=100_000, latency_ms=300)
    cli_env(server, monkeypatch)
    source = contacts(tmp_path, NUMBERS[:40])
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    argv = check_argv(source, warehouse, tmp_path / "landing")
    proc = subprocess.Popen(
        [sys.executable, "-m", "numberyo_provider.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(server.sim.charges()) < 6:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    book = Ledger(default_ledger_url(warehouse))
    try:
        assert book.rows(status=PENDING), "the kill left requests whose outcome is unknown"
        assert book.claims_of(), "and their claims"
    finally:
        book.close()
    time.sleep(0.4)  # let the server finish the POSTs the killed process left in flight
    from numberyo_provider.cli import main

    assert main(argv) == 0
    assert charged(server) == Counter(DIGITS[:40])
    book = Ledger(default_ledger_url(warehouse))
    try:
        assert book.rows(status=PENDING) == [] and book.claims_of() == []
    finally:
        book.close()


def test_a_frozen_owner_whose_lease_ran_short_sends_nothing(
    numberyo_simulator: Any, tmp_path: Path
) -> None:
    """A process paused past its lease (SIGSTOP, a VM freeze) may have been taken over: its
    workers must not send when they wake."""
    from numberyo_provider.api.client import NumberYoClient
    from numberyo_provider.checks import Checker, CheckOptions

    class Sink:
        def write(self, table: Any, data: Any) -> None:
            return None

    book = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    client = NumberYoClient(numberyo_simulator.token, numberyo_simulator.url)
    options = CheckOptions(check_type="HLR", run_id="frozen", default_region="BE")
    checker = Checker(client, book, options, sink=Sink(), load_id="x")
    checker._lease_allows_send = lambda: False  # type: ignore[method-assign]
    summary = checker.run([NUMBERS[:5]])
    assert numberyo_simulator.sim.charges() == []
    assert summary.created == 0 and summary.not_checked == 5
    assert book.claims_of() == [] and book.rows(status=PENDING) == []
    client.close()
    book.close()
