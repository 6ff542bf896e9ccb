"""``NumberYoCreateChecksOperator`` fails the task when numbers failed, in a real DAG run.

Against the simulator with its ``fail_next`` knob: three numbers are refused (422). By default the
task fails with the same sentence ``numberyo check`` prints; ``allow_failed_numbers=True`` lets it
succeed. Either way what was created is loaded and the XCom is pushed.
"""

from __future__ import annotations

import json
import runpy
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

pytestmark = [pytest.mark.airflow_db, pytest.mark.slow]

NUMBERS = [f"+32 456 {i:06d}" for i in range(12)]

DAG_SOURCE = """
    import os
    from datetime import datetime, timezone
    from airflow.sdk import DAG
    from numberyo_provider.operators.check import NumberYoCreateChecksOperator

    with DAG("numberyo_check_failures", schedule=None,
             start_date=datetime(2025, 1, 1, tzinfo=timezone.utc)) as dag:
        NumberYoCreateChecksOperator(
            task_id="check",
            source_url=os.environ["NYT_SOURCE_URL"],
            table="contacts",
            column="phone",
            default_region="BE",
            check_type="HLR",
            warehouse=os.environ["NYT_WAREHOUSE"],
            parquet_path=os.environ["NYT_LANDING"],
            allow_failed_numbers=os.environ["NYT_ALLOW"],
            concurrency=2,
            retries=0,
        )
"""


def _state(obj: Any) -> str:
    return str(getattr(obj.state, "value", obj.state))


@pytest.mark.parametrize(("allow", "state"), [("False", "failed"), ("True", "success")])
def test_failed_numbers_fail_the_task_unless_allowed(
    airflow_db: Path,
    numberyo_simulator_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    allow: str,
    state: str,
) -> None:
    server = numberyo_simulator_factory(latency_ms=2)
    monkeypatch.setenv(
        "AIRFLOW_CONN_NUMBERYO_DEFAULT",
        json.dumps({"conn_type": "numberyo", "host": server.url, "password": server.token}),
    )
    source = tmp_path / "contacts.duckdb"
    with duckdb.connect(str(source)) as con:
        con.execute("CREATE TABLE contacts (phone VARCHAR)")
        con.executemany("INSERT INTO contacts VALUES (?)", [(n,) for n in NUMBERS])
    warehouse = tmp_path / "wh.duckdb"
    monkeypatch.setenv("NYT_SOURCE_URL", f"duckdb:///{source}")
    monkeypatch.setenv("NYT_WAREHOUSE", f"duckdb:///{warehouse}")
    monkeypatch.setenv("NYT_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("NYT_ALLOW", allow)
    # dag.test() runs DAGs it finds in a configured bundle: give it a private one.
    folder = tmp_path / "dags"
    folder.mkdir()
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    monkeypatch.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps([{"name": "failures", "classpath": local, "kwargs": {"path": str(folder)}}]),
    )
    path = folder / "dag_failures.py"
    path.write_text(textwrap.dedent(DAG_SOURCE))
    dag = runpy.run_path(str(path))["dag"]

    server.sim.fail_next(3, 422, endpoint="create")
    run = dag.test()
    logged = "".join(capfd.readouterr())  # the task log goes through Airflow's own handlers
    (ti,) = run.get_task_instances()
    assert _state(ti) == state
    assert len(Counter(e.phone_number for e in server.sim.charges())) == 9
    with duckdb.connect(str(warehouse), read_only=True) as con:  # loaded either way
        assert con.execute("SELECT count(*) FROM numberyo.checks").fetchone() == (9,)
        failed = con.execute(
            "SELECT count(*) FROM numberyo.check_requests WHERE status = 'failed'"
        ).fetchone()
    assert failed == (3,)
    sentence = "3 number(s) failed (first error: POST /api/checks -> 422"
    assert sentence in logged
    assert "9 check(s) created and loaded" in logged
