"""Sync benchmark: throughput against the ideal, and peak memory against the number of checks.

1. Throughput: a backfill of ``--checks`` (10,000) checks from the simulator running as a separate
   process with ``--latency-ms`` (20) of latency per request, ``--workers`` (16) workers, into a
   fresh DuckDB file each repetition. The ideal is ``requests x latency / workers`` (every worker
   always waiting on a request, zero overhead); the score is ``ideal / actual`` (1.0 = ideal).
   Medians of ``--reps`` (3). For context the same machine's *client ceiling* is measured too:
   the same number of ``GET /api/checks/{id}/results`` with the same workers and nothing else
   (no paging, no Arrow, no Parquet, no warehouse).
2. Peak memory: the RSS high-water mark (``VmHWM`` in ``/proc/self/status``) of a process that
   runs one backfill, each size (``--memory-sizes``, default 10,000 and 100,000 checks) in a fresh
   subprocess, against a simulator with no latency. Flat means: the sizes differ by < 50 MB. The
   high-water mark just before the commit is reported too (extraction, normalisation, landing),
   and with ``--postgres-url`` the same runs into PostgreSQL (the database's work happens in the
   server, so this isolates the sync's own memory).

    .venv/bin/python bench/bench_sync.py [--checks 10000] [--latency-ms 20] [--workers 16]
        [--reps 3] [--memory-sizes 10000,100000] [--skip-throughput] [--skip-memory]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--json bench/results/sync.json]
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TOKEN = "bench-token"


@contextmanager
def simulator(checks: int, latency_ms: float) -> Iterator[str]:
    """A simulator in its own process (so its CPU is not the syncing process's); yields its URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "numberyo_provider.simulator",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--seed-checks",
            str(checks),
            "--latency-ms",
            str(latency_ms),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://\S+", line)
        if match is None:
            raise RuntimeError(f"the simulator did not start: {line!r}")
        yield match.group(0)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _maxrss_mb() -> float:
    """This process's RSS high-water mark. ``VmHWM``, not ``ru_maxrss``: Linux carries
    ``ru_maxrss`` over from the parent through fork and exec, so a child started by a big parent
    (this script after the throughput runs) would report at least the parent's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def one_sync(url: str, workers: int, workdir: Path, warehouse: str | None = None) -> dict[str, Any]:
    from numberyo_provider.sync import run_sync

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    marks: dict[str, float] = {}

    def stage(name: str) -> None:
        if name == "before_commit":
            marks["extract_peak_mb"] = _maxrss_mb()

    started = time.perf_counter()
    summary = run_sync(
        warehouse=warehouse or f"duckdb:///{workdir / 'wh.duckdb'}",
        parquet_path=str(workdir / "landing"),
        token=TOKEN,
        base_url=url,
        concurrency=workers,
        on_stage=stage,
    )
    wall = time.perf_counter() - started
    requests = summary.pages + summary.results_fetched + summary.errors
    return {
        **marks,
        "wall_s": wall,
        "requests": requests,
        "pages": summary.pages,
        "checks": summary.checks_new,
        "passes": summary.listing_passes,
    }


def client_ceiling(url: str, workers: int, n: int) -> float:
    """Seconds for ``n`` bare result requests with ``workers`` threads (the machine's limit)."""
    from numberyo_provider.client import NumberYoClient

    with NumberYoClient(TOKEN, url, pool_size=workers) as client:
        client.get_results(1)
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(client.get_results, range(1, n + 1)):
                pass
        return time.perf_counter() - started


def throughput(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    runs = []
    ceilings = []
    with simulator(args.checks, args.latency_ms) as url:
        for rep in range(args.reps):
            run = one_sync(url, args.workers, workdir / f"rep{rep}")
            run["ideal_s"] = run["requests"] * args.latency_ms / 1000 / args.workers
            run["ratio"] = run["ideal_s"] / run["wall_s"]
            runs.append(run)
            print(
                f"  rep {rep + 1}: {run['requests']} requests in {run['wall_s']:.2f} s "
                f"(ideal {run['ideal_s']:.2f} s, ratio {run['ratio']:.2f})",
                flush=True,
            )
        n = min(args.checks, 5000)
        for _ in range(args.reps):
            seconds = client_ceiling(url, args.workers, n)
            ideal = n * args.latency_ms / 1000 / args.workers
            ceilings.append(ideal / seconds)
    return {
        "checks": args.checks,
        "latency_ms": args.latency_ms,
        "workers": args.workers,
        "runs": runs,
        "median_wall_s": statistics.median(r["wall_s"] for r in runs),
        "median_ideal_s": statistics.median(r["ideal_s"] for r in runs),
        "median_ratio": statistics.median(r["ratio"] for r in runs),
        "client_ceiling_ratio": statistics.median(ceilings),
    }


def memory_child(url: str, workers: int, workdir: Path, warehouse: str | None) -> None:
    """Run in a fresh process: one backfill, then print the RSS high-water mark as JSON."""
    run = one_sync(url, workers, workdir, warehouse)
    print(json.dumps({"maxrss_mb": _maxrss_mb(), **run}))


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    import uuid

    import sqlalchemy as sa

    name = f"numberyo_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def memory(args: argparse.Namespace, workdir: Path, backend: str) -> dict[str, Any]:
    sizes = [int(s) for s in args.memory_sizes.split(",") if s]
    out: dict[str, Any] = {}
    for size in sizes:
        with simulator(size, 0) as url, contextlib.ExitStack() as stack:
            command = [
                sys.executable,
                __file__,
                "--memory-child",
                url,
                "--workers",
                str(args.workers),
                "--workdir",
                str(workdir / f"mem-{backend}-{size}"),
            ]
            if backend == "postgres":
                command += [
                    "--warehouse",
                    stack.enter_context(postgres_database(args.postgres_url)),
                ]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        out[str(size)] = result
        print(
            f"  {backend:8} {size:>7,} checks: peak RSS {result['maxrss_mb']:.1f} MB, of which "
            f"before the commit {result['extract_peak_mb']:.1f} MB ({result['wall_s']:.1f} s)",
            flush=True,
        )
    peaks = [v["maxrss_mb"] for v in out.values()]
    extract = [v["extract_peak_mb"] for v in out.values()]
    return {
        "backend": backend,
        "sizes": out,
        "spread_mb": max(peaks) - min(peaks) if peaks else 0.0,
        "extract_spread_mb": max(extract) - min(extract) if extract else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--memory-sizes", default="10000,100000")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="also measure memory with a PostgreSQL warehouse (admin URL; a scratch database "
        "is created and dropped per size)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--warehouse", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_child:
        memory_child(args.memory_child, args.workers, args.workdir, args.warehouse)
        return 0

    results: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="numberyo-bench-sync-") as tmp:
        workdir = Path(tmp)
        if not args.skip_throughput:
            print(
                f"Throughput: backfill of {args.checks:,} checks, {args.latency_ms:g} ms latency, "
                f"{args.workers} workers",
                flush=True,
            )
            t = throughput(args, workdir)
            results["throughput"] = t
            print(
                f"  median {t['median_wall_s']:.2f} s vs ideal {t['median_ideal_s']:.2f} s: "
                f"{t['median_ratio']:.0%} of ideal (target >= 80%); bare-client ceiling on this "
                f"machine {t['client_ceiling_ratio']:.0%}",
                flush=True,
            )
        if not args.skip_memory:
            print("Peak memory (fresh process per size, no latency):", flush=True)
            backends = ["duckdb"] + (["postgres"] if args.postgres_url else [])
            results["memory"] = {}
            for backend in backends:
                m = memory(args, workdir, backend)
                results["memory"][backend] = m
                print(
                    f"  {backend}: spread {m['spread_mb']:.1f} MB (target < 50 MB); before the "
                    f"commit {m['extract_spread_mb']:.1f} MB",
                    flush=True,
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
