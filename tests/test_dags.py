"""The example DAGs in ``dags/``: they import cleanly, are wired to each other through Assets, and
really run (``dag.test()``) against the simulator over HTTP, a DuckDB file (or PostgreSQL) and
the repository's dbt project.

The DAG files read their configuration (warehouse, Parquet directory, connection id) from the
environment when parsed, so each test sets it first and parses a fresh ``DagBag``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

from numberyo_provider import schema
from numberyo_provider.assets import sync_asset_uris

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
SYNC_DAG, CHECK_DAG, DBT_DAG = "numberyo_sync", "numberyo_check_numbers", "numberyo_dbt"
EXPECTED_TASKS = {
    SYNC_DAG: {"wait_for_new_checks", "sync"},
    CHECK_DAG: {"hygiene", "shard_indexes", "check_numbers", "load_checks"},
    DBT_DAG: {"dbt_build"},
}
MART = "numberyo_number_status"


def _dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def _load_dag_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_test_{name}", DAGS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def dag_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Configuration of the DAG files pointing into ``tmp_path``; dbt's output there too."""
    values = {
        "NUMBERYO_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'wh.duckdb'}",
        "NUMBERYO_PARQUET_PATH": str(tmp_path / "parquet"),
        "NUMBERYO_CONTACTS_URL": f"duckdb:///{tmp_path / 'contacts.duckdb'}",
        "NUMBERYO_CONN_ID": "numberyo_default",
        "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    for key in (
        "NUMBERYO_DBT_PROJECT_DIR",
        "NUMBERYO_DBT_PROFILES_DIR",
        "DBT_PROJECT_DIR",
        "DBT_PROFILES_DIR",
        "DBT_TARGET",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def simulator_conn(
    numberyo_simulator_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A simulator with 35 checks of history, as the ``numberyo_default`` connection (JSON)."""
    server = numberyo_simulator_factory(seed_checks=35, credits=100)
    conn = {"conn_type": "numberyo", "host": server.url, "password": server.token}
    monkeypatch.setenv("AIRFLOW_CONN_NUMBERYO_DEFAULT", json.dumps(conn))
    yield server


def _no_retries(dag: Any) -> Any:
    """A failing task must fail the test now, not after the DAG's retry delays."""
    for task in dag.tasks:
        task.retries = 0
    return dag


def _numbers_checked(truth: list[dict[str, Any]]) -> set[str]:
    """Every number the simulator's checks answered for (digits, as the mart keys them)."""
    return {r["number_requested"] for t in truth for r in (t["results"] or {}).get("results", [])}


def _warehouse_path(env: dict[str, str]) -> str:
    return env["NUMBERYO_WAREHOUSE_URL"].removeprefix("duckdb:///")


def _query(path: str, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(path, read_only=True)
    try:
        db = con.execute("SELECT current_database()").fetchall()[0][0]
        return con.execute(sql.format(nb=f'"{db}".numberyo', an=f'"{db}".analytics')).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# Parsing and wiring (fast)
# --------------------------------------------------------------------------------------------


def test_every_dag_imports_without_errors(dag_env: dict[str, str]) -> None:
    bag = _dagbag()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == set(EXPECTED_TASKS)
    for dag_id, tasks in EXPECTED_TASKS.items():
        dag = bag.dags[dag_id]
        assert set(dag.task_ids) == tasks, dag_id
        assert "numberyo" in dag.tags
        assert dag.max_active_runs == 1, f"{dag_id}: runs of one warehouse must not overlap"


def test_airflow_parses_the_dags_with_their_settings_module_beside_them(
    dag_env: dict[str, str],
) -> None:
    """As the DAG processor and ``airflow dags test`` do (a ``BundleDagBag`` rooted at the DAGs
    folder, which Airflow puts on ``sys.path``), in a fresh interpreter without the tests' own
    ``sys.path`` entry: ``import numberyo_settings`` resolves, and ``.airflowignore`` keeps the
    settings module from being parsed as a DAG file."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from airflow.dag_processing.dagbag import BundleDagBag\n"
        f"dags = Path({str(DAGS)!r})\n"
        "assert str(dags) not in sys.path\n"
        "bag = BundleDagBag(dag_folder=str(dags), bundle_path=dags)\n"
        "errors = {str(k): str(v) for k, v in bag.import_errors.items()}\n"
        "files = sorted(Path(f).name for f in bag.file_last_changed)\n"
        "print(json.dumps({'errors': errors, 'dags': sorted(bag.dag_ids), 'files': files}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    parsed = json.loads(out.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert parsed["dags"] == sorted(EXPECTED_TASKS)
    assert "numberyo_settings.py" not in parsed["files"]
    assert "numberyo_sync.py" in parsed["files"]


def test_the_example_settings_are_not_in_the_installed_package() -> None:
    import numberyo_provider

    assert not (Path(numberyo_provider.__file__).parent / "settings.py").exists()
    assert (DAGS / "numberyo_settings.py").is_file()


def test_writers_update_exactly_the_assets_the_dbt_dag_waits_for(dag_env: dict[str, str]) -> None:
    bag = _dagbag()
    expected = set(sync_asset_uris(dag_env["NUMBERYO_WAREHOUSE_URL"]).values())
    assert len(expected) == len(schema.DATA_TABLES)

    def outlet_uris(dag_id: str, task_id: str) -> set[str]:
        return {a.uri for a in bag.dags[dag_id].get_task(task_id).outlets}

    from airflow.sdk import Asset

    def normalised(uris: set[str]) -> set[str]:
        return {Asset(u).uri for u in uris}

    assert outlet_uris(SYNC_DAG, "sync") == normalised(expected)
    assert outlet_uris(CHECK_DAG, "load_checks") == normalised(expected)
    condition = bag.dags[DBT_DAG].timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"
    assert {a.uri for a in condition.objects} == normalised(expected)


def test_sync_dag_defers_and_takes_its_settings_from_the_environment(
    dag_env: dict[str, str],
) -> None:
    dag = _dagbag().dags[SYNC_DAG]
    sensor = dag.get_task("wait_for_new_checks")
    assert sensor.deferrable is True
    assert dag.params["warehouse"] == dag_env["NUMBERYO_WAREHOUSE_URL"]
    assert dag.params["parquet_path"] == dag_env["NUMBERYO_PARQUET_PATH"]
    assert dag.get_task("sync").upstream_task_ids == {"wait_for_new_checks"}


def test_default_warehouse_is_in_airflow_home(
    dag_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NUMBERYO_WAREHOUSE_URL")
    monkeypatch.delenv("NUMBERYO_PARQUET_PATH")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    module = _load_dag_module(SYNC_DAG)
    home = tmp_path / "home"
    assert (
        f"duckdb:///{home / 'warehouse.duckdb'}",
        str(home / "numberyo-parquet"),
    ) == (module.WAREHOUSE, module.PARQUET_PATH)
    # The dbt DAG is scheduled on the Assets of this default: every DAG must share it.
    assert _load_dag_module(DBT_DAG).WAREHOUSE == module.WAREHOUSE
    assert _load_dag_module(CHECK_DAG).WAREHOUSE == module.WAREHOUSE


def test_the_old_parquet_variable_still_configures_the_dags(
    dag_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``NUMBERYO_PARQUET_DIR`` (renamed ``NUMBERYO_PARQUET_PATH`` in 0.2) works until 0.3."""
    monkeypatch.delenv("NUMBERYO_PARQUET_PATH")
    monkeypatch.setenv("NUMBERYO_PARQUET_DIR", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="use NUMBERYO_PARQUET_PATH"):
        module = _load_dag_module(SYNC_DAG)
    assert str(tmp_path / "old") == module.PARQUET_PATH


def test_dbt_target_follows_the_warehouse_url(tmp_path: Path) -> None:
    from numberyo_provider.errors import ConfigurationError

    dbt_dag = _load_dag_module(DBT_DAG)
    target, env, secrets = dbt_dag.dbt_target_env(f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert (target, env, secrets) == (
        "duckdb",
        {"NUMBERYO_DUCKDB_PATH": str(tmp_path / "w.duckdb")},
        [],
    )
    target, env, secrets = dbt_dag.dbt_target_env(
        "postgresql+psycopg://analyst:s3cret@db.internal:6543/crm"
    )
    assert target == "postgres"
    assert env == {
        "NUMBERYO_POSTGRES_HOST": "db.internal",
        "NUMBERYO_POSTGRES_PORT": "6543",
        "NUMBERYO_POSTGRES_USER": "analyst",
        "NUMBERYO_POSTGRES_PASSWORD": "s3cret",
        "NUMBERYO_POSTGRES_DB": "crm",
    }
    assert secrets == ["s3cret"]
    with pytest.raises(ConfigurationError, match="DuckDB and PostgreSQL only"):
        dbt_dag.dbt_target_env("snowflake://u:p@account/db")
    with pytest.raises(ConfigurationError, match="in-memory"):
        dbt_dag.dbt_target_env("duckdb:///:memory:")


def test_dbt_project_is_found_beside_the_dags_folder_or_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in (
        "NUMBERYO_DBT_PROJECT_DIR",
        "DBT_PROJECT_DIR",
        "NUMBERYO_DBT_PROFILES_DIR",
        "DBT_PROFILES_DIR",
    ):
        monkeypatch.delenv(key, raising=False)
    dbt_dag = _load_dag_module(DBT_DAG)
    assert dbt_dag.dbt_project_dir() == REPO / "dbt"
    assert (dbt_dag.dbt_project_dir() / "dbt_project.yml").is_file()
    assert dbt_dag.dbt_profiles_dir(REPO / "dbt") == REPO / "dbt"
    monkeypatch.setenv("DBT_PROJECT_DIR", "/opt/airflow/dbt")  # what docker-compose sets
    assert dbt_dag.dbt_project_dir() == Path("/opt/airflow/dbt")
    monkeypatch.setenv("NUMBERYO_DBT_PROJECT_DIR", str(tmp_path))  # ours wins
    monkeypatch.setenv("NUMBERYO_DBT_PROFILES_DIR", str(tmp_path / "p"))
    assert dbt_dag.dbt_project_dir() == tmp_path
    assert dbt_dag.dbt_profiles_dir(tmp_path) == tmp_path / "p"


# --------------------------------------------------------------------------------------------
# Real runs: dag.test() against the simulator
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.airflow_db
def test_sync_then_dbt_dags_fill_the_warehouse_and_build_the_models(
    airflow_db: Path, dag_env: dict[str, str], simulator_conn: Any
) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    bag = _dagbag()
    run = _no_retries(bag.dags[SYNC_DAG]).test()
    assert run.state == DagRunState.SUCCESS

    truth = simulator_conn.sim.truth()
    path = _warehouse_path(dag_env)
    loaded = _query(path, "SELECT check_id, type FROM {nb}.checks ORDER BY check_id")
    assert loaded == sorted((t["check"]["id"], t["check"]["type"]) for t in truth)
    per_type = {"HLR": 0, "Verify": 0}
    for t in truth:
        per_type[t["check"]["type"]] += len((t["results"] or {}).get("results", []))
    assert _query(path, "SELECT count(*) FROM {nb}.hlr_results")[0][0] == per_type["HLR"]
    assert _query(path, "SELECT count(*) FROM {nb}.verify_results")[0][0] == per_type["Verify"]
    newest = max(t["check"]["id"] for t in truth)
    assert _query(path, "SELECT watermark_check_id FROM {nb}._sync_state")[0][0] == newest
    assert list(Path(dag_env["NUMBERYO_PARQUET_PATH"]).rglob("*.parquet")), "nothing landed"
    assert simulator_conn.sim.charges() == [], "a sync must never create (pay for) a check"

    # The sync's Assets got an event: this is what schedules numberyo_dbt.
    with create_session() as session:
        uris = {e.asset.uri for e in session.query(AssetEvent).all()}
    from airflow.sdk import Asset

    assert {
        Asset(u).uri for u in sync_asset_uris(dag_env["NUMBERYO_WAREHOUSE_URL"]).values()
    } <= uris

    run = _no_retries(bag.dags[DBT_DAG]).test()
    assert run.state == DagRunState.SUCCESS
    numbers = _numbers_checked(truth)
    mart = _query(path, f"SELECT phone_number FROM {{an}}.{MART}")
    assert sorted(r[0] for r in mart) == sorted(numbers)
    models = {
        r[0]
        for r in _query(
            path,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'",
        )
    }
    assert {
        MART,
        "stg_numberyo__checks",
        "stg_numberyo__hlr_results",
        "stg_numberyo__verify_results",
    } <= models
    # dbt released the file: another process can write it at once.
    con = duckdb.connect(path)
    con.close()


@pytest.mark.slow
@pytest.mark.airflow_db
def test_dbt_dag_fails_clearly_without_a_project(
    airflow_db: Path,
    dag_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    missing = tmp_path / "no-such-project"
    monkeypatch.setenv("NUMBERYO_DBT_PROJECT_DIR", str(missing))
    run = _no_retries(_dagbag().dags[DBT_DAG]).test()
    assert run.state == DagRunState.FAILED
    (ti,) = run.get_task_instances()
    assert ti.state == TaskInstanceState.FAILED
    out, err = capfd.readouterr()
    assert f"no dbt project at {missing}" in out + err


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.airflow_db
def test_dbt_dag_builds_on_postgres(
    airflow_db: Path, dag_env: dict[str, str], simulator_conn: Any, postgres_url: str
) -> None:
    from airflow.utils.state import DagRunState

    from numberyo_provider.sync import run_sync

    run_sync(
        warehouse=postgres_url,
        parquet_path=dag_env["NUMBERYO_PARQUET_PATH"],
        token=simulator_conn.token,
        base_url=simulator_conn.url,
    )
    run = _no_retries(_dagbag().dags[DBT_DAG]).test(run_conf={"warehouse": postgres_url})
    assert run.state == DagRunState.SUCCESS

    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            mart = conn.execute(sa.text(f"SELECT phone_number FROM analytics.{MART}")).all()
    finally:
        engine.dispose()
    assert sorted(r[0] for r in mart) == sorted(_numbers_checked(simulator_conn.sim.truth()))
