"""Paid-check throughput: ``numberyo check``'s run loop against the simulator in its own process.

What is timed, per repetition (fresh ledger, fresh numbers): :class:`Checker.run` end to end:
hygiene (to E.164, deduplicate), the ledger (a SQLite file: ``pending`` committed in batches
before the POSTs, outcomes recorded after, ``synchronous=FULL``), ``--concurrency`` threads POSTing
through one shared client, and the results landed as Parquet. Reported against:

* the ideal: ``workers / latency`` (8 / 20 ms = 400 checks/s), what the simulator's latency allows;
* the bare client: the same number of ``create_check`` calls from a thread pool of the same size,
  no ledger, no hygiene, no landing (what this machine's Python + HTTP stack reaches).

Medians of ``--reps`` repetitions.

    .venv/bin/python bench/bench_check.py [--checks 4000] [--concurrency 8] [--latency-ms 20]
        [--reps 3] [--json bench/results/check.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.checks import Checker, CheckOptions
from numberyo_provider.checks.ledger import Ledger
from numberyo_provider.sync.land import ParquetLander

TOKEN = "bench-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_simulator(latency_ms: float, credits: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "numberyo_provider.simulator",
            "--port",
            str(port),
            "--token",
            TOKEN,
            "--latency-ms",
            str(latency_ms),
            "--credits",
            str(credits),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(
                f"{url}/api/checks?page=1", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            with urllib.request.urlopen(request, timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the simulator did not start within 30 s")


def numbers(n: int, block: int) -> list[str]:
    return [f"3247{block:02d}{i:05d}" for i in range(n)]


def run_checker(url: str, n: int, workers: int, block: int, workdir: Path) -> float:
    ledger = Ledger(f"sqlite:///{workdir / f'ledger-{block}.sqlite'}")
    client = NumberYoClient(TOKEN, url, pool_size=workers)
    lander = ParquetLander(str(workdir / "landing"), f"bench-{block}")
    checker = Checker(
        client,
        ledger,
        CheckOptions(check_type="HLR", run_id=f"bench-{block}", concurrency=workers),
        sink=lander,
        load_id=f"check-bench-{block}",
    )
    values = numbers(n, block)
    started = time.perf_counter()
    summary = checker.run([values[i : i + 10_000] for i in range(0, n, 10_000)])
    lander.flush()
    elapsed = time.perf_counter() - started
    client.close()
    ledger.close()
    if summary.created != n:
        raise RuntimeError(f"expected {n} checks created, got {summary.render()}")
    return n / elapsed


def run_bare_client(url: str, n: int, workers: int, block: int) -> float:
    client = NumberYoClient(TOKEN, url, pool_size=workers)
    values = numbers(n, block)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda v: client.create_check(v, "HLR"), values))
    elapsed = time.perf_counter() - started
    client.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=4000)
    # --workers: the flag's name before 0.2 (one name per idea), still taken.
    parser.add_argument(
        "--concurrency", "--workers", dest="workers", metavar="N", type=int, default=8
    )
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    ideal = args.workers / (args.latency_ms / 1000.0)
    proc, url = start_simulator(args.latency_ms, credits=args.checks * args.reps * 4)
    checker_rates: list[float] = []
    bare_rates: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="numberyo-bench-check-") as tmp:
            run_checker(url, 200, args.workers, 90, Path(tmp))  # warm-up (imports, pools)
            for rep in range(args.reps):
                checker_rates.append(
                    run_checker(url, args.checks, args.workers, 2 * rep, Path(tmp))
                )
                bare_rates.append(run_bare_client(url, args.checks, args.workers, 2 * rep + 1))
                print(
                    f"rep {rep + 1}: checker {checker_rates[-1]:.1f}/s, "
                    f"bare client {bare_rates[-1]:.1f}/s",
                    file=sys.stderr,
                )
    finally:
        proc.terminate()
        proc.wait(10)
    checker = statistics.median(checker_rates)
    bare = statistics.median(bare_rates)
    result = {
        "checks": args.checks,
        "workers": args.workers,
        "latency_ms": args.latency_ms,
        "reps": args.reps,
        "ideal_per_s": ideal,
        "checker_per_s": round(checker, 1),
        "bare_client_per_s": round(bare, 1),
        "checker_vs_ideal": round(checker / ideal, 3),
        "checker_vs_bare_client": round(checker / bare, 3),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(
        f"numberyo check: {checker:.1f} checks/s (median of {args.reps} x {args.checks}, "
        f"{args.workers} workers, {args.latency_ms:g} ms latency) = {checker / ideal:.0%} of the "
        f"ideal {ideal:.0f}/s; bare client {bare:.1f}/s, so the ledger, hygiene and landing cost "
        f"{1 - checker / bare:.0%} (load average {result['load_avg_1m']} on {result['cpus']} CPUs)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
