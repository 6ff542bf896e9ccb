"""Lineage proven on the real OpenLineage provider: a real ``dag.test()`` run, in its own process
(the provider reads its transport when Airflow loads its plugins), with the provider's file
transport; the test reads the events it wrote and checks every input and output dataset.

Names follow the conventions in :mod:`numberyo_provider.lineage` (OpenLineage naming spec).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest

from numberyo_provider.lineage import (
    DatasetName,
    api_dataset,
    landing_datasets,
    source_datasets,
    table_dataset,
    warehouse_datasets,
)
from numberyo_provider.schema import DATA_TABLES

REPO = Path(__file__).resolve().parents[1]

DAG = """
import os
from datetime import datetime, timezone

from airflow.sdk import DAG

from numberyo_provider.operators.check import NumberYoCreateChecksOperator
from numberyo_provider.operators.sync import NumberYoSyncOperator

with DAG(
    "numberyo_lineage_test",
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
) as dag:
    check = NumberYoCreateChecksOperator(
        task_id="check",
        source_url=os.environ["NYT_SOURCE"],
        table="contacts",
        column="phone",
        check_type="HLR",
        default_region="BE",
        warehouse=os.environ["NYT_WAREHOUSE"],
        parquet_path=os.environ["NYT_LANDING"] + "/checks",
    )
    sync = NumberYoSyncOperator(
        task_id="sync",
        warehouse=os.environ["NYT_WAREHOUSE"],
        parquet_path=os.environ["NYT_LANDING"] + "/{{ dag.dag_id }}",
        concurrency=2,
    )
    check >> sync
