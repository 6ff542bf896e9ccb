"""``numberyo sync`` end to end, in a subprocess, against the simulator over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from numberyo_provider.progress import Progress


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    full_env.pop("NUMBERYO_PRIVACY_MODE", None)
    return subprocess.run(
        [sys.executable, "-m", "numberyo_provider.cli", "sync", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(server: Any, token: str | None = None) -> dict[str, str]:
    return {"NUMBERYO_BASE_URL": server.url, "NUMBERYO_API_TOKEN": token or server.token}


def test_sync_then_incremental_prints_a_summary(numberyo_simulator: Any, tmp_path: Path) -> None:
    numberyo_simulator.sim.seed_checks(34)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    done = _run(["--warehouse", wh, "--concurrency", "4"], _env(numberyo_simulator), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "committed" in done.stdout
    assert "checks loaded    34" in done.stdout
    assert numberyo_simulator.token not in done.stdout + done.stderr
    assert "\r" not in done.stderr  # no progress drawing when stderr is not a terminal
    # The default landing directory is ./numberyo-parquet, relative to where it ran.
    assert any((tmp_path / "numberyo-parquet" / "checks").rglob("*.parquet"))

    numberyo_simulator.sim.create_check(numberyo_simulator.token, "32456789023", "HLR")
    again = _run(
        ["--warehouse", wh, "--parquet-path", str(tmp_path / "pq"), "--json"],
        _env(numberyo_simulator),
        tmp_path,
    )
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["checks_new"] == 1
    assert summary["watermark_before"]["check_id"] < summary["watermark_after"]["check_id"]


@pytest.mark.slow
def test_conn_id_takes_the_airflow_connection(numberyo_simulator: Any, tmp_path: Path) -> None:
    numberyo_simulator.sim.seed_checks(7)
    conn = json.dumps(
        {
            "conn_type": "numberyo",
            "host": numberyo_simulator.url,
            "password": numberyo_simulator.token,
        }
    )
    env = {"AIRFLOW_CONN_NY_CLI": conn, "NUMBERYO_API_TOKEN": "", "NUMBERYO_BASE_URL": ""}
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    done = _run(["--warehouse", wh, "--conn-id", "ny_cli", "--json"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["checks_new"] == 7
    assert numberyo_simulator.token not in done.stdout + done.stderr
    missing = _run(["--warehouse", wh, "--conn-id", "nope_conn"], env, tmp_path)
    assert missing.returncode == 2 and "nope_conn" in missing.stderr  # a usage error
    assert "Traceback" not in missing.stderr


def test_bad_token_exits_1_with_one_clear_line(numberyo_simulator: Any, tmp_path: Path) -> None:
    secret = "wrong-token-do-not-print"
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    done = _run(["--warehouse", wh], _env(numberyo_simulator, secret), tmp_path)
    assert done.returncode == 1
    assert secret not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no traceback
    assert lines[0].startswith("numberyo sync: error:")
    assert "401" in lines[0] and "token" in lines[0].lower()


def test_bad_warehouse_url_is_a_clear_message(numberyo_simulator: Any, tmp_path: Path) -> None:
    done = _run(
        ["--warehouse", "postgresql+nodriver://user:pw-secret@host/db"],
        _env(numberyo_simulator),
        tmp_path,
    )
    assert done.returncode == 2  # a usage error, as from numberyo check
    assert "pw-secret" not in done.stderr
    assert "Traceback" not in done.stderr
    assert "warehouse" in done.stderr.lower()
    duck = _run(["--warehouse", "duckdb:/only-one-slash"], _env(numberyo_simulator), tmp_path)
    assert duck.returncode == 2 and "Traceback" not in duck.stderr
    assert "duckdb:///" in duck.stderr
    import socket

    with socket.socket() as s:  # a port nothing listens on: the database is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = _run(
        ["--warehouse", f"postgresql+psycopg://u:pw-secret@127.0.0.1:{port}/db"],
        _env(numberyo_simulator),
        tmp_path,
    )
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
    assert "Connection refused" in down.stderr and "pw-secret" not in down.stderr


def test_missing_token_and_usage_errors(numberyo_simulator: Any, tmp_path: Path) -> None:
    env = {"NUMBERYO_BASE_URL": numberyo_simulator.url, "NUMBERYO_API_TOKEN": ""}
    done = _run(["--warehouse", f"duckdb:///{tmp_path / 'w.duckdb'}"], env, tmp_path)
    assert done.returncode == 2 and "NUMBERYO_API_TOKEN" in done.stderr  # as numberyo check
    usage = _run([], _env(numberyo_simulator), tmp_path)
    assert usage.returncode == 2 and "--warehouse" in usage.stderr
    bad_n = _run(["--warehouse", "duckdb:///x.duckdb", "--concurrency", "0"], {}, tmp_path)
    assert bad_n.returncode == 2


def test_api_down_is_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"NUMBERYO_BASE_URL": f"http://127.0.0.1:{port}", "NUMBERYO_API_TOKEN": "tok-x"}
    done = _run(
        ["--warehouse", f"duckdb:///{tmp_path / 'w.duckdb'}", "--max-retries", "0"], env, tmp_path
    )
    assert done.returncode == 1
    assert "could not connect" in done.stderr and "tok-x" not in done.stderr


class _Tty:
    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_progress_draws_only_on_a_terminal() -> None:
    now = [0.0]
    tty = _Tty()
    progress = Progress("sync", stream=tty, clock=lambda: now[0], min_interval=0)
    progress.set_total(200)
    now[0] = 2.0
    progress.advance(100)
    assert "100/200" in tty.text and "50.0 checks/s" in tty.text and "ETA 0:02" in tty.text
    progress.close()
    assert tty.text.endswith("\n")

    class Pipe(_Tty):
        def isatty(self) -> bool:
            return False

    pipe = Pipe()
    quiet = Progress("sync", stream=pipe)
    quiet.advance(5)
    quiet.close()
    assert pipe.text == ""


@pytest.mark.parametrize("total", [None, 0])
def test_progress_without_total(total: int | None) -> None:
    tty = _Tty()
    progress = Progress("sync", stream=tty, total=total, min_interval=0, clock=lambda: 1.0)
    progress.advance(3)
    assert "sync: 3" in tty.text and "ETA" not in tty.text
