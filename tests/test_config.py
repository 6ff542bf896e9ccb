"""One configuration resolver (``numberyo_provider.config``) for the CLI, operators and DAGs.

Issue: the operators took the HMAC secret from the connection before the environment while
``numberyo sync`` did the opposite, and the operators ignored ``NUMBERYO_PRIVACY_MODE``; the same
inputs gave two different pseudonyms for one number.
"""

from __future__ import annotations

import json
import runpy
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest

from numberyo_provider.api.client import DEFAULT_BASE_URL
from numberyo_provider.config import (
    default_parquet_dir,
    default_parquet_path,
    resolve_base_url,
    resolve_parquet_path,
    resolve_privacy,
    resolve_token,
)
from numberyo_provider.errors import ConfigurationError

ENV_SECRET = "e" * 32
CONN_SECRET = "c" * 32


def test_token_precedence_explicit_connection_environment() -> None:
    env = {"NUMBERYO_API_TOKEN": "from-env"}
    assert resolve_token("flag", connection="conn", environ=env) == "flag"
    assert resolve_token(None, connection="conn", environ=env) == "conn"
    assert resolve_token("  ", connection="", environ=env) == "from-env"
    assert resolve_token(environ={}, required=False) is None
    with pytest.raises(ConfigurationError, match="NUMBERYO_API_TOKEN"):
        resolve_token(environ={"NUMBERYO_API_TOKEN": " "})
    # Cleaning ("Bearer x") is the client's one rule: the resolver hands the text on as given.
    assert resolve_token("Bearer x", environ={}) == "Bearer x"


def test_base_url_precedence() -> None:
    env = {"NUMBERYO_BASE_URL": "http://env:1"}
    assert (
        resolve_base_url("http://flag:1", connection="http://c:1", environ=env) == "http://flag:1"
    )
    assert resolve_base_url(None, connection="http://c:1", environ=env) == "http://c:1"
    assert resolve_base_url(None, environ=env) == "http://env:1"
    assert resolve_base_url(environ={}) == DEFAULT_BASE_URL


def test_privacy_precedence() -> None:
    env = {"NUMBERYO_PRIVACY_MODE": "hmac", "NUMBERYO_PRIVACY_SECRET": ENV_SECRET}
    assert resolve_privacy(environ={}).mode == "keep"
    assert resolve_privacy("mask", environ=env).mode == "mask"  # explicit beats the environment
    policy = resolve_privacy(environ=env, connection_secret=CONN_SECRET)
    assert (policy.mode, policy.secret) == ("hmac", CONN_SECRET)  # connection beats environment
    assert resolve_privacy(secret="s" * 32, environ=env, connection_secret=CONN_SECRET).secret == (
        "s" * 32
    )
    assert resolve_privacy(environ=env).secret == ENV_SECRET
    asked: list[int] = []

    def lazy() -> str:
        asked.append(1)
        return CONN_SECRET

    resolve_privacy("keep", environ={}, connection_secret=lazy)
    assert asked == []  # the connection is read only when the secret matters


def test_parquet_default_sits_beside_a_duckdb_warehouse() -> None:
    assert default_parquet_path("duckdb:////data/wh.duckdb", environ={}) == "/data/numberyo-parquet"
    assert default_parquet_path("duckdb:///wh.duckdb?x=1", environ={}) == "numberyo-parquet"
    assert default_parquet_path("postgresql+psycopg://h/db", environ={}) == "./numberyo-parquet"
    env = {"NUMBERYO_PARQUET_PATH": "s3://b/p"}
    assert default_parquet_path("duckdb:////data/wh.duckdb", environ=env) == "s3://b/p"
    # Its name in 0.1, until 0.3: the same rule, with a warning that names the new one.
    with pytest.warns(DeprecationWarning) as caught:
        assert (
            default_parquet_dir("duckdb:////data/wh.duckdb", environ={}) == "/data/numberyo-parquet"
        )
    assert [str(w.message) for w in caught] == [
        "numberyo_provider.config: default_parquet_dir() is deprecated, use default_parquet_path() "
        "(renamed in 0.2; the old name goes in 0.3)"
    ]
    assert caught[0].filename == __file__


