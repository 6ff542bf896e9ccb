"""NumberYoNewChecksSensor and its trigger against the simulator, a real warehouse and Airflow."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_sync import sync  # type: ignore[import-not-found]
from test_sync_operator import _state, dag_from_source  # type: ignore[import-not-found]  # noqa: F401

from numberyo_provider.triggers.new_checks import NumberYoNewChecksTrigger

NUMBER = "32456789023"


@pytest.fixture
def conn(numberyo_simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NUMBERYO_DEFAULT",
        json.dumps(
            {
                "conn_type": "numberyo",
                "host": numberyo_simulator.url,
                "password": numberyo_simulator.token,
                "extra": {"max_retries": 0},
            }
        ),
    )
    return numberyo_simulator


def _first_event(trigger: NumberYoNewChecksTrigger, timeout: float = 20) -> Any:
    async def first() -> Any:
        async for event in trigger.run():
            return event
        return None

    return asyncio.run(asyncio.wait_for(first(), timeout))


def test_serialize_round_trip_without_the_token(conn: Any) -> None:
    from airflow.sdk._shared.module_loading import import_string

    trigger = NumberYoNewChecksTrigger(
        watermark_check_id=42, watermark_created_at="2025-03-30T14:21:00+00:00", poll_interval=5
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "numberyo_provider.triggers.new_checks.NumberYoNewChecksTrigger"
    assert conn.token not in json.dumps(kwargs)
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)


def test_empty_warehouse_any_check_is_new(conn: Any) -> None:
    conn.sim.seed_checks(3)
    newest = conn.sim.truth()[0]["check"]["id"]
    event = _first_event(NumberYoNewChecksTrigger(poll_interval=0.05))
    assert event.payload["status"] == "success"
    assert event.payload["newest_check_id"] == newest
    assert event.payload["account_total"] == 3


def test_waits_until_a_newer_check_appears(conn: Any) -> None:
    sim = conn.sim
    sim.seed_checks(4)
    top = sim.truth()[0]["check"]
    trigger = NumberYoNewChecksTrigger(
        watermark_check_id=top["id"], watermark_created_at=top["created_at"], poll_interval=0.05
    )
    polls = threading.Event()
    created: list[int] = []

    def hook(endpoint: str, info: Any) -> None:
        if endpoint == "list" and not polls.is_set():
            count = sum(1 for e in sim.requests() if e.endpoint == "list")
            if count >= 3:  # the trigger has polled and found nothing a few times
                polls.set()
                created.append(sim.create_check(conn.token, NUMBER, "HLR")["check"]["id"])

    sim.before_request = hook
    event = _first_event(trigger)
    assert event.payload["status"] == "success"
    assert event.payload["newest_check_id"] == created[0]
    assert event.payload["new_checks_on_first_page"] == 1


def test_bad_token_is_an_error_event(
    numberyo_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NY_BAD",
        json.dumps(
            {"conn_type": "numberyo", "host": numberyo_simulator.url, "password": "tok-bad"}
        ),
    )
    event = _first_event(NumberYoNewChecksTrigger(numberyo_conn_id="ny_bad", poll_interval=0.05))
    assert event.payload["status"] == "error"
    assert "401" in event.payload["message"] and "tok-bad" not in event.payload["message"]


def test_repeated_server_errors_end_in_an_error_event(conn: Any) -> None:
    conn.sim.seed_checks(2)
    conn.sim.fail_next(10, 503, endpoint="list")
    event = _first_event(NumberYoNewChecksTrigger(poll_interval=0.01, max_failures=3))
    assert event.payload["status"] == "error"
    assert "3 polls" in event.payload["message"] and "503" in event.payload["message"]


def test_missing_connection_is_an_error_event() -> None:
    event = _first_event(NumberYoNewChecksTrigger(numberyo_conn_id="does_not_exist"))
    assert event.payload["status"] == "error"
    assert "connection" in event.payload["message"]


@pytest.mark.airflow_db
def test_sensor_poke_follows_the_warehouse(airflow_db: Path, conn: Any, tmp_path: Path) -> None:
    from numberyo_provider.sensors.new_checks import NumberYoNewChecksSensor, read_watermark

    sim = conn.sim
    sim.seed_checks(12)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    sensor = NumberYoNewChecksSensor(task_id="s", warehouse=wh)
    assert read_watermark(wh) is None  # nothing synced yet (and no schema)
    first = sensor.poke({})  # type: ignore[arg-type]
    assert first and first.is_done  # type: ignore[union-attr]
    sync(conn, wh, tmp_path / "landing")
    assert sensor.poke({}) is False  # type: ignore[arg-type]
    new = sim.create_check(conn.token, NUMBER, "Verify")["check"]["id"]
    found = sensor.poke({})  # type: ignore[arg-type]
    assert found.xcom_value["newest_check_id"] == new  # type: ignore[union-attr]


def test_execute_complete_raises_on_error_events(tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowException

    from numberyo_provider.sensors.new_checks import NumberYoNewChecksSensor

    sensor = NumberYoNewChecksSensor(task_id="s", warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}")
    with pytest.raises(AirflowException, match="token was refused"):
        sensor.execute_complete({}, {"status": "error", "message": "the token was refused"})  # type: ignore[arg-type]
    ok = {"status": "success", "newest_check_id": 1}
    assert sensor.execute_complete({}, ok) == ok  # type: ignore[arg-type]


SENSOR_DAG = """
    import json, os
    from datetime import datetime, timezone
    from pathlib import Path

    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    from numberyo_provider.sensors.new_checks import NumberYoNewChecksSensor

    def record(event):
        Path(os.environ["NYT_OUT"]).write_text(json.dumps(event))

    with DAG(
        "numberyo_sensor_test",
        schedule=None,
        start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    ) as dag:
        wait = NumberYoNewChecksSensor(
            task_id="wait",
            warehouse=os.environ["NYT_WAREHOUSE"],
            deferrable=os.environ["NYT_DEFERRABLE"] == "1",
            poke_interval=0.1,
            timeout=30,
        )
        wait >> PythonOperator(task_id="record", python_callable=record, op_args=[wait.output])
"""


@pytest.mark.airflow_db
@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_in_a_dag_run(
    airflow_db: Path,
    conn: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dag_from_source: Callable[[str], Any],  # noqa: F811
    deferrable: bool,
) -> None:
    sim = conn.sim
    sim.seed_checks(5)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    sync(conn, wh, tmp_path / "landing")
    out = tmp_path / "event.json"
    monkeypatch.setenv("NYT_WAREHOUSE", wh)
    monkeypatch.setenv("NYT_DEFERRABLE", "1" if deferrable else "0")
    monkeypatch.setenv("NYT_OUT", str(out))
    dag = dag_from_source(SENSOR_DAG)
    new = sim.create_check(conn.token, NUMBER, "HLR")["check"]["id"]
    run = dag.test()
    assert _state(run) == "success"
    event = json.loads(out.read_text())
    assert event["status"] == "success" and event["newest_check_id"] == new