"""

RUNNER = """
import runpy, sys
run = runpy.run_path(sys.argv[1])["dag"].test()
state = getattr(run.state, "value", run.state)
print("STATE", state)
sys.exit(0 if state == "success" else 1)
"""


def run_dag_with_openlineage(
    tmp_path: Path, server: Any, warehouse: str
) -> tuple[list[dict[str, Any]], Path, Path]:
    """Run the DAG in a subprocess with the provider's file transport; its COMPLETE events."""
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "lineage_dag.py").write_text(DAG)
    source = tmp_path / "crm.duckdb"
    con = duckdb.connect(str(source))
    con.execute("CREATE TABLE contacts (name VARCHAR, phone VARCHAR)")
    con.execute("INSERT INTO contacts VALUES ('Ann', '+32 470 12 34 56'), ('Bo', 'n/a')")
    con.close()
    events = tmp_path / "openlineage.jsonl"
    landing = tmp_path / "landing"
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "numberyo-tests",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [{"name": "lineage-tests", "classpath": local, "kwargs": {"path": str(folder)}}]
        ),
        "AIRFLOW_CONN_NUMBERYO_DEFAULT": json.dumps(
            {"conn_type": "numberyo", "host": server.url, "password": server.token}
        ),
        "NYT_SOURCE": f"duckdb:///{source}",
        "NYT_WAREHOUSE": warehouse,
        "NYT_LANDING": str(landing),
    }
    env.pop("AIRFLOW__OPENLINEAGE__DISABLED", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RUNNER), str(folder / "lineage_dag.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert events.exists(), "the OpenLineage file transport wrote nothing:\n" + done.stderr[-3000:]
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    complete = [e for e in lines if e.get("eventType") == "COMPLETE"]
    return complete, source, landing


def _datasets(event: dict[str, Any], side: str) -> set[DatasetName]:
    return {DatasetName(d["namespace"], d["name"]) for d in event.get(side) or []}


def _event(events: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    [event] = [e for e in events if e["job"]["name"] == f"numberyo_lineage_test.{task_id}"]
    return event


def assert_lineage(
    events: list[dict[str, Any]], server: Any, warehouse: str, source: Path, landing: Path
) -> None:
    from numberyo_provider.schema import (
        CHECK_REQUESTS,
        CHECKS,
        HLR_RESULTS,
        REJECTED_NUMBERS,
    )

    api = api_dataset(server.url)
    assert api == DatasetName(server.url, "/api/checks")
    check = _event(events, "check")
    assert _datasets(check, "inputs") == {
        DatasetName(f"duckdb://{source}", "crm.main.contacts"),
        api,
    }
    landed = [CHECKS, HLR_RESULTS]
    assert _datasets(check, "outputs") == {
        api,  # the checks it created in the account, which the sync reads back
        *{DatasetName("file", str(landing / "checks" / t.name)) for t in landed},
        *warehouse_datasets(warehouse, [*landed, CHECK_REQUESTS, REJECTED_NUMBERS]),
    }
    sync = _event(events, "sync")
    assert _datasets(sync, "inputs") == {api}
    assert _datasets(sync, "outputs") == {
        *{
            DatasetName("file", str(landing / "numberyo_lineage_test" / t.name))
            for t in DATA_TABLES
        },
        *warehouse_datasets(warehouse, DATA_TABLES),
    }


@pytest.mark.slow
@pytest.mark.airflow_db
def test_sync_and_check_lineage_on_duckdb(
    airflow_db: Path, numberyo_simulator: Any, tmp_path: Path
) -> None:
    numberyo_simulator.sim.seed_checks(5)
    wh_path = tmp_path / "wh.duckdb"
    warehouse = f"duckdb:///{wh_path}"
    events, source, landing = run_dag_with_openlineage(tmp_path, numberyo_simulator, warehouse)
    assert_lineage(events, numberyo_simulator, warehouse, source, landing)
    # The DuckDB names, spelled out: namespace duckdb://<absolute path>, name catalog.schema.table
    # (the catalog is the file's stem), as OpenLineage's dbt integration names DuckDB tables.
    outputs = _datasets(_event(events, "sync"), "outputs")
    assert DatasetName(f"duckdb://{wh_path}", "wh.numberyo.checks") in outputs


@pytest.mark.slow
@pytest.mark.airflow_db
@pytest.mark.postgres
def test_sync_and_check_lineage_on_postgres(
    airflow_db: Path, numberyo_simulator: Any, tmp_path: Path, postgres_url: str
) -> None:
    import sqlalchemy as sa

    numberyo_simulator.sim.seed_checks(5)
    url = sa.engine.make_url(postgres_url).set(password="pw-never-in-lineage")
    warehouse = url.render_as_string(hide_password=False)
    events, source, landing = run_dag_with_openlineage(tmp_path, numberyo_simulator, warehouse)
    assert_lineage(events, numberyo_simulator, warehouse, source, landing)
    outputs = _datasets(_event(events, "sync"), "outputs")
    assert (
        DatasetName(f"postgres://{url.host}:{url.port or 5432}", f"{url.database}.numberyo.checks")
        in outputs
    )
    assert "pw-never-in-lineage" not in json.dumps(events)


def test_names_follow_the_openlineage_conventions(tmp_path: Path) -> None:
    """The conventions for the stores the tests above do not run (S3, MySQL, a query)."""
    from openlineage.client.naming.dataset import S3, LocalFileSystem, MySQL, Postgres

    [s3] = landing_datasets("s3://bucket/some/prefix/", DATA_TABLES[:1])
    expected = S3(bucket_name="bucket", object_key="some/prefix/checks")
    assert (s3.namespace, s3.name) == (expected.get_namespace(), expected.get_name())
    [local] = landing_datasets(str(tmp_path / "land"), DATA_TABLES[:1])
    expected_local = LocalFileSystem(path=str(tmp_path / "land" / "checks"))
    assert (local.namespace, local.name) == (
        expected_local.get_namespace(),
        expected_local.get_name(),
    )
    [my] = warehouse_datasets("mysql+pymysql://u:secret@db.example/analytics", DATA_TABLES[:1])
    expected_my = MySQL(
        host="db.example", port="3306", database="analytics", table="numberyo_checks"
    )
    assert (my.namespace, my.name) == (expected_my.get_namespace(), expected_my.get_name())
    pg = table_dataset("postgresql+psycopg://u:secret@db:5433/crm", "contacts")
    expected_pg = Postgres(
        host="db", port="5433", database="crm", schema="public", table="contacts"
    )
    assert (pg.namespace, pg.name) == (expected_pg.get_namespace(), expected_pg.get_name())
    # A query: the tables it reads, through the OpenLineage SQL parser.
    found = source_datasets(
        "postgresql://u@db/crm",
        table=None,
        db_schema=None,
        sql="SELECT c.phone FROM sales.contacts c JOIN leads l ON l.id = c.id",
    )
    assert found == sorted(
        [
            DatasetName("postgres://db:5432", "crm.sales.contacts"),
            DatasetName("postgres://db:5432", "crm.public.leads"),
        ]
    )
    assert (
        source_datasets("postgresql://u@db/crm", table=None, db_schema=None, sql="nonsense(") == []
    )
    assert api_dataset("https://user:pw@api.example:8443/v2/") == DatasetName(
        "https://api.example:8443", "/v2/api/checks"
    )


def test_plan_only_reads_the_source_and_writes_nothing(tmp_path: Path) -> None:
    from numberyo_provider.operators.check import NumberYoCreateChecksOperator

    op = NumberYoCreateChecksOperator(
        task_id="plan",
        source_url=f"duckdb:///{tmp_path / 'crm.duckdb'}",
        table="contacts",
        column="phone",
        warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
        parquet_path=str(tmp_path / "landing"),
        plan_only=True,
    )
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        (f"duckdb://{tmp_path / 'crm.duckdb'}", "crm.main.contacts")
    ]
    assert lineage.outputs == []


def test_source_connection_and_load_operator_lineage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source given as an Airflow connection is named from it (never with its password); the
    load task of a sharded run reads the landing and writes the five tables."""
    from numberyo_provider.operators.check import (
        NumberYoCreateChecksOperator,
        NumberYoLoadLandedOperator,
    )

    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "crm.example",
                "port": 6543,
                "schema": "crm",
                "login": "u",
                "password": "pw-secret",
            }
        ),
    )
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    check = NumberYoCreateChecksOperator(
        task_id="c",
        source_conn_id="crm",
        table="contacts",
        schema="sales",
        column="phone",
        check_type="verify",
        warehouse=warehouse,
        parquet_path="s3://bucket/landing",
        load=False,
    )
    lineage = check.get_openlineage_facets_on_complete(None)
    api = ("https://www.numberyo.tech", "/api/checks")
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("postgres://crm.example:6543", "crm.sales.contacts"),
        api,
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        api,
        ("s3://bucket", "landing/checks"),
        ("s3://bucket", "landing/verify_results"),
    ]  # load=False: the shard only lands
    assert "pw-secret" not in repr(lineage)
    load = NumberYoLoadLandedOperator(
        task_id="l", check_task_id="c", warehouse=warehouse, parquet_path="s3://bucket/landing"
    )
    loaded = load.get_openlineage_facets_on_complete(None)
    assert {d.name for d in loaded.inputs} == {
        "landing/checks",
        "landing/hlr_results",
        "landing/verify_results",
        "landing/other_results",
        "/api/checks",
    }
    assert {d.name for d in loaded.outputs} == {
        f"wh.numberyo.{t}"
        for t in (
            "checks",
            "hlr_results",
            "verify_results",
            "other_results",
            "check_requests",
            "rejected_numbers",
        )
    }


@pytest.mark.parametrize(
    "profile",
    [
        {"type": "duckdb", "path": "/data/warehouse.duckdb"},
        {"type": "duckdb", "path": "/data/wh.2026.duckdb"},
        {"type": "postgres", "host": "db.example", "port": 5433, "dbname": "analytics"},
    ],
)
def test_dbt_ol_names_the_warehouse_tables_as_we_do(profile: dict[str, Any]) -> None:
    """dbt runs on these tables (its sources are schema `numberyo`): OpenLineage's own dbt
    integration must name them as our sync does, or the lineage graph breaks between the two."""
    from dbt.adapters.duckdb.credentials import DuckDBCredentials
    from openlineage.common.provider.dbt.processor import DbtArtifactProcessor

    processor = DbtArtifactProcessor(producer="test", job_namespace="test")
    processor.extract_adapter_type(profile)
    namespace = processor.extract_namespace(profile)
    if profile["type"] == "duckdb":
        url = f"duckdb:///{profile['path']}"
        database = DuckDBCredentials.path_derived_database_name(profile["path"])
    else:
        url = f"postgresql+psycopg://u:pw@{profile['host']}:{profile['port']}/{profile['dbname']}"
        database = profile["dbname"]
    name = processor._format_dataset_name(database, "numberyo", "checks")
    [ours] = warehouse_datasets(url, DATA_TABLES[:1])
    assert (ours.namespace, ours.name) == (namespace, name)
