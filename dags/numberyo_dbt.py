"""Example DAG ``numberyo_dbt``: rebuild the dbt models whenever NumberYo data lands.

Scheduled on the Assets that ``numberyo_sync`` (the ``sync`` task) and ``numberyo_check_numbers``
(its load task) update: the tables ``checks``, ``hlr_results`` and ``verify_results`` of the
configured warehouse. One task runs ``dbt build`` (models and data tests) on the repository's
``dbt/`` project with dbt's ``dbtRunner``; it fails when a model or a test fails, naming them.

Configuration, read when the DAG file is parsed:

- ``NUMBERYO_WAREHOUSE_URL``: the warehouse, as for ``numberyo_sync``; default
  ``duckdb:///<AIRFLOW_HOME>/warehouse.duckdb``. A ``duckdb:///`` URL selects the dbt target
  ``duckdb`` (``NUMBERYO_DUCKDB_PATH`` is set from it); a PostgreSQL URL the target ``postgres``
  (``NUMBERYO_POSTGRES_*`` set from it; needs ``dbt-postgres``).
- ``NUMBERYO_DBT_PROJECT_DIR`` (else dbt's own ``DBT_PROJECT_DIR``, else ``../dbt`` next to this
  file's folder) and ``NUMBERYO_DBT_PROFILES_DIR`` (else ``DBT_PROFILES_DIR``, else the project).
- dbt's own ``DBT_TARGET_PATH`` / ``DBT_LOG_PATH`` move ``target/`` and ``logs/`` (needed when the
  project is mounted read-only); ``DBT_TARGET`` picks another output of the profile (required for
  a warehouse that is neither DuckDB nor PostgreSQL).

DuckDB has one writer per file: the task retries when a sync or check load holds the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from numberyo_provider.assets import sync_asset_uris

import numberyo_settings

WAREHOUSE = numberyo_settings.warehouse_url()


def dbt_project_dir() -> Path:
    """Where the dbt project is: env override, else ``dbt/`` beside the DAGs folder."""
    configured = os.environ.get("NUMBERYO_DBT_PROJECT_DIR") or os.environ.get("DBT_PROJECT_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parent.parent / "dbt"


def dbt_profiles_dir(project_dir: Path) -> Path:
    configured = os.environ.get("NUMBERYO_DBT_PROFILES_DIR") or os.environ.get("DBT_PROFILES_DIR")
    return Path(configured).expanduser() if configured else project_dir


def dbt_target_env(warehouse: str) -> tuple[str, dict[str, str], list[str]]:
    """(dbt target, environment for ``dbt/profiles.yml``, secrets to mask) for ``warehouse``."""
    from sqlalchemy.engine import make_url

    from numberyo_provider.errors import ConfigurationError

    text = warehouse.strip()
    if text.lower().startswith("duckdb:///"):
        path = text[len("duckdb:///") :]
        if path.startswith(":memory:") or path.startswith("md:"):
            raise ConfigurationError(
                f"dbt cannot build an in-memory or MotherDuck warehouse ({path!r}) with the "
                "example profile: use a DuckDB file"
            )
        return "duckdb", {"NUMBERYO_DUCKDB_PATH": os.path.abspath(path)}, []
    try:
        url = make_url(text)
    except Exception:
        raise ConfigurationError(
            "the warehouse URL is not a valid SQLAlchemy URL (not shown: it may hold a password)"
        ) from None
    if url.get_backend_name() in ("postgresql", "postgres"):
        env = {
            "NUMBERYO_POSTGRES_HOST": url.host or "127.0.0.1",
            "NUMBERYO_POSTGRES_PORT": str(url.port or 5432),
            "NUMBERYO_POSTGRES_USER": url.username or "postgres",
            "NUMBERYO_POSTGRES_PASSWORD": url.password or "",
            "NUMBERYO_POSTGRES_DB": url.database or "postgres",
        }
        return "postgres", env, [url.password] if url.password else []
    raise ConfigurationError(
        f"dbt/profiles.yml has targets for DuckDB and PostgreSQL only, not {url.get_backend_name()}"
        ": add an output for your warehouse to the profile and select it with DBT_TARGET"
    )


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set variables for dbt (its profile reads them) and restore them afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _release_duckdb() -> None:
    """Close the DuckDB file dbt-duckdb keeps open after a run (it caches one per process), so
    that nothing else in this process finds the file locked."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    env = getattr(DuckDBConnectionManager, "_ENV", None)
    if env is None:
        return
    try:
        env.close()
    finally:
        DuckDBConnectionManager.close_all_connections()


with DAG(
    dag_id="numberyo_dbt",
    description="dbt build of the NumberYo models when the synced tables change",
    schedule=[Asset(uri) for uri in sync_asset_uris(WAREHOUSE).values()],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["numberyo", "example", "dbt"],
    doc_md=__doc__,
    params={
        "warehouse": Param(WAREHOUSE, type="string", description="The warehouse dbt builds on"),
        "select": Param("", type="string", description="dbt --select (empty: the whole project)"),
        "full_refresh": Param(False, type="boolean", description="dbt --full-refresh"),
    },
) as dag:

    @task(retries=3, retry_delay=timedelta(minutes=1))
    def dbt_build(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run ``dbt build`` in-process; return what was built and tested."""
        from airflow.sdk.exceptions import AirflowException
        from airflow.sdk.log import mask_secret

        try:
            from dbt.cli.main import dbtRunner
        except ImportError:
            raise AirflowException(
                "dbt is not installed: pip install 'airflow-provider-numberyo[dbt]'"
            ) from None

        params = params or {}
        project = dbt_project_dir()
        profiles = dbt_profiles_dir(project)
        if not (project / "dbt_project.yml").is_file():
            raise AirflowException(
                f"no dbt project at {project}: set NUMBERYO_DBT_PROJECT_DIR to the folder that "
                "holds dbt_project.yml"
            )
        if not (profiles / "profiles.yml").is_file():
            raise AirflowException(f"no profiles.yml in {profiles}: set NUMBERYO_DBT_PROFILES_DIR")
        from numberyo_provider.errors import ConfigurationError

        chosen = os.environ.get("DBT_TARGET")
        try:
            target, env, secrets = dbt_target_env(str(params.get("warehouse") or WAREHOUSE))
        except ConfigurationError:
            if not chosen:  # a warehouse the example profile has no output for
                raise
            target, env, secrets = chosen, {}, []
        for secret in secrets:
            mask_secret(secret)
        args = [
            "build",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(profiles),
            "--target",
            chosen or target,
        ]
        if params.get("select"):
            args += ["--select", str(params["select"])]
        if params.get("full_refresh"):
            args.append("--full-refresh")
        with _environ({"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env}):
            try:
                result = dbtRunner().invoke(args)
            finally:
                _release_duckdb()
        nodes: list[Any] = list(getattr(result.result, "results", None) or [])
        statuses: dict[str, int] = {}
        for node in nodes:
            status = str(node.status)
            statuses[status] = statuses.get(status, 0) + 1
        failed = [
            f"{node.node.unique_id}: {node.status}"
            for node in nodes
            if str(node.status) in ("error", "fail")
        ]
        if not result.success:
            reason = "; ".join(failed) or (
                f"{type(result.exception).__name__}: {result.exception}"
                if result.exception is not None
                else "see the dbt log above"
            )
            raise AirflowException(f"dbt build failed: {reason}")
        return {
            "target": target,
            "project_dir": str(project),
            "nodes": len(nodes),
            "statuses": statuses,
            "models": sorted(n.node.name for n in nodes if n.node.resource_type == "model"),
        }

    dbt_build()
