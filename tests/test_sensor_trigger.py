"""NumberYoNewChecksSensor and its trigger against the simulator, a real warehouse and Airflow."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer, Reply, Request
from test_sync import sync  # type: ignore[import-not-found]
from test_sync_operator import _state, dag_from_source  # type: ignore[import-not-found]  # noqa: F401

from numberyo_provider.triggers.new_checks import NumberYoNewChecksTrigger

NUMBER = "32456789023"


@pytest.fixture(autouse=True)
def _restore_the_secrets_masker() -> Iterator[None]:
    """Masks added here ("Bearer tok" and "tok") must not change what later tests see."""
    from airflow.sdk._shared.secrets_masker.secrets_masker import _secrets_masker

    masker = _secrets_masker()
    patterns, replacer = set(masker.patterns), masker.replacer
    yield
    masker.patterns, masker.replacer = patterns, replacer


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


async def _first(trigger: NumberYoNewChecksTrigger) -> Any:
    async for event in trigger.run():
        return event
    return None


def _first_event(trigger: NumberYoNewChecksTrigger, timeout: float = 20) -> Any:
    return asyncio.run(asyncio.wait_for(_first(trigger), timeout))


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


# --- one set of auth rules: a pasted "Bearer " works for the hook, the sensor and the trigger ----

EXACT_TOKEN = "tok-exact-42"
ONE_CHECK = {
    "checks": [{"id": 9, "type": "HLR", "created_at": "2025-03-30T14:21:00.000000Z"}],
    "pagination": {"current_page": 1, "total_pages": 1, "total": 1},
}


def _exact_bearer(req: Request) -> Reply:
    """Unlike the simulator (Laravel takes the text after the last "Bearer "), this server
    accepts exactly one header value, so "Bearer Bearer tok" is refused."""
    if req.headers.get("authorization") != f"Bearer {EXACT_TOKEN}":
        return Reply.json({"message": "Unauthenticated."}, 401)
    return Reply.json(ONE_CHECK)


@pytest.mark.parametrize(
    "password",
    [f"Bearer {EXACT_TOKEN}", f"bearer {EXACT_TOKEN}", f"  BEARER \t {EXACT_TOKEN}  "],
    ids=["Bearer", "bearer", "spaces"],
)
def test_a_pasted_bearer_prefix_works_for_the_hook_the_sensor_and_the_trigger(
    password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from numberyo_provider.hooks.numberyo import NumberYoHook
    from numberyo_provider.sensors.new_checks import NumberYoNewChecksSensor

    with HostileServer(_exact_bearer) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_NY_PASTED",
            json.dumps(
                {
                    "conn_type": "numberyo",
                    "host": server.url,
                    "password": password,
                    "extra": {"max_retries": 0},
                }
            ),
        )
        with NumberYoHook("ny_pasted").get_client() as client:
            assert client.list_checks(1).checks[0].id == 9

        async def via_async_client() -> int:
            async with await NumberYoHook("ny_pasted").aget_async_client() as client:
                return (await client.list_checks(1)).checks[0].id

        assert asyncio.run(via_async_client()) == 9
        sensor = NumberYoNewChecksSensor(
            task_id="s", numberyo_conn_id="ny_pasted", warehouse=f"duckdb:///{tmp_path / 'w.db'}"
        )
        poked = sensor.poke({})  # type: ignore[arg-type]
        event = _first_event(NumberYoNewChecksTrigger(numberyo_conn_id="ny_pasted"))
        sent = [r.headers.get("authorization") for r in server.requests]
    assert event.payload["status"] == "success", event.payload
    # The sensor and the trigger decide by one function: the same page, the same event.
    assert poked.is_done and poked.xcom_value == event.payload  # type: ignore[union-attr]
    assert event.payload["newest_check_id"] == 9
    assert sent == [f"Bearer {EXACT_TOKEN}"] * 4
    # Airflow masks the password as stored; the hook masks the bare token as well.
    from airflow.sdk._shared.secrets_masker.secrets_masker import _secrets_masker

    assert _secrets_masker().redact(f"token {EXACT_TOKEN}.") == "token ***."


def test_a_refused_token_is_an_error_event_without_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with HostileServer(_exact_bearer) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_NY_WRONG",
            json.dumps({"conn_type": "numberyo", "host": server.url, "password": "Bearer nope-1"}),
        )
        event = _first_event(NumberYoNewChecksTrigger(numberyo_conn_id="ny_wrong"))
        assert server.count("GET") == 1  # a refused token is not polled again
    assert event.payload["status"] == "error"
    message = event.payload["message"]
    assert "401" in message and "ny_wrong" in message and "nope-1" not in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"timeout": "soon"}, "connection extra 'timeout'"),
        ({}, "base_url"),
    ],
)
def test_bad_connection_settings_are_one_error_event(
    extra: dict[str, Any], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = "http://127.0.0.1:9" if extra else "ftp://example.org"
    monkeypatch.setenv(
        "AIRFLOW_CONN_NY_SETTINGS",
        json.dumps({"conn_type": "numberyo", "host": host, "password": "tok", "extra": extra}),
    )
    event = _first_event(NumberYoNewChecksTrigger(numberyo_conn_id="ny_settings"))
    assert event.payload["status"] == "error"
    assert "ny_settings" in event.payload["message"] and expected in event.payload["message"]


def test_a_client_error_other_than_auth_ends_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer(lambda req: Reply.json({"message": "No such route."}, 404)) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_NY_404",
            json.dumps({"conn_type": "numberyo", "host": server.url, "password": "tok"}),
        )
        event = _first_event(NumberYoNewChecksTrigger(numberyo_conn_id="ny_404"))
        assert server.count("GET") == 1
    assert event.payload == {
        "status": "error",
        "message": "GET /api/checks?page=1 -> 404: No such route.",
    }


def test_an_unreadable_answer_counts_as_a_failed_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer(lambda req: Reply(200, b"<html>maintenance</html>")) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_NY_HTML",
            json.dumps({"conn_type": "numberyo", "host": server.url, "password": "tok"}),
        )
        trigger = NumberYoNewChecksTrigger(
            numberyo_conn_id="ny_html", poll_interval=0.01, max_failures=2
        )
        event = _first_event(trigger)
        assert server.count("GET") == 2
    assert event.payload["status"] == "error"
    assert "2 polls in a row failed" in event.payload["message"]
    assert "body is not JSON" in event.payload["message"]


# --- the triggerer's loop is never blocked ---------------------------------------------------

#: Audit events that mean the calling thread waited on the disk, the resolver or the clock.
_BLOCKING_EVENTS = frozenset(
    {"open", "import", "socket.getaddrinfo", "socket.gethostbyname", "time.sleep"}  # 3.13+: sleep
    | {"subprocess.Popen", "os.system"}
)
_loop_thread: list[int] = []  # the event loop's thread while a guard is armed
_blocking_calls: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _loop_thread and event in _BLOCKING_EVENTS and threading.get_ident() == _loop_thread[0]:
        _blocking_calls.append(f"{event} {str(args[0] if args else '')[:120]}")


sys.addaudithook(_audit)  # process-wide and permanent; a no-op unless a test arms it


def _slow_steps(
    coroutine: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> tuple[Any, list[str]]:
    """Run ``coroutine()`` in asyncio's debug mode, which reports every step that holds the loop
    longer than 50 ms; returns its result and those reports."""

    async def main() -> Any:
        asyncio.get_running_loop().slow_callback_duration = 0.05
        return await asyncio.wait_for(coroutine(), 30)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        result = asyncio.run(main(), debug=True)
    slow = [
        r.getMessage()
        for r in caplog.records
        if r.name == "asyncio"
        and " took " in r.getMessage()
        # asyncio.run's own teardown, after the coroutine has returned, is not the trigger's.
        and "shutdown_default_executor" not in r.getMessage()
    ]
    return result, slow


def _blocking_calls_on_the_loop(coroutine: Callable[[], Any]) -> tuple[Any, list[str]]:
    """Run ``coroutine()`` with the audit guard armed on the loop's thread; returns its result
    and every file open, import, DNS lookup or sleep made on that thread. (Not in debug mode:
    its tracebacks read source files.)"""

    async def main() -> Any:
        _loop_thread.append(threading.get_ident())
        try:
            return await asyncio.wait_for(coroutine(), 30)
        finally:
            _loop_thread.clear()

    _blocking_calls.clear()
    result = asyncio.run(main())
    return result, list(_blocking_calls)


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocking calls no audit event reports on Python 3.11: a sleep (3.13 reports it too, so a
    sleep may be counted twice), loading the CA bundle (tens of ms, and no file Python sees), the
    sync connection lookup."""
    from airflow.sdk import BaseHook

    def watch(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def watched_call(*args: Any, **kwargs: Any) -> Any:
            if _loop_thread and threading.get_ident() == _loop_thread[0]:
                _blocking_calls.append(name)
            return original(*args, **kwargs)

        return watched_call

    monkeypatch.setattr(time, "sleep", watch("time.sleep", time.sleep))
    monkeypatch.setattr(
        ssl.SSLContext,
        "load_verify_locations",
        watch("load_verify_locations", ssl.SSLContext.load_verify_locations),
    )
    get_connection = BaseHook.__dict__["get_connection"].__func__
    monkeypatch.setattr(
        BaseHook, "get_connection", classmethod(watch("get_connection", get_connection))
    )


@pytest.mark.usefixtures("watched")
def test_the_probes_see_a_blocked_loop(caplog: pytest.LogCaptureFixture) -> None:
    async def blocking() -> None:
        time.sleep(0.1)

    _, slow = _slow_steps(blocking, caplog)
    assert slow and "Executing" in slow[0]
    _, calls = _blocking_calls_on_the_loop(blocking)
    assert {call.split()[0] for call in calls} == {"time.sleep"}  # the wrapper, and 3.13's audit


@pytest.mark.usefixtures("watched")
def test_the_trigger_never_blocks_the_event_loop(
    numberyo_simulator_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The whole run(): connection lookup, client construction, five slow polls, the event.

    The audit guard (with the ``watched`` calls) is deterministic and must be clean. Scheduler
    noise on a busy machine can stretch any step past 50 ms while a blocking call shows up in
    every run, so the debug-mode probe gets up to three runs and one must be clean.
    """
    # Airflow's async connection lookup imports these on first use; a triggerer has imported
    # them at start-up (airflow.jobs.triggerer_job_runner imports the supervisor).
    import airflow.sdk.execution_time.cache
    import airflow.sdk.execution_time.supervisor  # noqa: F401

    server = numberyo_simulator_factory(latency_ms=150, seed_checks=3)
    sim = server.sim
    monkeypatch.setenv(
        "AIRFLOW_CONN_NY_SLOW",
        json.dumps(
            {"conn_type": "numberyo", "host": server.url, "password": f"Bearer {server.token}"}
        ),
    )

    def listed() -> int:
        return sum(1 for e in sim.requests() if e.endpoint == "list")

    def wait_for_a_new_check() -> tuple[NumberYoNewChecksTrigger, list[int], int]:
        """A trigger that polls four times before the simulator gets a new check."""
        top = sim.truth()[0]["check"]
        created: list[int] = []
        start = listed()

        def hook(endpoint: str, info: Any) -> None:
            if endpoint == "list" and not created and listed() - start >= 4:
                created.append(sim.create_check(server.token, NUMBER, "HLR")["check"]["id"])

        sim.before_request = hook
        trigger = NumberYoNewChecksTrigger(
            numberyo_conn_id="ny_slow",
            watermark_check_id=top["id"],
            watermark_created_at=top["created_at"],
            poll_interval=0.02,
        )
        return trigger, created, start

    def check(event: Any, created: list[int], start: int) -> None:
        # It waited through several slow answers (150 ms each) before the new check appeared.
        assert listed() - start >= 5
        assert event.payload["status"] == "success"
        assert event.payload["newest_check_id"] == created[0]

    trigger, created, start = wait_for_a_new_check()
    event, calls = _blocking_calls_on_the_loop(lambda: _first(trigger))
    assert calls == []
    check(event, created, start)

    runs = []
    for _ in range(3):
        trigger, created, start = wait_for_a_new_check()
        event, slow = _slow_steps(lambda t=trigger: _first(t), caplog)
        check(event, created, start)
        runs.append(slow)
        if not slow:
            break
    assert [] in runs, runs
