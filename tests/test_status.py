"""``numberyo status`` on real warehouses made by real syncs and check runs against the simulator.

Each trouble the report must name is produced the way it happens in production: a sync whose run
crashed and could not delete its files (failed load not cleaned), a POST whose answer was lost
(a ``pending`` request and an abandoned claim), a check whose results answered 404 (results never
loaded). The CLI runs as a real subprocess, so its exit code is the one an alerting job sees.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_sync_operator import (  # type: ignore[import-not-found]
    _state,
    dag_from_source,  # noqa: F401 - the fixture that runs DAG files (dag.test() needs a bundle)
)

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.checks import CheckOptions, run_check
from numberyo_provider.checks.ledger import PENDING, Ledger, default_ledger_url
from numberyo_provider.status import StatusError, read_status
from numberyo_provider.sync import run_sync

REPO = Path(__file__).resolve().parents[1]
NUMBERS = [f"32456{i:06d}" for i in range(6)]
LOST = ["32470000001", "32470000002"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "numberyo_provider.cli", "status", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


def sync(server: Any, wh: str, root: Path, **kwargs: Any) -> Any:
    return run_sync(
        warehouse=wh, parquet_path=str(root), token=server.token, base_url=server.url, **kwargs
    )


def check(server: Any, wh: str, root: Path, numbers: list[str], run_id: str, **client: Any) -> Any:
    with NumberYoClient(server.token, server.url, pool_size=4, **client) as api:
        return run_check(
            client=api,
            options=CheckOptions(check_type="HLR", run_id=run_id, concurrency=4),
            chunks=[list(numbers)],
            warehouse=wh,
            parquet_path=str(root / "checks"),
        )


_KILLED = """
import sys
from numberyo_provider.checks import CheckOptions, run_check
from numberyo_provider.api.client import NumberYoClient

url, token, wh, root, *numbers = sys.argv[1:]
with NumberYoClient(token, url, pool_size=4) as api:
    run_check(
        client=api,
        options=CheckOptions(check_type="HLR", run_id="lost-run", concurrency=4),
        chunks=[numbers],
        warehouse=wh,
        parquet_path=root,
    )
