"""The example DAGs' deployment defaults, read from the environment in one place.

Every writer DAG and the dbt DAG must agree on the warehouse (dbt is scheduled on that
warehouse's Assets), and docker-compose sets these variables once for all of them:
``NUMBERYO_WAREHOUSE_URL``, ``NUMBERYO_PARQUET_PATH`` and ``NUMBERYO_CONN_ID`` (the Parquet
variable's name before 0.2, ``NUMBERYO_PARQUET_DIR``, still works until 0.3, with a warning).

It is part of the examples, not of the installed package (until 0.2 it was
``numberyo_provider.settings``): copy it beside the DAGs that import it. Airflow puts the DAG
folder (the bundle's root) on ``sys.path``, so ``import numberyo_settings`` works in the DAG
processor, in tasks and in ``airflow dags test``; ``.airflowignore`` keeps it from being parsed as
a DAG file. The Parquet default comes from the package's one resolver
(:func:`numberyo_provider.config.default_parquet_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

from numberyo_provider.config import PARQUET_DIR_NAME, default_parquet_path

WAREHOUSE_ENV = "NUMBERYO_WAREHOUSE_URL"
CONN_ID_ENV = "NUMBERYO_CONN_ID"
DEFAULT_CONN_ID = "numberyo_default"
#: Not ``numberyo.duckdb``: DuckDB names the catalog after the file, which would clash with the
#: ``numberyo`` schema.
DEFAULT_WAREHOUSE_FILE = "warehouse.duckdb"


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser()


def warehouse_url() -> str:
    """``$NUMBERYO_WAREHOUSE_URL``, else a DuckDB file in the Airflow home."""
    return os.environ.get(WAREHOUSE_ENV) or f"duckdb:///{airflow_home() / DEFAULT_WAREHOUSE_FILE}"


def parquet_path() -> str:
    """The landing of :func:`warehouse_url`, by the one rule (:func:`config.default_parquet_path`):
    ``$NUMBERYO_PARQUET_PATH``, else beside the DuckDB warehouse file (in the Airflow home by
    default)."""
    url = warehouse_url()
    chosen = default_parquet_path(url)
    if chosen.startswith("./"):  # a server warehouse: keep the landing in the Airflow home
        return str(airflow_home() / PARQUET_DIR_NAME)
    return chosen


def conn_id() -> str:
    return os.environ.get(CONN_ID_ENV) or DEFAULT_CONN_ID
