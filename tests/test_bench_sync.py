"""The sync benchmark still runs; its DuckDB-alone baseline loads exactly what the sync landed, and
its bare-client CPU baseline sends the same requests.

A smoke run at toy sizes: it checks what the figures stand on (the same rows, the same files, a
real peak per process), never the figures themselves, which only mean something from
``make bench`` on a quiet machine (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run_bench(out: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``bench_sync.py`` at toy sizes (five-year-ish history, 4 workers); its stdout."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_sync.py"),
            *args,
            "--span-days",
            "400",
            "--concurrency",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_memory_run_reports_the_duckdb_load_alone_of_the_same_files(tmp_path: Path) -> None:
    out = tmp_path / "sync.json"
    stdout = run_bench(out, "--skip-throughput", "--memory-sizes", "300")
    assert "DuckDB load alone of the same files" in stdout
    results = json.loads(out.read_text())
    floor = results["import_floor"]["maxrss_mb"]
    library = results["memory"]["duckdb"]["library"]["sizes"]["300"]
    alone = library["load_alone"]
    assert library["checks"] == 300
    # The baseline committed every row the sync did, from every file the sync landed.
    assert alone["rows"]["checks"] == 300
    assert alone["rows"]["hlr_results"] + alone["rows"]["verify_results"] == 300
    assert alone["files"] == sum(library["files_per_table"].values())
    # Each is a peak of its own process, above the floor of bare imports.
    assert floor < alone["maxrss_mb"] and floor < library["maxrss_mb"]
    assert "load_alone" not in results["memory"]["duckdb"]["cli"]["sizes"]["300"]
    # The CPU baseline sent the same requests: every page, then every check's results.
    bare = results["memory"]["duckdb"]["bare_client"]["300"]
    assert bare["checks"] == 300
    assert bare["requests"] == library["requests"] == 330
    assert library["cpu_x_bare_client"] == pytest.approx(
        library["cpu_ms_per_check"] / bare["cpu_ms_per_check"]
    )


def test_each_timed_backfill_is_paired_with_a_bare_client_run(tmp_path: Path) -> None:
    """The machine's speed drifts within minutes, so every backfill rep has its own bare-client
    run right after it; and the benchmark writes the package's bytecode for its cold processes
    even where Python is told not to (as pip does when it installs)."""
    out = tmp_path / "sync.json"
    bytecode = (
        ROOT / "numberyo_provider" / "__pycache__" / f"schema.{sys.implementation.cache_tag}.pyc"
    )
    bytecode.unlink(missing_ok=True)
    stdout = run_bench(
        out,
        *("--skip-memory", "--checks", "60", "--reps", "2", "--latency-ms", "1"),
        *("--incremental-latency-ms", "0"),
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    (size,) = json.loads(out.read_text())["throughput"]
    assert len(size["runs"]) == 2
    pairs = [r["x_ideal"] / r["client_ceiling_x_ideal"] for r in size["runs"]]
    assert all(r["client_ceiling_x_ideal"] > 0 for r in size["runs"])
    assert size["median_x_client"] == pytest.approx(sum(pairs) / 2)
    assert "of the bare client run just after it" in stdout
    assert bytecode.is_file()
