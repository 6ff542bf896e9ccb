"""A/B of the sync between two source trees: same simulator, alternating cold processes.

Issue 13's changes are judged against the code before them measured in the same run, which
survives a shared, noisy machine better than absolute figures. Each run is a fresh process
(``PYTHONPATH`` pointing at one tree) backfilling a fresh DuckDB file from one simulator in its
own process; the order alternates every repetition.

    git worktree add --detach /tmp/before <commit>
    .venv/bin/python bench/bench_ab_sync.py --before /tmp/before [--after .] [--reps 5]

Reports per size the median wall time (from spawn to exit), CPU per check and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "bench-token"
#: (checks, latency in ms): a latency-bound and a CPU-bound backfill, five-year histories.
CASES = ((2000, 20), (10000, 0))


def child(url: str, workdir: str, concurrency: int) -> None:
    """One backfill; prints CPU, peak RSS and checks as JSON."""
    from numberyo_provider.sync import run_sync

    summary = run_sync(
        warehouse=f"duckdb:///{workdir}/wh.duckdb",
        parquet_path=f"{workdir}/landing",
        token=TOKEN,
        base_url=url,
        concurrency=concurrency,
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))
    print(json.dumps({"cpu": usage.ru_utime + usage.ru_stime, "peak_mb": peak,
                      "checks": summary.checks_new}))  # fmt: skip


def simulator(checks: int, latency_ms: int, tree: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "numberyo_provider.simulator", "--port", "0", "--token",
               TOKEN, "--seed-checks", str(checks), "--latency-ms", str(latency_ms),
               "--seed-span-days", "1825"]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": tree},
    )
    assert proc.stdout is not None
    match = re.search(r"http://\S+", proc.stdout.readline())
    if match is None:
        proc.kill()
        raise RuntimeError("the simulator did not start")
    return proc, match.group(0)


def one(tree: str, url: str, concurrency: int) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="numberyo-ab-")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-W", "ignore", __file__, "--child", url, workdir, str(concurrency)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": tree},
        check=False,
    )
    wall = time.perf_counter() - started
    shutil.rmtree(workdir, ignore_errors=True)
    if done.returncode:
        raise RuntimeError(f"the sync of {tree} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall": wall}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="source tree of the old code")
    parser.add_argument("--after", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--concurrency", metavar="N", type=int, default=16)
    args = parser.parse_args()
    trees = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    print("load average before:", Path("/proc/loadavg").read_text().strip(), flush=True)
    for checks, latency in CASES:
        proc, url = simulator(checks, latency, trees["after"])
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        try:
            for rep in range(args.reps):
                order = ("before", "after") if rep % 2 == 0 else ("after", "before")
                for name in order:
                    runs[name].append(one(trees[name], url, args.concurrency))
        finally:
            proc.terminate()
            proc.wait(10)
        for name, results in runs.items():
            print(
                f"{checks:>6,} checks, {latency} ms, {name:>6}: wall "
                f"{statistics.median(r['wall'] for r in results):.2f} s, CPU "
                f"{1000 * statistics.median(r['cpu'] for r in results) / checks:.3f} ms a check, "
                f"peak {statistics.median(r['peak_mb'] for r in results):.1f} MB",
                flush=True,
            )
    print("load average after:", Path("/proc/loadavg").read_text().strip())


if __name__ == "__main__":
    main()
