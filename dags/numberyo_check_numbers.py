"""Example DAG ``numberyo_check_numbers``: check the phone numbers of a contacts table, sharded.

``hygiene`` (a dry run: how many values are invalid, duplicated, already checked within
``max_age_days``, and how many would be sent; nothing is sent) -> ``shard_indexes`` ->
``check_numbers`` (mapped, one task per shard: each checks the numbers of its shard and lands
Parquet only) -> ``load_checks`` (one task: loads every shard's files and the run's request
ledger in ONE commit; DuckDB has one writer) -> the Assets of ``checks``, ``hlr_results`` and
``verify_results`` are updated, which schedules ``numberyo_dbt``.

Money safety (``docs/credits-and-idempotency.md``): every POST is recorded in the request ledger
before it is sent; retrying a shard, clearing the DAG run, or running again within
``max_age_days`` never pays twice for a number. ``max_active_runs=1``: two runs at once over the
same numbers are not coordinated. ``max_credits`` / ``max_checks`` apply per shard task.

Configuration, read when the DAG file is parsed (shared with the other example DAGs):

- ``NUMBERYO_WAREHOUSE_URL``: ``duckdb:///path.duckdb`` or a SQLAlchemy URL; default
  ``duckdb:///<AIRFLOW_HOME>/warehouse.duckdb``. The request ledger defaults to
  ``<warehouse file>.ledger.sqlite`` beside a DuckDB file, to the warehouse itself on PostgreSQL.
- ``NUMBERYO_PARQUET_PATH``: landing directory or ``s3://bucket/prefix``; default
  ``<AIRFLOW_HOME>/numberyo-parquet``.
- ``NUMBERYO_CONN_ID``: the ``numberyo`` connection; default ``numberyo_default``.
- ``NUMBERYO_CONTACTS_URL``: SQLAlchemy URL of the contacts database (used when the
  ``source_conn_id`` Param is empty); default ``duckdb:///<AIRFLOW_HOME>/contacts.duckdb``.

Everything else is a Param of the run (table, column or query, check type, region, budget, shards,
what to do when credits run out).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from numberyo_provider.operators.check import (
    NumberYoCreateChecksOperator,
    NumberYoLoadLandedOperator,
)
from numberyo_provider.operators.sync import sync_assets

import numberyo_settings

WAREHOUSE = numberyo_settings.warehouse_url()
PARQUET_PATH = numberyo_settings.parquet_path()
CONN_ID = numberyo_settings.conn_id()
CONTACTS = os.environ.get("NUMBERYO_CONTACTS_URL") or (
    f"duckdb:///{numberyo_settings.airflow_home() / 'contacts.duckdb'}"
)

#: Arguments every check task shares; templated from the run's Params.
SOURCE_AND_CHECK: dict[str, Any] = {
    "numberyo_conn_id": "{{ params.numberyo_conn_id }}",
    "source_conn_id": "{{ params.source_conn_id }}",
    "source_url": "{{ params.source_url if not params.source_conn_id else None }}",
    "table": "{{ params.table if not params.sql else None }}",
    "column": "{{ params.column }}",
    "schema": "{{ params.schema }}",
    "sql": "{{ params.sql }}",
    "check_type": "{{ params.check_type }}",
    "default_region": "{{ params.default_region }}",
    "max_age_days": "{{ params.max_age_days }}",
    "force": "{{ params.force }}",
    "warehouse": "{{ params.warehouse }}",
    "parquet_path": "{{ params.parquet_path }}",
    "privacy": "{{ params.privacy }}",
}

with DAG(
    dag_id="numberyo_check_numbers",
    description="Check the phone numbers of a table with NumberYo, sharded, never paying twice",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["numberyo", "example"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "numberyo_conn_id": Param(CONN_ID, type="string", description="The numberyo connection"),
        "source_conn_id": Param(
            None,
            type=["null", "string"],
            description="Airflow connection of the contacts database (else source_url)",
        ),
        "source_url": Param(
            CONTACTS, type="string", description="SQLAlchemy URL of the contacts database"
        ),
        "table": Param("contacts", type="string", description="Table holding the numbers"),
        "column": Param("phone", type="string", description="Column holding the numbers"),
        "schema": Param(None, type=["null", "string"], description="Schema of the table"),
        "sql": Param(
            None,
            type=["null", "string"],
            description="A query returning the numbers, instead of table/column",
        ),
        "check_type": Param("HLR", enum=["HLR", "Verify"], description="Check type"),
        "default_region": Param(
            "BE",
            type=["null", "string"],
            description="ISO region of numbers written without a country code",
        ),
        "max_checks": Param(
            None, type=["null", "integer"], minimum=0, description="At most this many per shard"
        ),
        "max_credits": Param(
            None, type=["null", "number"], minimum=0, description="At most this many per shard"
        ),
        "max_age_days": Param(
            30, type="number", minimum=0, description="Reuse results newer than this"
        ),
        "force": Param(False, type="boolean", description="Check fresh numbers again too"),
        "shards": Param(
            4, type="integer", minimum=1, maximum=64, description="Parallel check tasks"
        ),
        "concurrency": Param(
            8, type="integer", minimum=1, maximum=64, description="Parallel POSTs per shard"
        ),
        "on_insufficient_credits": Param(
            "fail",
            enum=["fail", "warn", "skip"],
            description="When the account runs out of credits: fail, warn or skip the shard",
        ),
        "warehouse": Param(WAREHOUSE, type="string", description="The warehouse URL"),
        "parquet_path": Param(PARQUET_PATH, type="string", description="Landing directory"),
        "privacy": Param(
            "keep", enum=["keep", "mask", "hmac"], description="Phone numbers in the warehouse"
        ),
    },
) as dag:
    hygiene = NumberYoCreateChecksOperator(
        task_id="hygiene",
        plan_only=True,
        load=False,
        **SOURCE_AND_CHECK,
    )

    @task
    def shard_indexes(params: dict[str, Any] | None = None) -> list[int]:
        """One mapped check task per shard."""
        return list(range(int((params or {}).get("shards") or 1)))

    check_numbers = NumberYoCreateChecksOperator.partial(
        task_id="check_numbers",
        load=False,
        shards="{{ params.shards }}",
        concurrency="{{ params.concurrency }}",
        max_checks="{{ params.max_checks }}",
        max_credits="{{ params.max_credits }}",
        on_insufficient_credits="{{ params.on_insufficient_credits }}",
        **SOURCE_AND_CHECK,
    ).expand(shard_index=shard_indexes())

    load_checks = NumberYoLoadLandedOperator(
        task_id="load_checks",
        check_task_id="check_numbers",
        numberyo_conn_id="{{ params.numberyo_conn_id }}",
        warehouse="{{ params.warehouse }}",
        parquet_path="{{ params.parquet_path }}",
        privacy="{{ params.privacy }}",
        # The warehouse is a template, so the operator cannot derive its Assets: name them.
        outlets=sync_assets(WAREHOUSE),
    )

    hygiene >> check_numbers >> load_checks
