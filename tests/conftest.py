"""Shared fixtures: a throwaway PostgreSQL database per test and an isolated Airflow home.

The simulator fixtures (``numberyo_simulator``, ``numberyo_simulator_factory``) come from the
``numberyo_provider.simulator.pytest_plugin`` plugin, which the package registers for users' own
tests too.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Airflow reads its configuration at import time: point it at a private, throwaway home before any
# test module imports it, so tests never touch ~/airflow and never load the example DAGs.
# The metadata DB is always this process's own SQLite file, never one from the environment:
# `airflow_db` resets it, which must not hit a real deployment's DB, nor another pytest-xdist
# worker's (workers inherit the environment of the process that started them).
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="numberyo-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).parents[1] / "dags"))
# Airflow puts the DAG folder (a bundle's root) on sys.path before it parses or runs a DAG file
# (BundleDagBag), so the example DAGs import their configuration as `numberyo_settings`. The tests
# parse them with a plain DagBag or runpy, which do not: do it here, as Airflow does.
_DAGS = str(Path(__file__).parents[1] / "dags")
if _DAGS not in sys.path:
    sys.path.append(_DAGS)

PG_ADMIN_URL = os.environ.get(
    "NUMBERYO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("NUMBERYO_REQUIRE_POSTGRES", "") not in ("", "0", "false")


def _postgres_unavailable_reason() -> str | None:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: no usable server here
        return f"no PostgreSQL server answers at {PG_ADMIN_URL} ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture
def wh_url(tmp_path: Path) -> str:
    """A DuckDB warehouse file that does not exist yet (the first sync into it is a backfill)."""
    return f"duckdb:///{tmp_path / 'wh.duckdb'}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A landing root for one test (created by the first sync that lands there)."""
    return tmp_path / "landing"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    reason = _postgres_unavailable_reason()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(f"NUMBERYO_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(f"{reason}; set NUMBERYO_TEST_POSTGRES_URL to point at one")
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    import sqlalchemy as sa

    name = f"numberyo_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(postgres_admin_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised Airflow metadata DB (SQLite) in the private Airflow home, made once per
    process (each pytest-xdist worker has its own)."""
    from airflow.configuration import conf
    from airflow.utils import db

    url = conf.get("database", "sql_alchemy_conn")
    assert url == f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}", f"not this process's DB: {url}"
    db.resetdb()
    return _AIRFLOW_HOME


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The DuckDB file opens of the test, by thread name."""
    import threading

    from numberyo_provider.warehouse import duckdb as duckdb_warehouse

    opened: list[str] = []
    real = duckdb_warehouse.connect_with_retry

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(duckdb_warehouse, "connect_with_retry", counting)
    return opened
