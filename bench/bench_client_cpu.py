"""Client CPU per ``list_checks``: the sync client, its async path, and optionally an older tree.

The simulator runs in its own process (0 latency) so that ``time.process_time`` in each child
counts the client only (the deadline watchdog thread included). Each child makes one warm-up call,
then ``--rounds`` rounds of ``--requests`` calls; its figure is the median round in ms a request.
Children alternate sync / async (/ baseline) ``--reps`` times, so a noisy neighbour hits each alike.

``--baseline-tree DIR`` measures the sync client of another checkout too (e.g. the commit before a
refactor: ``git archive <commit> numberyo_provider | tar -x -C DIR``), the baseline of this run.

    .venv/bin/python bench/bench_client_cpu.py [--requests 1000] [--rounds 5] [--reps 3]
        [--baseline-tree DIR]
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
import asyncio, statistics, sys, time

url, mode, requests, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
figures = []
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
else:
    from numberyo_provider.api.client import NumberYoClient

    with NumberYoClient("bench-token", url, max_retries=0) as client:
        client.list_checks(1)
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(requests):
                client.list_checks(1)
            figures.append((time.process_time() - started) / requests * 1000)
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


def child(tree: Path, url: str, mode: str, requests: int, rounds: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, mode, str(requests), str(rounds)],
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
    parser.add_argument("--baseline-tree", type=Path, default=None)
    args = parser.parse_args()

    cases: dict[str, tuple[Path, str]] = {"sync": (REPO, "sync"), "async": (REPO, "async")}
    if args.baseline_tree is not None:
        cases["baseline sync"] = (args.baseline_tree.resolve(), "sync")
    proc, url = start_simulator()
    figures: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(args.reps):
            for name, (tree, mode) in cases.items():
                figures[name].append(child(tree, url, mode, args.requests, args.rounds))
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
