"""The check operators inside real Airflow DAG runs (``dag.test()``), against the simulator."""

from __future__ import annotations

import json
import runpy
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

pytestmark = pytest.mark.airflow_db

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "dags" / "numberyo_check_numbers.py"
NUMBERS = [f"+32 456 {i:06d}" for i in range(30)]
DIGITS = [n.replace(" ", "")[1:] for n in NUMBERS]


@pytest.fixture
def conn(numberyo_simulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    server = numberyo_simulator_factory(credits=1000, latency_ms=2)
    monkeypatch.setenv(
        "AIRFLOW_CONN_NUMBERYO_DEFAULT",
        json.dumps(
            {
                "conn_type": "numberyo",
                "host": server.url,
                "password": server.token,
                "extra": {"max_retries": 2},
            }
        ),
    )
    return server


@pytest.fixture
def contacts(tmp_path: Path) -> Path:
    db = tmp_path / "contacts.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE contacts (phone VARCHAR)")
        con.executemany(
            "INSERT INTO contacts VALUES (?)", [(n,) for n in [*NUMBERS, "0456000003", "n/a"]]
        )
    return db


def _state(obj: Any) -> str:
    return str(getattr(obj.state, "value", obj.state))


def _tasks(dag_run: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ti in dag_run.get_task_instances():
        out.setdefault(ti.task_id, []).append(_state(ti))
    return out


def _rows(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def _charged(server: Any) -> Counter[str]:
    return Counter(e.phone_number for e in server.sim.charges())


@pytest.fixture
def dag_from_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """Write a DAG file into a private bundle and load it (``dag.test()`` in Airflow 3 runs DAGs
    it can find in a configured bundle)."""
    folder = tmp_path / "dags"
    folder.mkdir()
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    monkeypatch.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps(
            [
                {
                    "name": "numberyo-check-tests",
                    "classpath": local,
                    "kwargs": {"path": str(folder)},
                },
                {"name": "dags-folder", "classpath": local, "kwargs": {}},
            ]
        ),
    )

    def load(source: str) -> Any:
        path = folder / f"dag_{len(list(folder.iterdir()))}.py"
        path.write_text(textwrap.dedent(source))
        return runpy.run_path(str(path))["dag"]

    return load


def test_the_example_dag_imports_cleanly() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE))
    assert bag.import_errors == {}
    dag = bag.dags["numberyo_check_numbers"]
    assert {t.task_id for t in dag.tasks} == {
        "hygiene",
        "shard_indexes",
        "check_numbers",
        "load_checks",
    }
    assert dag.max_active_runs == 1
    assert str(dag.get_task("load_checks").trigger_rule) in ("all_done", "TriggerRule.ALL_DONE")
    assert dag.get_task("load_checks").outlets  # the Assets that schedule numberyo_dbt
    for name in ("source_url", "warehouse", "shards", "max_credits", "on_insufficient_credits"):
        assert name in dag.params


@pytest.mark.slow
def test_the_sharded_example_dag_charges_each_number_once(
    airflow_db: Path, conn: Any, contacts: Path, tmp_path: Path, dag_from_source: Any
) -> None:
    warehouse = tmp_path / "wh.duckdb"
    # dag.test() honours retry delays (5 minutes here): a failure must show at once instead.
    dag = dag_from_source(EXAMPLE.read_text().replace('"retries": 2', '"retries": 0'))
    run = dag.test(
        run_conf={
            "source_url": f"duckdb:///{contacts}",
            "warehouse": f"duckdb:///{warehouse}",
            "parquet_path": str(tmp_path / "landing"),
            "shards": 3,
            "concurrency": 4,
        }
    )
    states = _tasks(run)
    assert _state(run) == "success", states
    assert states["check_numbers"] == ["success"] * 3
    assert _charged(conn) == Counter(DIGITS)  # across the three shards, once each
    assert _rows(warehouse, "SELECT count(*) FROM numberyo.checks") == [(30,)]
    assert _rows(warehouse, "SELECT count(*) FROM numberyo.hlr_results") == [(30,)]
    assert _rows(
        warehouse, "SELECT status, count(*) FROM numberyo.check_requests GROUP BY ALL"
    ) == [("created", 30)]
    assert _rows(warehouse, "SELECT raw_value FROM numberyo.rejected_numbers") == [("n/a",)]
    loads = _rows(warehouse, "SELECT kind, status FROM numberyo._loads")
    assert loads == [("check", "committed")]

    # A second DAG run: every number has a fresh result; nothing is sent.
    again = dag.test(
        run_conf={
            "source_url": f"duckdb:///{contacts}",
            "warehouse": f"duckdb:///{warehouse}",
            "parquet_path": str(tmp_path / "landing"),
            "shards": 2,
        }
    )
    assert _state(again) == "success", _tasks(again)
    assert len(conn.sim.charges()) == 30


