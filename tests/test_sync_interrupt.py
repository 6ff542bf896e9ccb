"""Ctrl-C at any moment of ``numberyo sync``: a real SIGINT to a real child process, at four
moments (listing, results, landing, inside the DuckDB commit). Each exits 130 with one line, the
warehouse is as it was before the run, no file of the run is visible, and a rerun is exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_sync import assert_matches_truth  # type: ignore[import-not-found]
from test_sync_local_faults import snapshot, visible_files  # type: ignore[import-not-found]

CHILD = Path(__file__).with_name("sync_interrupt_child.py")
NUMBER = "32456789023"


def sync_args(wh: Path, landing: Path) -> list[str]:
    return [
        "sync",
        "--warehouse",
        f"duckdb:///{wh}",
        "--parquet-path",
        str(landing),
        "--no-progress",
        "--concurrency",
        "4",
    ]


def env_for(server: Any) -> dict[str, str]:
    env = {**os.environ, "NUMBERYO_BASE_URL": server.url, "NUMBERYO_API_TOKEN": server.token}
    env.pop("NUMBERYO_PRIVACY_MODE", None)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("point", ["listing", "results", "landing", "commit"])
def test_ctrl_c_exits_130_and_leaves_the_warehouse_as_it_was(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path, point: str
) -> None:
    server = numberyo_simulator_factory(seed_checks=45)
    wh, landing = tmp_path / "wh.duckdb", tmp_path / "landing"
    first = subprocess.run(
        [sys.executable, "-m", "numberyo_provider.cli", *sync_args(wh, landing)],
        env=env_for(server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    for t in ("HLR", "Verify") * 3:
        server.sim.create_check(server.token, NUMBER, t)
    before = snapshot(wh, committed_only=True)
    files_before = visible_files(landing)

    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), point, str(ready), *sync_args(wh, landing), "--full-refresh"],
        env=env_for(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never reached the point"
            time.sleep(0.02)
        time.sleep(0.1)  # inside the pause (or the DuckDB query)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [
        "numberyo sync: interrupted (Ctrl-C): nothing of this run was committed; the next run "
        "starts from the same watermark"
    ]
    assert out == ""
    assert snapshot(wh, committed_only=True) == before
    assert visible_files(landing) == files_before

    again = subprocess.run(
        [sys.executable, "-m", "numberyo_provider.cli", *sync_args(wh, landing)],
        env=env_for(server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert_matches_truth(f"duckdb:///{wh}", server.sim)
