"""``numberyo check`` over a large source on the defaults: peak memory and time, phase by phase.

The case of issue 9: a DuckDB source of N rows, ``--max-checks 5``, a DuckDB warehouse on its
default settings (``memory_limit=64MB``) with the SQLite ledger beside it, the simulator in its own
process. Five checks are paid; every other number is recorded ``not_checked`` in the ledger and
loaded into ``check_requests`` with the five checks, in one transaction.

Each size runs the real CLI (``numberyo_provider.cli.main``) in a fresh child process; the child
times the phases (a wrapper around each, nothing else changed) and reports its RSS high-water mark
(``VmHWM``) after each. The baseline in the same run is the *import floor*: a child that imports
what the CLI imports and stops, so the figures say what the run adds on top of the libraries.

    .venv/bin/python bench/bench_large_source.py [--rows 100000 --rows 1000000] [--reps 1]
        [--json bench/results/large_source.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"
UNIQUE = 0.9  # a tenth of the rows repeat an earlier number, as real contact lists do
MAX_CHECKS = 5


def _vmhwm_mb() -> float:
    """This process's RSS high-water mark (``VmHWM``; ``ru_maxrss`` would carry the parent's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def build_source(rows: int, workdir: Path) -> str:
    import duckdb

    unique = max(1, int(rows * UNIQUE))
    path = workdir / f"contacts_{rows}.duckdb"
    with duckdb.connect(str(path)) as duck:
        duck.execute(
            "CREATE TABLE contacts AS SELECT range AS id, "
            f"'+32 47' || lpad(CAST(range % {unique} AS VARCHAR), 7, '0') AS phone "
            f"FROM range({rows})"
        )
    return f"duckdb:///{path}"


# --- the children -------------------------------------------------------------------------------


def _floor() -> dict[str, Any]:
    """Import what a check run imports, then stop: the memory no run can go below."""
    import duckdb  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import sqlalchemy  # noqa: F401

    import numberyo_provider.checks
    import numberyo_provider.checks.ledger
    import numberyo_provider.checks.run
    import numberyo_provider.checks.source
    import numberyo_provider.cli
    import numberyo_provider.cli.check
    import numberyo_provider.sync.land
    import numberyo_provider.warehouse.duckdb  # noqa: F401

    return {"vmhwm_mb": round(_vmhwm_mb(), 1)}


class _Phases:
    """Wall time spent in wrapped functions, and the high-water mark when each last returned."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.hwm: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.hwm[name] = round(_vmhwm_mb(), 1)

    def call(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)

        return wrapper

    def iterator(self, name: str, fn: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        """Time spent producing the items of the iterators ``fn`` returns."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            iterator = iter(fn(*args, **kwargs))
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    self.add(name, time.perf_counter() - started)
                    return
                self.add(name, time.perf_counter() - started)
                yield item

        return wrapper


def _instrument(phases: _Phases) -> None:
    from numberyo_provider import cli
    from numberyo_provider.checks import engine, ledger, run, source
    from numberyo_provider.warehouse import base

    engine.Checker.run = phases.call("check run (all of it)", engine.Checker.run)  # type: ignore[method-assign]
    source.iter_source_values = phases.iterator("  read the source", source.iter_source_values)
    ledger.Ledger.mark_not_checked = phases.call(  # type: ignore[method-assign]
        "  ledger: not_checked rows", ledger.Ledger.mark_not_checked
    )
    run.commit_check_run = phases.call("commit (all of it)", run.commit_check_run)
    base.Warehouse.commit_load = phases.call(  # type: ignore[method-assign]
        "  load transaction", base.Warehouse.commit_load
    )
    ledger.Ledger.iter_request_batches = phases.iterator(  # type: ignore[method-assign]
        "    ledger export to Arrow", ledger.Ledger.iter_request_batches
    )
    del cli