SINGLE = """
    import os
    from datetime import datetime, timezone
    from airflow.sdk import DAG
    from numberyo_provider.operators.check import NumberYoCreateChecksOperator

    with DAG("numberyo_check_single", schedule=None,
             start_date=datetime(2025, 1, 1, tzinfo=timezone.utc)) as dag:
        NumberYoCreateChecksOperator(
            task_id="check",
            source_conn_id=os.environ.get("NYT_SOURCE_CONN"),
            source_url=os.environ.get("NYT_SOURCE_URL"),
            table="contacts",
            column="phone",
            default_region="BE",
            check_type="Verify",
            warehouse=os.environ["NYT_WAREHOUSE"],
            parquet_path=os.environ["NYT_LANDING"],
            on_insufficient_credits=os.environ["NYT_POLICY"],
            concurrency=4,
        )
"""


@pytest.mark.parametrize(
    ("policy", "state"), [("fail", "failed"), ("warn", "success"), ("skip", "skipped")]
)
def test_running_out_of_credits_keeps_the_work_and_applies_the_policy(
    airflow_db: Path,
    numberyo_simulator_factory: Any,
    contacts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dag_from_source: Any,
    policy: str,
    state: str,
) -> None:
    server = numberyo_simulator_factory(credits=5, costs={"Verify": "0.50"})
    monkeypatch.setenv(
        "AIRFLOW_CONN_NUMBERYO_DEFAULT",
        json.dumps({"conn_type": "numberyo", "host": server.url, "password": server.token}),
    )
    warehouse = tmp_path / "wh.duckdb"
    monkeypatch.setenv("NYT_SOURCE_URL", f"duckdb:///{contacts}")
    monkeypatch.setenv("NYT_WAREHOUSE", f"duckdb:///{warehouse}")
    monkeypatch.setenv("NYT_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("NYT_POLICY", policy)
    run = dag_from_source(SINGLE).test()
    assert _tasks(run)["check"] == [state]
    assert len(_charged(server)) == 10  # 5 credits / 0.50
    assert _rows(warehouse, "SELECT count(*) FROM numberyo.verify_results") == [(10,)]
    statuses = dict(
        _rows(warehouse, "SELECT status, count(*) FROM numberyo.check_requests GROUP BY ALL")
    )
    assert statuses == {"created": 10, "not_checked": 20}


def test_source_through_an_airflow_connection(
    airflow_db: Path,
    conn: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dag_from_source: Any,
) -> None:
    import sqlite3

    db = tmp_path / "crm.sqlite"
    with sqlite3.connect(db) as lite:
        lite.execute("CREATE TABLE contacts (phone TEXT)")
        lite.executemany("INSERT INTO contacts VALUES (?)", [(n,) for n in NUMBERS[:5]])
    # No SQLite provider is installed: the connection's URI is used as a SQLAlchemy URL.
    monkeypatch.setenv("AIRFLOW_CONN_CRM", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    monkeypatch.setenv("NYT_SOURCE_CONN", "crm")
    monkeypatch.delenv("NYT_SOURCE_URL", raising=False)
    monkeypatch.setenv("NYT_WAREHOUSE", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    monkeypatch.setenv("NYT_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("NYT_POLICY", "fail")
    run = dag_from_source(SINGLE).test()
    assert _state(run) == "success", _tasks(run)
    assert _charged(conn) == Counter(DIGITS[:5])


def test_on_kill_stops_the_checker() -> None:
    from numberyo_provider.operators.check import NumberYoCreateChecksOperator

    op = NumberYoCreateChecksOperator(
        task_id="k",
        source_url="duckdb:///x.duckdb",
        table="t",
        column="c",
        warehouse="duckdb:///w.duckdb",
        parquet_path="/tmp/x",
    )

    class Probe:
        stopped: str | None = None

        def stop(self, message: str) -> None:
            self.stopped = message

    probe = Probe()
    op._attach(probe)
    op.on_kill()
    assert probe.stopped == "the task was killed"
    assert op._stop.is_set()


def test_max_workers_is_a_deprecated_alias_of_concurrency() -> None:
    from numberyo_provider.operators.check import (
        NumberYoCreateChecksOperator,
        NumberYoLoadLandedOperator,
    )

    common = {"warehouse": "duckdb:///w.duckdb", "parquet_path": "/tmp/x"}
    with pytest.warns(DeprecationWarning, match="max_workers is deprecated, use concurrency") as w:
        old = NumberYoCreateChecksOperator(
            task_id="old", source_url="duckdb:///x.duckdb", table="t", column="c", max_workers=3,
            **common,
        )  # fmt: skip
    assert w[0].filename == __file__  # the warning points at the caller's line
    assert old.concurrency == 3 and "concurrency" in old.template_fields
    new = NumberYoCreateChecksOperator(
        task_id="new", source_url="duckdb:///x.duckdb", table="t", column="c", concurrency=5,
        **common,
    )  # fmt: skip
    assert new.concurrency == 5
    with pytest.warns(DeprecationWarning, match="max_workers is deprecated, use concurrency"):
        load = NumberYoLoadLandedOperator(
            task_id="load", check_task_id="old", max_workers=2, **common
        )
    assert load.concurrency == 2
