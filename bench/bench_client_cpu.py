"""Client CPU per ``list_checks``: the sync client, its async path, and optionally an older tree.

The simulator runs in its own process (0 latency) so that ``time.process_time`` in each child
counts the client only (the deadline watchdog thread included). Each child makes one warm-up call,
then ``--rounds`` rounds of ``--requests`` calls; its figure is the median round in ms a request.
Children alternate sync / async (/ baseline) ``--reps`` times, so a noisy neighbour hits each alike.

``--baseline-tree DIR`` measures the sync client of another checkout too (e.g. the commit before a
refactor: ``git worktree add --detach DIR <commit>``), the baseline of this run. ``--floors``
adds the bare HTTP stacks under the same request (``http.client`` with a keep-alive connection
per thread, and urllib3's ``PoolManager``): what the client's own layers cost above them.
``--threads N`` spreads each round over N threads sharing one client (the sync's 16 request
threads; the async path runs at 1 only).

    .venv/bin/python bench/bench_client_cpu.py [--requests 1000] [--rounds 5] [--reps 3]
        [--threads 1] [--floors] [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"

CHILD = r"""
import asyncio, json, statistics, sys, threading, time
from concurrent.futures import ThreadPoolExecutor

url, mode, requests, rounds, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
figures = []


def measure(call):
    call()
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(rounds):
            started = time.process_time()
            if threads == 1:
                for _ in range(requests):
                    call()
            else:
                for _ in pool.map(lambda _: call(), range(requests)):
                    pass
            figures.append((time.process_time() - started) / requests * 1000)


headers = {"Authorization": "Bearer bench-token", "Accept": "application/json"}
if mode == "async":
    from numberyo_provider.api.async_client import AsyncNumberYoClient

    async def main():
        async with await AsyncNumberYoClient.open("bench-token", url, max_retries=0) as client:
            await client.list_checks(1)
            for _ in range(rounds):
                started = time.process_time()
                for _ in range(requests):
                    await client.list_checks(1)
                figures.append((time.process_time() - started) / requests * 1000)

    asyncio.run(main())
elif mode == "http.client":
    import http.client
    from urllib.parse import urlsplit

    host, port = urlsplit(url).hostname, urlsplit(url).port
    local = threading.local()

    def call():
        conn = getattr(local, "conn", None) or http.client.HTTPConnection(host, port)
        local.conn = conn
        conn.request("GET", "/api/checks?page=1", headers=headers)
        json.loads(conn.getresponse().read())

    measure(call)
elif mode == "urllib3":
    import urllib3

    manager = urllib3.PoolManager(maxsize=threads, retries=False)

    def call():
        json.loads(manager.request("GET", url + "/api/checks?page=1", headers=headers).data)

    measure(call)
else:
    from numberyo_provider.api.client import NumberYoClient

    with NumberYoClient("bench-token", url, max_retries=0, pool_size=threads) as client:
        measure(lambda: client.list_checks(1))
print(statistics.median(figures))
"""


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "numberyo_provider.cli", "simulate", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--token", TOKEN, "--seed-checks", "30"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "NumberYo simulator listening on http://127.0.0.1:PORT (..."
    url = next(word for word in line.split() if word.startswith("http://"))
    return proc, url


def child(tree: Path, url: str, mode: str, requests: int, rounds: int, threads: int = 1) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, mode, str(requests), str(rounds), str(threads)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tree)},
        # In the tree: ``python -c`` puts the working directory first on sys.path, before
        # PYTHONPATH, so run from the repository root every child imported the root's package.
        cwd=tree,
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--floors", action="store_true")
    parser.add_argument("--baseline-tree", type=Path, default=None)
    args = parser.parse_args()

    cases: dict[str, tuple[Path, str]] = {"sync": (REPO, "sync")}
    if args.threads == 1:
        cases["async"] = (REPO, "async")
    if args.floors:
        cases["http.client"] = (REPO, "http.client")
        cases["urllib3"] = (REPO, "urllib3")
    if args.baseline_tree is not None:
        cases["baseline sync"] = (args.baseline_tree.resolve(), "sync")
    proc, url = start_simulator()
    figures: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(args.reps):
            for name, (tree, mode) in cases.items():
                figure = child(tree, url, mode, args.requests, args.rounds, args.threads)
                figures[name].append(figure)
    finally:
        proc.terminate()
        proc.wait(10)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    reference = medians.get("baseline sync", medians["sync"])
    for name, values in figures.items():
        runs = ", ".join(f"{v:.3f}" for v in values)
        print(
            f"{name:>14}: {medians[name]:.3f} ms CPU a request (runs {runs}); "
            f"ratio {medians[name] / reference:.2f}"
        )


if __name__ == "__main__":
    main()