def test_the_old_parquet_variable_still_works_with_a_warning() -> None:
    """``NUMBERYO_PARQUET_DIR`` was renamed ``NUMBERYO_PARQUET_PATH`` in 0.2; read until 0.3."""
    wh = "duckdb:////data/wh.duckdb"
    with pytest.warns(DeprecationWarning) as caught:
        assert default_parquet_path(wh, environ={"NUMBERYO_PARQUET_DIR": "old"}) == "old"
    assert [str(w.message) for w in caught] == [
        "the environment variable NUMBERYO_PARQUET_DIR is deprecated, use NUMBERYO_PARQUET_PATH "
        "(renamed in 0.2; the old name stops working in 0.3)"
    ]
    assert caught[0].filename == __file__  # the warning points at the caller
    with pytest.warns(DeprecationWarning, match="NUMBERYO_PARQUET_PATH"):
        assert resolve_parquet_path(None, environ={"NUMBERYO_PARQUET_DIR": "old"}) == "old"
    # The new name wins, and the old one is not read then (no warning: this suite's filters
    # turn ours into errors); blank is not set.
    both = {"NUMBERYO_PARQUET_PATH": "new", "NUMBERYO_PARQUET_DIR": "old"}
    assert default_parquet_path(wh, environ=both) == "new"
    blank = {"NUMBERYO_PARQUET_PATH": "new", "NUMBERYO_PARQUET_DIR": "  "}
    assert default_parquet_path(wh, environ=blank) == "new"
    blank_old = {"NUMBERYO_PARQUET_DIR": " "}
    assert default_parquet_path(wh, environ=blank_old) == "/data/numberyo-parquet"


def test_parquet_path_precedence() -> None:
    env = {"NUMBERYO_PARQUET_PATH": "s3://b/p"}
    wh = "duckdb:////data/wh.duckdb"
    assert resolve_parquet_path("flag", warehouse=wh, environ=env) == "flag"
    assert resolve_parquet_path("  ", warehouse=wh, environ=env) == "s3://b/p"
    assert resolve_parquet_path(None, warehouse=wh, environ={}) == "/data/numberyo-parquet"


def _pseudonyms(warehouse: Path) -> set[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("SELECT DISTINCT phone_number FROM numberyo.checks").fetchall()
    return {str(r[0]) for r in rows}


SYNC_DAG = """
    from datetime import datetime, timezone
    from airflow.sdk import DAG
    from numberyo_provider.operators.sync import NumberYoSyncOperator

    with DAG("numberyo_config_test", schedule=None,
             start_date=datetime(2025, 1, 1, tzinfo=timezone.utc)) as dag:
        NumberYoSyncOperator(task_id="sync", warehouse="duckdb:///{warehouse}",
                             parquet_path="{landing}")
"""


@pytest.mark.slow
@pytest.mark.airflow_db
def test_the_cli_and_the_operator_resolve_the_same_policy(
    numberyo_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path
) -> None:
    """Same connection, same environment: ``numberyo sync --conn-id`` and NumberYoSyncOperator
    write the same pseudonym for every number (the connection's secret, mode from the env)."""
    numberyo_simulator.sim.seed_checks(12)
    monkeypatch.setenv(
        "AIRFLOW_CONN_NUMBERYO_DEFAULT",
        json.dumps(
            {
                "conn_type": "numberyo",
                "host": numberyo_simulator.url,
                "password": numberyo_simulator.token,
                "extra": {"privacy_secret": CONN_SECRET},
            }
        ),
    )
    monkeypatch.setenv("NUMBERYO_PRIVACY_MODE", "hmac")
    monkeypatch.setenv("NUMBERYO_PRIVACY_SECRET", ENV_SECRET)
    from numberyo_provider.cli import main

    cli_wh = tmp_path / "cli.duckdb"
    argv = ["sync", "--conn-id", "numberyo_default", "--warehouse", f"duckdb:///{cli_wh}"]
    assert main([*argv, "--parquet-path", str(tmp_path / "cli-landing"), "--no-progress"]) == 0

    folder = tmp_path / "dags"
    folder.mkdir()
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    monkeypatch.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps([{"name": "cfg", "classpath": local, "kwargs": {"path": str(folder)}}]),
    )
    op_wh = tmp_path / "op.duckdb"
    path = folder / "dag_config.py"
    path.write_text(
        textwrap.dedent(SYNC_DAG).format(warehouse=op_wh, landing=tmp_path / "op-landing")
    )
    run = runpy.run_path(str(path))["dag"].test()
    assert str(getattr(run.state, "value", run.state)) == "success"

    from numberyo_provider.privacy import PrivacyPolicy

    expected = PrivacyPolicy(mode="hmac", secret=CONN_SECRET)
    cli_numbers, op_numbers = _pseudonyms(cli_wh), _pseudonyms(op_wh)
    assert cli_numbers == op_numbers and len(cli_numbers) == 12
    assert all(n.startswith("hmac:") for n in cli_numbers)
    truth = {c["results"]["results"][0]["number_requested"] for c in numberyo_simulator.sim.truth()}
    assert cli_numbers == {expected.protect(d) for d in truth}  # the connection's secret won
