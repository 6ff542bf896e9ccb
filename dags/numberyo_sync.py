"""Example DAG ``numberyo_sync``: keep the warehouse's copy of the NumberYo check history current.

``wait_for_new_checks`` (deferrable sensor: one free ``GET /api/checks?page=1`` per poll, in the
triggerer, no worker slot) -> ``sync`` (incremental: only checks newer than the watermark, landed
as Parquet, then loaded in one transaction) -> the Assets of ``checks``, ``hlr_results`` and
``verify_results`` are updated, which schedules the ``numberyo_dbt`` DAG.

It runs ``@continuous`` with one active run: a run waits (deferred, for free) until the account
has a check the warehouse does not hold, syncs it, and the next run starts waiting. A run whose
sensor sees nothing new for ``SENSOR_TIMEOUT`` fails, as a signal that the account went quiet; the
next run starts at once.

Configuration, read when the DAG file is parsed (the same variables as the other example DAGs):

- ``NUMBERYO_WAREHOUSE_URL``: ``duckdb:///path.duckdb`` or a SQLAlchemy URL; default
  ``duckdb:///<AIRFLOW_HOME>/warehouse.duckdb``.
- ``NUMBERYO_PARQUET_PATH``: landing directory or ``s3://bucket/prefix``; default
  ``<AIRFLOW_HOME>/numberyo-parquet``.
- ``NUMBERYO_CONN_ID``: the ``numberyo`` connection; default ``numberyo_default``.

The Params below default to those values. A manual run may override them, but the Assets this DAG
updates are those of the configured warehouse (they must be known when the file is parsed), so
override ``warehouse`` only for one-off runs into a scratch warehouse.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from numberyo_provider.operators.sync import NumberYoSyncOperator, sync_assets
from numberyo_provider.sensors.new_checks import NumberYoNewChecksSensor

import numberyo_settings

WAREHOUSE = numberyo_settings.warehouse_url()
PARQUET_PATH = numberyo_settings.parquet_path()
CONN_ID = numberyo_settings.conn_id()

#: How often the sensor asks the API for page 1 (a free request).
POLL_INTERVAL = timedelta(minutes=5)
#: How long one run waits for a new check before it fails.
SENSOR_TIMEOUT = timedelta(days=7)

with DAG(
    dag_id="numberyo_sync",
    description="Sync the NumberYo check history into the warehouse when new checks appear",
    schedule="@continuous",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["numberyo", "example"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "numberyo_conn_id": Param(CONN_ID, type="string", description="The numberyo connection"),
        "warehouse": Param(
            WAREHOUSE,
            type="string",
            description="duckdb:///path.duckdb or a SQLAlchemy URL (Assets follow the default)",
        ),
        "parquet_path": Param(
            PARQUET_PATH, type="string", description="Landing directory or s3://bucket/prefix"
        ),
        "concurrency": Param(
            8, type="integer", minimum=1, maximum=64, description="Parallel API requests"
        ),
        "privacy": Param(
            "keep",
            enum=["keep", "mask", "hmac"],
            description="Phone numbers and IMSIs in the warehouse: keep, mask or hmac",
        ),
    },
) as dag:
    wait_for_new_checks = NumberYoNewChecksSensor(
        task_id="wait_for_new_checks",
        numberyo_conn_id="{{ params.numberyo_conn_id }}",
        warehouse="{{ params.warehouse }}",
        deferrable=True,
        poke_interval=POLL_INTERVAL.total_seconds(),
        timeout=SENSOR_TIMEOUT.total_seconds(),
    )

    sync = NumberYoSyncOperator(
        task_id="sync",
        numberyo_conn_id="{{ params.numberyo_conn_id }}",
        warehouse="{{ params.warehouse }}",
        parquet_path="{{ params.parquet_path }}",
        concurrency="{{ params.concurrency }}",
        privacy="{{ params.privacy }}",
        # The warehouse is a template, so the operator cannot derive its Assets: name them.
        outlets=sync_assets(WAREHOUSE),
    )

    wait_for_new_checks >> sync
