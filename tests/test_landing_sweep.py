"""Temp files that killed runs leave while landing are swept by the next sync, never a live one's.

A writer holds an exclusive ``flock`` on each temp file it writes; the kernel drops it with the
process, so an unlocked temp file is abandoned for sure (issue 13: nothing a kill -9 leaves may
pile up). Live writers are other processes here, as they would be.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_sync import assert_matches_truth, sync, temp_files

from numberyo_provider.sync import land, run_sync
from numberyo_provider.sync import temp_files as sweep

TODAY = datetime.now(UTC)


def _temp(root: Path, days_ago: int = 0, *, age_s: float = 600.0, table: str = "checks") -> Path:
    day = (TODAY - timedelta(days=days_ago)).date().isoformat()
    directory = root / table / "type=HLR" / f"landed_date={day}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".sync-20260101T000000Z-{days_ago:08x}-{table[:3]}-00001.parquet.tmp"
    path.write_bytes(b"PAR1 half a file")
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_unlocked_old_temp_files_of_recent_days_go_and_nothing_else(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    abandoned = [_temp(root, 0), _temp(root, 6, table="hlr_results")]
    young = _temp(root, 0, age_s=1, table="verify_results")  # its writer may not hold it yet
    too_old_a_day = _temp(root, 7)  # outside the days looked at: left (documented)
    finished = root / "checks" / "type=HLR" / f"landed_date={TODAY.date()}" / "x-00001.parquet"
    finished.write_bytes(b"PAR1")
    removed = sweep.sweep_abandoned_temp_files(str(root))
    assert sorted(removed) == sorted(str(p) for p in abandoned)
    assert not any(p.exists() for p in abandoned)
    assert young.exists() and too_old_a_day.exists() and finished.exists()
    assert sweep.sweep_abandoned_temp_files(str(root)) == []
    assert sweep.sweep_abandoned_temp_files("s3://bucket/landing") == []
    assert sweep.sweep_abandoned_temp_files(str(tmp_path / "missing")) == []


def test_a_temp_file_another_process_holds_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    held = _temp(root)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(held)!r}, os.O_RDONLY)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert sweep.sweep_abandoned_temp_files(str(root)) == []
        assert held.exists()
    finally:
        holder.kill()
        holder.wait(10)
    # Its holder died: now it is abandoned.
    assert sweep.sweep_abandoned_temp_files(str(root)) == [str(held)]


def test_the_lander_holds_its_open_files(tmp_path: Path) -> None:
    """While a file is being written, a sweep from another process sees it locked."""
    import pyarrow as pa

    from numberyo_provider import schema

    root = tmp_path / "landing"
    lander = land.ParquetLander(str(root), "sync-lock-test", max_buffered_rows=1)
    now = datetime.now(UTC)
    rows = pa.table(
        {
            "check_id": [1, 2],
            "type": ["HLR", "HLR"],
            "created_at": [now, now],
            "phone_number": ["32456789023", "32456789024"],
        }
    )
    lander.write(schema.CHECKS, rows)
    (temp,) = temp_files(root)
    stamp = time.time() - 600
    os.utime(temp, (stamp, stamp))
    code = (
        "import sys\nfrom numberyo_provider.sync import temp_files\n"
        "temp_files.SWEEP_MIN_AGE_S = 0\n"
        "print(temp_files.sweep_abandoned_temp_files(sys.argv[1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]" and Path(temp).exists()
    lander.flush()
    assert temp_files(root) == []


def _killed_while_landing(url: str, token: str, wh: str, landing: str) -> None:
    def die(name: str) -> None:
        if name == "batch_landed":
            os._exit(17)  # a temp file is open, with row groups written

    run_sync(
        warehouse=wh,
        parquet_path=landing,
        token=token,
        base_url=url,
        concurrency=4,
        batch_size=10,
        max_buffered_rows=3,
        on_stage=die,
    )
    os._exit(0)


@pytest.mark.slow
def test_a_run_killed_while_landing_leaves_temp_files_the_next_run_sweeps(
    numberyo_simulator_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = numberyo_simulator_factory(seed_checks=40)
    wh, root = f"duckdb:///{tmp_path / 'wh.duckdb'}", tmp_path / "landing"
    child = multiprocessing.get_context("fork").Process(
        target=_killed_while_landing, args=(server.url, server.token, wh, str(root))
    )
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the child sync hung")
    assert child.exitcode == 17
    left = temp_files(root)
    assert left  # what a kill -9 leaves
    monkeypatch.setattr(sweep, "SWEEP_MIN_AGE_S", 0.0)  # instead of waiting a minute
    summary = sync(server, wh, root)
    assert summary.abandoned_temp_files_removed == len(left)
    assert temp_files(root) == []
    assert_matches_truth(wh, server.sim)
