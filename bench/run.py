"""Run every benchmark in sequence (``make bench``) and keep their figures in bench/results/.

Each benchmark measures its own baseline in the same run (ideal throughput, DuckDB's own CTAS,
reading a table whole), so the ratios hold on a shared, noisy machine; docs/benchmarks.md quotes
them. Run it on a quiet machine: ``make bench`` or ``.venv/bin/python bench/run.py [NAME ...]``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: name -> arguments: the configurations docs/benchmarks.md reports.
BENCHMARKS: dict[str, list[str]] = {
    "sync": [
        "--checks",
        "2000,10000",
        "--span-days",
        "1825",
        "--latency-ms",
        "20",
        "--concurrency",
        "16",
        "--reps",
        "3",
        "--memory-sizes",
        "10000,100000",
        "--postgres-url",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    ],
    "check": ["--checks", "4000", "--latency-ms", "20", "--concurrency", "8", "--reps", "3"],
    "load": ["--rows", "1000000", "--reps", "3"],
    "client": ["--reps", "3"],
    "large_source": ["--rows", "100000", "--rows", "1000000", "--reps", "1"],
    "source": [
        "--rows",
        "100000",
        "--rows",
        "1000000",
        "--backend",
        "duckdb",
        "--backend",
        "sqlite",
        "--backend",
        "postgres",
    ],
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    failed = []
    for name in names:
        args = list(BENCHMARKS[name])
        if name != "source":
            args += ["--json", str(RESULTS / f"{name}.json")]
        command = [sys.executable, str(HERE / f"bench_{name}.py"), *args]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        code = subprocess.call(command)
        print(f"=== {name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