def _run_cli(source: str, workdir: str, base_url: str) -> dict[str, Any]:
    phases = _Phases()
    _instrument(phases)
    from numberyo_provider.cli import main

    os.environ["NUMBERYO_API_TOKEN"] = TOKEN
    argv = [
        "check",
        "--source",
        source,
        "--table",
        "contacts",
        "--column",
        "phone",
        "--type",
        "HLR",
        "--max-checks",
        str(MAX_CHECKS),
        "--warehouse",
        f"duckdb:///{workdir}/warehouse.duckdb",
        "--parquet-path",
        f"{workdir}/landing",
        "--base-url",
        base_url,
        "--no-progress",
        "--json",
    ]
    started = time.perf_counter()
    code = main(argv)
    wall = time.perf_counter() - started
    return {
        "exit": code,
        "wall_s": round(wall, 2),
        "vmhwm_mb": round(_vmhwm_mb(), 1),
        "phases_s": {k: round(v, 2) for k, v in phases.seconds.items()},
        "vmhwm_after_mb": phases.hwm,
    }


def _child(argv: list[str]) -> None:
    if argv[0] == "floor":
        result = _floor()
    else:
        _, source, workdir, base_url = argv
        real_stdout = sys.stdout
        sys.stdout = sys.stderr  # the CLI's own output must not mix with our JSON line
        try:
            result = _run_cli(source, workdir, base_url)
        finally:
            sys.stdout = real_stdout
    print(json.dumps(result))


def _spawn(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"child {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    result["stderr_tail"] = done.stderr.strip().splitlines()[-3:]
    return result


def _ledger_rows(workdir: Path) -> int:
    import duckdb

    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM numberyo.check_requests").fetchone()
    return int(row[0]) if row else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="source rows (repeatable)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return

    sys.path.insert(0, str(HERE))
    from bench_check import start_simulator

    sizes = args.rows or [100_000, 1_000_000]
    proc, url = start_simulator(0.0, credits=10_000)
    out: dict[str, Any] = {"max_checks": MAX_CHECKS, "reps": args.reps, "sizes": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="numberyo-bench-large-") as tmp:
            floors = []
            for rows in sizes:
                source = build_source(rows, Path(tmp))
                runs = []
                for rep in range(args.reps):
                    floors.append(_spawn("floor")["vmhwm_mb"])
                    workdir = Path(tmp) / f"run-{rows}-{rep}"
                    workdir.mkdir()
                    run = _spawn("cli", source, str(workdir), url)
                    run["check_requests"] = _ledger_rows(workdir)
                    runs.append(run)
                    print(
                        f"{rows:>9,} rows rep {rep + 1}: exit {run['exit']}, {run['wall_s']} s, "
                        f"VmHWM {run['vmhwm_mb']} MB, check_requests {run['check_requests']:,}",
                        file=sys.stderr,
                    )
                    for name, seconds in run["phases_s"].items():
                        print(
                            f"    {name:32} {seconds:>7.2f} s   VmHWM after "
                            f"{run['vmhwm_after_mb'][name]:>6.1f} MB",
                            file=sys.stderr,
                        )
                    if run["exit"]:
                        print(f"    {run['stderr_tail']}", file=sys.stderr)
                out["sizes"][str(rows)] = {
                    "wall_s": statistics.median(r["wall_s"] for r in runs),
                    "vmhwm_mb": statistics.median(r["vmhwm_mb"] for r in runs),
                    "exit": [r["exit"] for r in runs],
                    "check_requests": [r["check_requests"] for r in runs],
                    "runs": runs,
                }
            out["import_floor_mb"] = statistics.median(floors)
    finally:
        proc.terminate()
        proc.wait(10)
    floor = out["import_floor_mb"]
    out["cpus"] = os.cpu_count()
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(f"import floor: VmHWM {floor} MB (median of {len(floors)})")
    for rows, r in out["sizes"].items():
        print(
            f"{int(rows):>9,} source rows: {r['wall_s']} s, VmHWM {r['vmhwm_mb']} MB "
            f"(+{r['vmhwm_mb'] - floor:.1f} MB over the floor), exit {r['exit']}, "
            f"check_requests {r['check_requests']}"
        )
    if len(out["sizes"]) >= 2:
        values = list(out["sizes"].values())
        small, big = values[0], values[-1]
        print(
            f"largest vs smallest: {big['vmhwm_mb'] - small['vmhwm_mb']:+.1f} MB, "
            f"{big['wall_s'] / small['wall_s']:.1f}x the time"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