"""


def killed_check(server: Any, wh: str, root: Path) -> None:
    """A check run (a real process) killed with SIGKILL after the API charged its POSTs and
    before it read the answers: the ledger keeps them ``pending``, their claims outlive it."""
    sim = server.sim
    sim.charge_delay_s = 3.0  # the answers come back after the kill
    before = len(sim.charges())
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED, server.url, server.token, wh, str(root / "lost"), *LOST],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 60
        while len(sim.charges()) < before + len(LOST):
            assert child.poll() is None and time.monotonic() < deadline, "the child never paid"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        sim.charge_delay_s = 0.0
    time.sleep(3.2)  # let the server finish answering the dead client before it stops


def build_troubled_warehouse(
    factory: Callable[..., Any], wh: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """A warehouse with every kind of trouble, made by real runs; returns the simulator."""
    from numberyo_provider.sync import land

    server = factory(seed_checks=12, costs={"HLR": "1.50"})
    sim = server.sim
    broken = min(c["check"]["id"] for c in sim.truth() if c["check"]["type"] == "HLR")
    sim.break_results(broken, 404)
    sync(server, wh, root)  # committed, with one check whose results answered 404

    # Paid checks: 6 created and loaded; 2 whose run was killed while their POSTs were in flight.
    assert check(server, wh, root, NUMBERS, "paid-run").summary.created == 6
    killed_check(server, wh, root)

    # A sync that crashed after landing and could not delete its files.
    def crash(stage: str) -> None:
        if stage == "landed":
            raise RuntimeError("disk full while loading")

    def unavailable(*args: Any) -> None:
        raise OSError("disk unavailable")

    sim.create_check(server.token, "32456999999", "Verify")
    with monkeypatch.context() as patched:
        patched.setattr(land, "_remove_one", unavailable)
        patched.setattr(land.ParquetLander, "abort", lambda self: None)
        with pytest.raises(RuntimeError, match="disk full"):
            sync(server, wh, root, on_stage=crash)
    return server, broken


def assert_troubled(report: Any, broken: int) -> None:
    codes = [a.code for a in report.attention]
    assert codes == [
        "last_load_failed",
        "failed_load_not_cleaned",
        "outcome_unknown",
        "claim_abandoned",
        "results_not_loaded",
    ]
    newest = report.loads[0]
    assert (newest.kind, newest.status) == ("sync", "failed")
    assert "disk full while loading" in newest.error_samples[-1]
    assert [f.load_id for f in report.failed_not_cleaned] == [newest.load_id]
    assert report.failed_not_cleaned[0].files > 0
    committed = [load for load in report.loads if load.status == "committed"]
    assert {load.kind for load in committed} == {"sync", "check"}
    first_sync = next(load for load in reversed(report.loads) if load.kind == "sync")
    assert first_sync.rows["checks"] == 12 and first_sync.errors == 1
    assert f"check {broken}: 404" in first_sync.error_samples[0]
    assert all(load.duration_s is not None and load.duration_s >= 0 for load in committed)
    assert report.watermark is not None and report.watermark["load_id"] == first_sync.load_id
    # Pending requests: both lost numbers, masked; their claims' owner (the finished run) is gone.
    assert report.pending_total == report.pending_unheld == 2
    assert {p.run_id for p in report.pending} == {"lost-run"}
    assert {p.claim for p in report.pending} == {"abandoned"}
    assert all("*" in p.phone_number for p in report.pending)
    assert (report.claims_total, report.claims_abandoned) == (2, 2)
    # Credits: the ledger's created rows at the simulator's price; the lost ones are not counted.
    assert report.credits_source == "ledger"
    [day] = report.credits
    today = datetime.now(UTC).date()
    assert (day.day, day.check_type, day.checks, day.credits) == (today, "HLR", 6, Decimal("9.00"))
    [unloaded] = report.unloaded_results
    assert (unloaded.check_type, unloaded.count, unloaded.sample_check_ids) == ("HLR", 1, [broken])
    assert report.table_rows["check_requests"] == 6  # the killed run never loaded its rows


@pytest.mark.slow
def test_status_names_every_trouble_on_duckdb(
    numberyo_simulator_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    server, broken = build_troubled_warehouse(
        numberyo_simulator_factory, wh, tmp_path / "landing", monkeypatch
    )
    report = read_status(wh)
    assert_troubled(report, broken)
    assert report.ledger == default_ledger_url(wh)

    done = cli("--warehouse", wh, "--json")
    assert done.returncode == 3, done.stderr
    data = json.loads(done.stdout)
    assert data["needs_attention"] is True
    assert [a["code"] for a in data["attention"]] == [a.code for a in report.attention]
    assert data["credits"][0]["credits"] == "9.00"
    assert all(n not in done.stdout for n in [*NUMBERS, *LOST])  # numbers never printed
    text = cli("--warehouse", wh, "--loads", "2")
    assert text.returncode == 3
    assert "NEEDS ATTENTION (5)" in text.stdout and "Last 2 of 3 load(s)" in text.stdout
    assert server.token not in text.stdout + done.stdout


@pytest.mark.slow
@pytest.mark.postgres
def test_status_names_every_trouble_on_postgres(
    numberyo_simulator_factory: Callable[..., Any],
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sqlalchemy as sa

    wh = sa.engine.make_url(postgres_url).set(password="s3cret-pw")
    url = wh.render_as_string(hide_password=False)  # trust auth: the password is ignored
    _, broken = build_troubled_warehouse(
        numberyo_simulator_factory, url, tmp_path / "landing", monkeypatch
    )
    report = read_status(url)
    assert_troubled(report, broken)
    done = cli("--warehouse", url, "--json")
    assert done.returncode == 3, done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert json.loads(done.stdout)["ledger"].endswith(wh.database or "")


@pytest.mark.slow
def test_a_healthy_warehouse_exits_0_and_settled_troubles_clear(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """A clean sync and check: nothing to report. Also the counterpart of the pending test: once
    the lost answers are reconciled by a rerun, the report is healthy again."""
    server = numberyo_simulator_factory(seed_checks=5)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    sync(server, wh, tmp_path / "landing")
    check(server, wh, tmp_path, NUMBERS[:2], "ok-run")
    report = read_status(wh, days=7)
    assert report.attention == [] and not report.needs_attention
    assert report.credits and report.credits[0].checks == 2
    done = cli("--warehouse", wh)
    assert done.returncode == 0, done.stderr
    assert "OK: nothing needs attention" in done.stdout


@pytest.mark.slow
def test_a_failed_sync_stays_flagged_after_a_later_check_until_a_sync_succeeds(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path
) -> None:
    from numberyo_provider.errors import AuthenticationError

    server = numberyo_simulator_factory(seed_checks=4)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    sync(server, wh, tmp_path / "landing")
    with pytest.raises(AuthenticationError):
        run_sync(
            warehouse=wh, parquet_path=str(tmp_path / "landing"), token="bad", base_url=server.url
        )
    check(server, wh, tmp_path, NUMBERS[:1], "later-run")  # the newest load is a good check
    report = read_status(wh, loads=0)  # listing no load still judges the newest of each kind
    assert report.loads == [] and report.loads_total == 3
    [attention] = report.attention
    assert attention.code == "last_load_failed" and "newest sync load" in attention.message
    assert "AuthenticationError" in attention.message and "bad" not in attention.message.split()
    assert report.failed_not_cleaned == []  # it landed nothing: nothing to clean
    sync(server, wh, tmp_path / "landing")
    assert read_status(wh).attention == []


@pytest.mark.slow
def test_pending_then_reconciled_by_a_rerun(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=0)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    killed_check(server, wh, tmp_path)
    assert [a.code for a in read_status(wh).attention] == ["outcome_unknown", "claim_abandoned"]
    # The rerun of the same run id reconciles (the account shows both as charged) and pays
    # nothing again; the report clears.
    with NumberYoClient(server.token, server.url) as api:
        run_check(
            client=api,
            options=CheckOptions(
                check_type="HLR", run_id="lost-run", reconcile_settle=timedelta(seconds=0)
            ),
            chunks=[list(LOST)],
            warehouse=wh,
            parquet_path=str(tmp_path / "checks"),
        )
    assert len(server.sim.charges()) == 2
    after = read_status(wh)
    assert after.attention == [] and after.pending_total == 0
    with Ledger(default_ledger_url(wh), create=False) as book:
        assert book.rows(status=PENDING) == []


@pytest.mark.slow
def test_missing_warehouse_or_ledger_is_one_line_and_creates_nothing(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    import sqlalchemy as sa

    path = tmp_path / "sub" / "nope.duckdb"
    done = cli("--warehouse", f"duckdb:///{path}")
    assert done.returncode == 1
    assert done.stderr.startswith("numberyo status: error: no DuckDB warehouse at")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not path.parent.exists() and not list(tmp_path.iterdir())

    # A SQLite ledger given explicitly that does not exist.
    wh = tmp_path / "wh.duckdb"
    import duckdb

    duckdb.connect(str(wh)).close()  # a DuckDB file without numberyo tables
    done = cli("--warehouse", f"duckdb:///{wh}")
    assert done.returncode == 1 and "holds no numberyo tables" in done.stderr
    from numberyo_provider.warehouse import connect_warehouse

    with connect_warehouse(f"duckdb:///{wh}") as w:
        w.ensure_schema()
    with pytest.raises(StatusError, match="no request ledger at"):
        read_status(f"duckdb:///{wh}", ledger=f"sqlite:///{tmp_path / 'none.sqlite'}")
    assert not (tmp_path / "none.sqlite").exists()

    # PostgreSQL: a database that does not exist, with a password in the URL.
    missing = sa.engine.make_url(postgres_admin_url).set(
        database="numberyo_no_such_db", password="hunter2-secret"
    )
    done = cli("--warehouse", missing.render_as_string(hide_password=False))
    assert done.returncode == 1, done.stderr
    assert "hunter2-secret" not in done.stderr and "***" in done.stderr
    assert "no database at" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_duckdb_is_opened_read_only(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """The report reads a file it may not write: a read-only file is enough."""
    server = numberyo_simulator_factory(seed_checks=3)
    path = tmp_path / "wh.duckdb"
    sync(server, f"duckdb:///{path}", tmp_path / "landing")
    before = path.stat().st_mtime_ns
    path.chmod(0o444)
    try:
        report = read_status(f"duckdb:///{path}")
    finally:
        path.chmod(0o644)
    assert report.table_rows["checks"] == 3 and path.stat().st_mtime_ns == before
    assert not (tmp_path / "wh.duckdb.wal").exists()


def test_bad_usage_exits_2() -> None:
    assert cli("--warehouse", "duckdb:///x.duckdb", "--loads", "-1").returncode == 2
    done = cli("--warehouse", "duckdb:///:memory:")
    assert done.returncode == 2 and "in-memory" in done.stderr


STATUS_DAG = """
    import json, os
    from datetime import datetime, timezone
    from pathlib import Path

    from airflow.sdk import DAG, task

    from numberyo_provider.operators.status import NumberYoStatusOperator
    from numberyo_provider.status import read_status

    with DAG(
        "numberyo_status_test",
        schedule=None,
        start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
        params={"fail": True},
    ) as dag:
        status = NumberYoStatusOperator(
            task_id="status",
            warehouse=os.environ["NYT_WAREHOUSE"],
            fail_on_attention="{{ params.fail }}",
        )

        @task
        def as_a_function() -> dict:
            report = read_status(os.environ["NYT_WAREHOUSE"])
            Path(os.environ["NYT_OUT"]).write_text(json.dumps(report.as_dict()))
            return report.as_dict()

        as_a_function()
