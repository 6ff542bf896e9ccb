"""NumberYoSyncOperator inside real Airflow DAG runs (``dag.test()``), against the simulator."""

from __future__ import annotations

import json
import runpy
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from numberyo_provider.assets import sync_asset_uris, warehouse_location

pytestmark = pytest.mark.airflow_db


@pytest.fixture
def conn(numberyo_simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NUMBERYO_DEFAULT",
        json.dumps(
            {
                "conn_type": "numberyo",
                "host": numberyo_simulator.url,
                "password": numberyo_simulator.token,
                "extra": {"max_retries": 2},
            }
        ),
    )
    return numberyo_simulator


def _state(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


@pytest.fixture
def dag_from_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """Write a DAG file into a private bundle and load it: ``dag.test()`` in Airflow 3 only runs
    DAGs it can find (and serialise) in a configured bundle."""
    folder = tmp_path / "dags"
    folder.mkdir()
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    monkeypatch.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps(
            [
                {"name": "numberyo-tests", "classpath": local, "kwargs": {"path": str(folder)}},
                {"name": "dags-folder", "classpath": local, "kwargs": {}},
            ]
        ),
    )

    def load(source: str) -> Any:
        path = folder / f"dag_{len(list(folder.iterdir()))}.py"
        path.write_text(textwrap.dedent(source))
        return runpy.run_path(str(path))["dag"]

    return load


SYNC_DAG = """
    import json, os
    from datetime import datetime, timezone
    from pathlib import Path

    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    from numberyo_provider.operators.sync import NumberYoSyncOperator

    def record(summary):
        Path(os.environ["NYT_OUT"]).write_text(json.dumps(summary))

    with DAG(
        "numberyo_sync_operator_test",
        schedule=None,
        start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
        params={"refresh": False},
    ) as dag:
        sync = NumberYoSyncOperator(
            task_id="sync",
            numberyo_conn_id=os.environ.get("NYT_CONN", "numberyo_default"),
            warehouse=os.environ["NYT_WAREHOUSE"],
            parquet_path=os.environ["NYT_LANDING"] + "/{{ dag.dag_id }}",
            full_refresh="{{ params.refresh }}",
            concurrency=4,
        )
        sync >> PythonOperator(task_id="record", python_callable=record, op_args=[sync.output])
"""


@pytest.mark.slow
def test_sync_operator_in_a_dag_run(
    airflow_db: Path,
    conn: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dag_from_source: Callable[[str], Any],
) -> None:
    from airflow.sdk import Asset
    from test_sync import assert_matches_truth  # type: ignore[import-not-found]

    sim = conn.sim
    sim.seed_checks(23)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    out = tmp_path / "summary.json"
    monkeypatch.setenv("NYT_WAREHOUSE", wh)
    monkeypatch.setenv("NYT_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("NYT_OUT", str(out))
    dag = dag_from_source(SYNC_DAG)

    assert set(dag.get_task("sync").outlets) == {Asset(uri) for uri in sync_asset_uris(wh).values()}
    run = dag.test()
    assert _state(run) == "success"
    summary = json.loads(out.read_text())
    assert summary["checks_new"] == 23 and summary["full_refresh"] is False
    assert summary["parquet_path"].endswith("numberyo_sync_operator_test")
    assert_matches_truth(wh, sim)

    sim.create_check(conn.token, "32456789023", "HLR")
    run = dag.test(run_conf={"refresh": True})
    assert _state(run) == "success"
    summary = json.loads(out.read_text())
    assert summary["full_refresh"] is True and summary["checks_new"] == 24
    assert_matches_truth(wh, sim)


def test_failed_sync_fails_the_task(
    airflow_db: Path,
    numberyo_simulator: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dag_from_source: Callable[[str], Any],
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NY_BAD",
        json.dumps(
            {"conn_type": "numberyo", "host": numberyo_simulator.url, "password": "bad-tok"}
        ),
    )
    monkeypatch.setenv("NYT_CONN", "ny_bad")
    monkeypatch.setenv("NYT_WAREHOUSE", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    monkeypatch.setenv("NYT_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("NYT_OUT", str(tmp_path / "out.json"))
    run = dag_from_source(SYNC_DAG).test()
    assert _state(run) == "failed"
    assert not (tmp_path / "out.json").exists()


def test_templated_warehouse_needs_explicit_outlets(tmp_path: Path) -> None:
    from airflow.sdk import Asset

    from numberyo_provider.operators.sync import NumberYoSyncOperator, sync_assets

    templated = NumberYoSyncOperator(
        task_id="t", warehouse="{{ var.value.wh }}", parquet_path=str(tmp_path)
    )
    assert templated.outlets == []
    explicit = NumberYoSyncOperator(
        task_id="e",
        warehouse="{{ var.value.wh }}",
        parquet_path=str(tmp_path),
        outlets=sync_assets("postgresql+psycopg://u:pw@db.example:5433/analytics"),
    )
    assert Asset("postgres://db.example:5433/analytics/numberyo/checks") in explicit.outlets
    assert all("pw" not in a.uri for a in explicit.outlets)


def test_asset_uris_are_stable_and_credential_free(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    assert sync_asset_uris(f"duckdb:///{path}") == {
        "checks": f"duckdb://{path}/numberyo/checks",
        "hlr_results": f"duckdb://{path}/numberyo/hlr_results",
        "verify_results": f"duckdb://{path}/numberyo/verify_results",
        "other_results": f"duckdb://{path}/numberyo/other_results",
    }
    pg = sync_asset_uris("postgresql+psycopg://user:secret@db:5432/an")
    assert pg["checks"] == "postgres://db:5432/an/numberyo/checks"
    assert sync_asset_uris("postgresql://u@db/an") == sync_asset_uris(
        "postgresql+psycopg://v:x@db:5432/an"
    )
    location = warehouse_location("postgresql+psycopg://user:secret@db/an")
    assert location.namespace == "postgres://db:5432"


def test_openlineage_facets(tmp_path: Path) -> None:
    """The names without a DAG run (tests/test_lineage.py proves them through the provider)."""
    from numberyo_provider.operators.sync import NumberYoSyncOperator

    op = NumberYoSyncOperator(
        task_id="s", warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}", parquet_path=str(tmp_path)
    )
    facets = op.get_openlineage_facets_on_complete(None)
    try:
        import airflow.providers.openlineage  # noqa: F401
    except ImportError:
        assert facets is None  # the provider is optional
        return
    assert {d.name for d in facets.outputs} == {
        "w.numberyo.checks",
        "w.numberyo.hlr_results",
        "w.numberyo.verify_results",
        "w.numberyo.other_results",
        *(str(tmp_path / t) for t in ("checks", "hlr_results", "verify_results", "other_results")),
    }
    assert [(d.namespace, d.name) for d in facets.inputs] == [
        ("https://www.numberyo.tech", "/api/checks")
    ]


def test_on_kill_sets_the_cancel_event(tmp_path: Path) -> None:
    from numberyo_provider.operators.sync import NumberYoSyncOperator

    op = NumberYoSyncOperator(
        task_id="k", warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}", parquet_path=str(tmp_path)
    )
    op.on_kill()
    assert op._cancel.is_set()