"""


@pytest.mark.slow
@pytest.mark.airflow_db
def test_status_operator_fails_the_task_when_attention_is_needed(
    airflow_db: Path,
    numberyo_simulator_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dag_from_source: Callable[[str], Any],  # noqa: F811 - the fixture imported above
) -> None:
    server = numberyo_simulator_factory(seed_checks=6)
    broken = min(c["check"]["id"] for c in server.sim.truth() if c["check"]["type"] == "HLR")
    server.sim.break_results(broken, 404)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    sync(server, wh, tmp_path / "landing")
    monkeypatch.setenv("NYT_WAREHOUSE", wh)
    monkeypatch.setenv("NYT_OUT", str(tmp_path / "report.json"))
    dag = dag_from_source(STATUS_DAG)

    run = dag.test()
    states = {ti.task_id: _state(ti) for ti in run.get_task_instances()}
    assert states == {"status": "failed", "as_a_function": "success"}
    report = json.loads((tmp_path / "report.json").read_text())
    assert [a["code"] for a in report["attention"]] == ["results_not_loaded"]

    run = dag.test(run_conf={"fail": False})
    states = {ti.task_id: _state(ti) for ti in run.get_task_instances()}
    assert states == {"status": "success", "as_a_function": "success"}


def test_without_a_ledger_credits_come_from_the_warehouse(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """A warehouse only ever synced: no ledger exists (and none is created); credits per day
    come from `checks`, where the list endpoint gives no cost (counted as unpriced)."""
    server = numberyo_simulator_factory(seed_checks=9)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    sync(server, wh, tmp_path / "landing")
    report = read_status(wh, days=31)
    assert report.ledger is None and report.credits_source == "warehouse"
    assert any("no request ledger" in note for note in report.notes)
    assert not Path(default_ledger_url(wh).split("///", 1)[1]).exists()
    assert sum(c.checks for c in report.credits) == 9
    assert all(c.unpriced == c.checks and c.credits == 0 for c in report.credits)
    assert report.attention == []


@pytest.mark.slow
def test_requests_in_flight_are_listed_but_not_an_alert(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """While a check run waits for its answers, its requests are pending under live claims:
    status lists them and stays healthy (an alert on every running check would be noise)."""
    import threading

    server = numberyo_simulator_factory(seed_checks=0)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    sync(server, wh, tmp_path / "landing")  # the warehouse exists before the check starts
    server.sim.charge_delay_s = 2.0
    done: list[Any] = []
    runner = threading.Thread(
        target=lambda: done.append(check(server, wh, tmp_path, LOST, "running-run"))
    )
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while len(server.sim.charges()) < len(LOST):
            assert time.monotonic() < deadline, "the check never paid"
            time.sleep(0.02)
        report = read_status(wh)
    finally:
        runner.join(timeout=60)
        server.sim.charge_delay_s = 0.0
    assert report.pending_total == 2 and report.pending_unheld == 0
    assert {p.claim for p in report.pending} == {"live"}
    assert report.claims_total == 2 and report.claims_abandoned == 0
    assert report.attention == []
    assert done and done[0].summary.created == 2
    assert read_status(wh).pending_total == 0  # settled once the answers came


def test_importing_the_status_package_loads_no_table_definitions_or_drivers() -> None:
    """``numberyo status --help`` and a DAG file with the status operator pay nothing for the
    warehouse side: pyarrow, DuckDB and SQLAlchemy come with the first report."""
    code = (
        "import sys\n"
        "import numberyo_provider.status\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pyarrow', 'duckdb', 'sqlalchemy'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
