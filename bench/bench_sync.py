"""Sync benchmark: wall time against the request-bound ideal, peak memory against the import floor.

Every history spans years (``--span-days``, default 1,825: five years, with the simulator's bulk
jobs and quiet weekends), because costs that grow with the number of days a load covers only show
on such histories; the simulator runs in its own process, as the real API would.

1. Wall time: for each size of ``--checks`` (2,000 and 10,000), ``--reps`` (3) backfills with
   ``--latency-ms`` (20) of latency per request and ``--concurrency`` (16) workers, each in a fresh
   process into a fresh DuckDB file. The wall time is the child process's, from its start to its
   exit (interpreter, imports and DuckDB file included: what a scheduler's task costs), the
   ideal ``requests x latency / workers`` (every worker always waiting on a request, zero
   overhead). Reported: the ratio wall / ideal (1.00 = ideal), and the sync's own ``run_sync``
   time. Then an incremental run with nothing new (cold process, after a backfill of the same
   account), and with ``--postgres-url`` the same backfills into a fresh PostgreSQL database.
   For context the *client ceiling*: the same number of result requests (at most 5,000) through
   a bare client with the same workers and nothing else, run right after each backfill, so each
   pair shares the machine's drift. Last, incremental runs with nothing new at
   ``--incremental-latency-ms`` (200: an API across the internet), against the same list
   requests one after the other through a bare client.
2. Peak memory: the RSS high-water mark (``VmHWM``) of a fresh process running one backfill per
   ``--memory-sizes`` (10,000 and 100,000 checks) at no latency, on default settings, against
   the *import floor* measured in the same run: a fresh process that only imports pyarrow,
   duckdb, sqlalchemy, requests and the sync's modules (issue 13's floor). The high-water mark
   just before the commit is reported too, the process's CPU time per check (at no latency,
   imports included) against its same-run baseline, a fresh process sending the same requests
   through a bare client (:func:`bare_cpu_child`: how much of the CPU is the HTTP stack's on this
   machine), and with ``--postgres-url`` the same runs into PostgreSQL. Each size runs
   twice: through ``run_sync`` in a Python process (a library caller, pyarrow's default
   allocator) and through the ``numberyo sync`` command (which picks pyarrow's system allocator).
   Beside each DuckDB size, a second baseline: the *DuckDB load alone*, a fresh process that
   imports the same modules, opens a new DuckDB file and commits the very files the library run
   landed (what DuckDB itself needs to load those rows: its code, its catalog, the merge). The
   sync's peak minus that peak is the sync's own cost: listing, fetching, normalizing, landing.
3. Files landed per table by every run above.

The package's bytecode is written first (:func:`compile_package`), so the cold processes load
it as an installed package would, whatever ``PYTHONDONTWRITEBYTECODE`` says. One script of about
750 lines: every measured process is a child of this same script (``--*-child``), so each
measurement and its child side stay together.

    .venv/bin/python bench/bench_sync.py [--checks 2000,10000] [--latency-ms 20] [--concurrency 16]
        [--reps 3] [--span-days 1825] [--memory-sizes 10000,100000] [--incremental-latency-ms 200]
        [--skip-throughput] [--skip-memory]
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
from datetime import UTC
from pathlib import Path
from typing import Any

TOKEN = "bench-token"
#: The import floor's modules, as issue 13 defines the floor (pyarrow + duckdb + sqlalchemy +
#: requests) plus the sync's own; a DuckDB sync itself no longer imports sqlalchemy.
SYNC_IMPORTS = (
    "pyarrow",
    "pyarrow.parquet",
    "duckdb",
    "sqlalchemy",
    "requests",
    "numberyo_provider.sync",
    "numberyo_provider.sync.land",
    "numberyo_provider.warehouse.duckdb",
)


@contextmanager
def simulator(checks: int, latency_ms: float, span_days: int) -> Iterator[str]:
    """A simulator in its own process (so its CPU is not the syncing process's); yields its URL."""
    command = [
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
    ]
    if span_days:
        command += ["--seed-span-days", str(span_days)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
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


def _rss_file_mb() -> float:
    """This process's resident file-backed pages now (``RssFile``: the mapped code of pyarrow,
    DuckDB and the interpreter). How many of them count in RSS depends on the page cache (the
    kernel maps cached neighbours of a faulted page), which moved the import floor between 104 and
    144 MB from one run to the next on one machine; they are not unmapped once mapped, so the
    peak minus them at exit is the peak of the process's own memory, the stable figure."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 1024
    return 0.0


def one_sync(
    url: str, workers: int, workdir: Path, warehouse: str | None = None, keep: bool = False
) -> dict[str, Any]:
    """One sync into ``workdir`` (fresh unless ``keep``: then an incremental run on what an
    earlier ``keep`` run left there)."""
    from numberyo_provider.sync import run_sync

    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
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
    landing = workdir / "landing"
    files = {
        table.name: len(list(table.rglob("*.parquet")))
        for table in sorted(landing.iterdir())
        if table.is_dir()
    }
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        **marks,
        "load_id": summary.load_id,
        "sync_s": wall,
        "requests": requests,
        "pages": summary.pages,
        "checks": summary.checks_new,
        "passes": summary.listing_passes,
        "files_per_table": files,
    }


def load_alone(workdir: Path, load_id: str) -> dict[str, Any]:
    """Commit what load ``load_id`` landed under ``workdir/landing`` into a new DuckDB file,
    in this (fresh) process: the peak of a process that only loads those rows into DuckDB."""
    import importlib
    from datetime import datetime

    for module in SYNC_IMPORTS:
        importlib.import_module(module)
    from numberyo_provider.schema import DATA_TABLES
    from numberyo_provider.sync.land import find_landed_files
    from numberyo_provider.warehouse import connect_warehouse
    from numberyo_provider.warehouse.base import LoadCommit

    root = str(workdir / "landing")
    files = [f for table in DATA_TABLES for f in find_landed_files(root, table, load_id)]
    target = workdir / "load-alone.duckdb"
    with connect_warehouse(f"duckdb:///{target}") as wh:
        wh.ensure_schema()
        result = wh.commit_load(
            LoadCommit(
                load_id=load_id,
                kind="sync",
                started_at=datetime.now(UTC),
                files=files,
                watermark=None,
                errors=[],
            )
        )
    peak = _maxrss_mb()
    return {
        "maxrss_mb": peak,
        "own_mb": peak - _rss_file_mb(),
        "rows": dict(result.rows),
        "files": len(files),
    }


def compile_package() -> None:
    """Write the package's bytecode, as pip does when it installs a wheel. An editable checkout
    run under ``PYTHONDONTWRITEBYTECODE=1`` (set on our build machines) would otherwise compile
    its ~40 modules again in every cold process: 65 ms that no installed package pays."""
    import compileall

    import numberyo_provider

    compileall.compile_dir(str(Path(numberyo_provider.__file__).parent), quiet=1)


def child(command: list[str]) -> tuple[dict[str, Any], float]:
    """Run a child of this script; its last stdout line (JSON) and its wall time from spawn."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[2:4])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def floor_child() -> dict[str, float]:
    """In the fresh process :func:`import_floor` starts: the peak after the imports alone, then
    after a DuckDB file is opened, each with and without the mapped files."""
    import importlib

    for module in SYNC_IMPORTS:
        importlib.import_module(module)
    imports = _maxrss_mb()
    imports_file = _rss_file_mb()
    # DuckDB's first connection builds its catalog of functions and keeps it (~25 MB): a floor
    # for any process that opens a DuckDB file, reported beside the bare imports.
    with tempfile.TemporaryDirectory() as tmp:
        from numberyo_provider.warehouse import connect_warehouse

        with connect_warehouse(f"duckdb:///{tmp}/floor.duckdb") as wh:
            wh.ensure_schema()
    return {
        "maxrss_mb": imports,
        "with_duckdb_mb": _maxrss_mb(),
        "own_mb": imports - imports_file,
        "with_duckdb_own_mb": _maxrss_mb() - _rss_file_mb(),
    }


def import_floor() -> dict[str, float]:
    """Peak RSS and wall time of a fresh process that only imports :data:`SYNC_IMPORTS`."""
    result, wall = child([sys.executable, __file__, "--floor-child"])
    return {**result, "wall_s": wall}


def client_ceiling(url: str, workers: int, n: int) -> float:
    """Seconds for ``n`` bare result requests with ``workers`` threads (the machine's limit)."""
    from numberyo_provider.api.client import NumberYoClient

    with NumberYoClient(TOKEN, url, pool_size=workers) as client:
        client.get_results(1)
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(client.get_results, range(1, n + 1)):
                pass
        return time.perf_counter() - started


def bare_cpu_child(url: str, workers: int) -> dict[str, Any]:
    """In the fresh process :func:`memory` starts: a backfill's requests (every page, then every
    check's results) through a bare client with ``workers`` threads and nothing else. Its CPU, the
    whole process's as for a sync, is the same-run baseline of the sync's CPU per check."""
    from numberyo_provider.api.client import NumberYoClient

    with (
        NumberYoClient(TOKEN, url, pool_size=workers) as client,
        ThreadPoolExecutor(workers) as pool,
    ):
        first = client.list_checks(1)
        rest = pool.map(client.list_checks, range(2, first.pagination.total_pages + 1))
        ids = [check.id for page in [first, *rest] for check in page.checks]
        for _ in pool.map(client.get_results, ids):
            pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pages = first.pagination.total_pages
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "checks": len(ids),
        "requests": pages + len(ids),
    }


def throughput(args: argparse.Namespace, workdir: Path, checks: int) -> dict[str, Any]:
    runs = []
    ceilings = []
    with simulator(checks, args.latency_ms, args.span_days) as url:
        for rep in range(args.reps):
            run, wall = child(
                [
                    sys.executable,
                    __file__,
                    "--sync-child",
                    url,
                    "--concurrency",
                    str(args.workers),
                    "--workdir",
                    str(workdir / f"tp-{checks}-{rep}"),
                ]
            )
            run["wall_s"] = wall
            run["ideal_s"] = run["requests"] * args.latency_ms / 1000 / args.workers
            run["x_ideal"] = wall / run["ideal_s"]
            # The bare client right after each rep, not all after the last: this machine's
            # speed drifts within minutes, and a pair measured together shares the drift.
            n = min(checks, 5000)
            ceiling = client_ceiling(url, args.workers, n) / (
                n * args.latency_ms / 1000 / args.workers
            )
            ceilings.append(ceiling)
            run["client_ceiling_x_ideal"] = ceiling
            runs.append(run)
            print(
                f"  {checks:>6,} checks, rep {rep + 1}: {run['requests']} requests, cold process "
                f"{wall:.2f} s (run_sync {run['sync_s']:.2f} s) vs ideal {run['ideal_s']:.2f} s: "
                f"{run['x_ideal']:.2f}x (bare client just after: {ceiling:.2f}x); "
                f"files {run['files_per_table']}",
                flush=True,
            )
        base = [sys.executable, __file__, "--sync-child", url, "--concurrency", str(args.workers)]
        incremental = incremental_runs(args, url, workdir / f"inc-{checks}")
        inc = statistics.median(r["wall_s"] for r in incremental)
        print(
            f"  incremental run with nothing new: {inc:.2f} s cold process (run_sync "
            f"{statistics.median(r['sync_s'] for r in incremental):.2f} s, "
            f"{incremental[0]['pages']} page(s))",
            flush=True,
        )
        # The same backfill into PostgreSQL (a fresh database per rep): a server warehouse is
        # set up before the first request (only a query can tell it is empty).
        postgres_runs = []
        for rep in range(args.reps if args.postgres_url else 0):
            with postgres_database(args.postgres_url) as pg_url:
                run, wall = child(
                    [
                        *base,
                        "--workdir",
                        str(workdir / f"tp-pg-{checks}-{rep}"),
                        "--warehouse",
                        pg_url,
                    ]
                )
            ideal_s = run["requests"] * args.latency_ms / 1000 / args.workers
            postgres_runs.append(
                {"wall_s": wall, "sync_s": run["sync_s"], "x_ideal": wall / ideal_s}
            )
        if postgres_runs:
            pg = statistics.median(r["x_ideal"] for r in postgres_runs)
            print(
                f"  into PostgreSQL: cold process "
                f"{statistics.median(r['wall_s'] for r in postgres_runs):.2f} s = {pg:.2f}x the "
                f"ideal (run_sync {statistics.median(r['sync_s'] for r in postgres_runs):.2f} s)",
                flush=True,
            )
    return {
        "postgres_runs": postgres_runs,
        "median_postgres_x_ideal": (
            statistics.median(r["x_ideal"] for r in postgres_runs) if postgres_runs else None
        ),
        "checks": checks,
        "span_days": args.span_days,
        "latency_ms": args.latency_ms,
        "workers": args.workers,
        "runs": runs,
        "median_wall_s": statistics.median(r["wall_s"] for r in runs),
        "median_sync_s": statistics.median(r["sync_s"] for r in runs),
        "median_ideal_s": statistics.median(r["ideal_s"] for r in runs),
        "median_x_ideal": statistics.median(r["x_ideal"] for r in runs),
        "incremental_runs": incremental,
        "median_incremental_s": inc,
        "client_ceiling_x_ideal": statistics.median(ceilings),
        "median_x_client": statistics.median(
            r["x_ideal"] / r["client_ceiling_x_ideal"] for r in runs
        ),
    }


def incremental_runs(args: argparse.Namespace, url: str, workdir: Path) -> list[dict[str, Any]]:
    """``--reps`` incremental runs with nothing new, each a cold process, after one backfill of
    the same account into ``workdir``."""
    keep = [
        *(sys.executable, __file__, "--sync-child", url, "--concurrency", str(args.workers)),
        *("--workdir", str(workdir), "--keep"),
    ]
    child(keep)
    runs = []
    for _ in range(args.reps):
        run, wall = child(keep)
        runs.append({"wall_s": wall, "sync_s": run["sync_s"], "pages": run["pages"]})
    return runs


def incremental_at_latency(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Incremental runs with nothing new at ``--incremental-latency-ms`` (an API across the
    internet rather than on loopback), after one backfill of 200 checks; the baseline is the
    same list requests one after the other through a bare client, in the same run."""
    from numberyo_provider.api.client import NumberYoClient

    latency = args.incremental_latency_ms
    with simulator(200, latency, args.span_days) as url:
        runs = incremental_runs(args, url, workdir / "inc-latency")
        pages = runs[0]["pages"]
        bare = []
        with NumberYoClient(TOKEN, url) as client:
            for _ in range(args.reps):
                started = time.perf_counter()
                for number in range(1, pages + 1):
                    client.list_checks(number)
                bare.append(time.perf_counter() - started)
    return {
        "latency_ms": latency,
        "runs": runs,
        "pages": pages,
        "median_wall_s": statistics.median(r["wall_s"] for r in runs),
        "median_sync_s": statistics.median(r["sync_s"] for r in runs),
        "median_bare_pages_s": statistics.median(bare),
    }


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


#: How the memory runs sync: through ``run_sync`` in a Python process (a library caller, pyarrow's
#: default allocator unless the environment names one) and through the ``numberyo sync`` command
#: (its console entry sets the system allocator first; numberyo_provider/cli/__init__.py).
MEMORY_MODES = ("library", "cli")


def memory(
    args: argparse.Namespace, workdir: Path, backend: str, floor: dict[str, float]
) -> dict[str, Any]:
    sizes = [int(s) for s in args.memory_sizes.split(",") if s]
    out: dict[str, dict[str, Any]] = {mode: {} for mode in MEMORY_MODES}
    bare_runs: dict[str, dict[str, Any]] = {}
    for size in sizes:
        with simulator(size, 0, args.span_days) as url:
            bare, _ = child([sys.executable, __file__, "--bare-cpu-child", url, "--concurrency",
                             str(args.workers)])  # fmt: skip
            bare_cpu_ms = bare["cpu_s"] * 1000 / max(1, bare["checks"])
            bare_runs[str(size)] = {**bare, "cpu_ms_per_check": bare_cpu_ms}
            print(
                f"  {backend:8} {'bare':7} {size:>7,} checks: the same requests through a bare "
                f"client, CPU {bare_cpu_ms:.2f} ms a check (whole process)",
                flush=True,
            )
            for mode in MEMORY_MODES:
                with contextlib.ExitStack() as stack:
                    command = [
                        sys.executable,
                        __file__,
                        "--sync-child" if mode == "library" else "--cli-child",
                        url,
                        "--concurrency",
                        str(args.workers),
                        "--workdir",
                        str(workdir / f"mem-{backend}-{size}-{mode}"),
                    ]
                    if backend == "postgres":
                        command += [
                            "--warehouse",
                            stack.enter_context(postgres_database(args.postgres_url)),
                        ]
                    alone = backend == "duckdb" and mode == "library"
                    if alone:  # keep the landed files for the DuckDB-alone baseline
                        command.append("--keep")
                    result, wall = child(command)
                if alone:
                    workdir_run = Path(command[command.index("--workdir") + 1])
                    baseline, _ = child(
                        [
                            sys.executable,
                            __file__,
                            "--load-alone-child",
                            result["load_id"],
                            "--workdir",
                            str(workdir_run),
                        ]
                    )
                    shutil.rmtree(workdir_run, ignore_errors=True)
                    result["load_alone"] = baseline
                result["wall_s"] = wall
                result["cpu_ms_per_check"] = result["cpu_s"] * 1000 / max(1, result["checks"])
                result["bare_client_cpu_ms_per_check"] = bare_cpu_ms
                result["cpu_x_bare_client"] = result["cpu_ms_per_check"] / bare_cpu_ms
                result["x_floor"] = result["maxrss_mb"] / floor["maxrss_mb"]
                result["x_floor_with_duckdb"] = result["maxrss_mb"] / floor["with_duckdb_mb"]
                result["own_x_floor"] = result["own_mb"] / floor["own_mb"]
                out[mode][str(size)] = result
                before = result.get("extract_peak_mb")
                print(
                    f"  {backend:8} {mode:7} {size:>7,} checks: peak RSS "
                    f"{result['maxrss_mb']:.1f} MB = {result['x_floor']:.2f}x the import floor "
                    f"({result['x_floor_with_duckdb']:.2f}x with DuckDB opened; without mapped "
                    f"files {result['own_mb']:.1f} MB = {result['own_x_floor']:.2f}x)"
                    + (f", before the commit {before:.1f} MB" if before is not None else "")
                    + f" ({wall:.1f} s, CPU {result['cpu_ms_per_check']:.2f} ms a check = "
                    f"{result['cpu_x_bare_client']:.2f}x the bare client's, Arrow allocator "
                    f"{result['arrow_pool']}); files {result['files_per_table']}",
                    flush=True,
                )
                if "load_alone" in result:
                    base = result["load_alone"]
                    x_floor = base["maxrss_mb"] / floor["maxrss_mb"]
                    print(
                        f"  {'':8} {'':7} {'':>7}         DuckDB load alone of the same files: "
                        f"{base['maxrss_mb']:.1f} MB = {x_floor:.2f}x "
                        f"the import floor (without mapped files {base['own_mb']:.1f} MB); the "
                        f"sync {result['maxrss_mb'] / base['maxrss_mb']:.2f}x of it, "
                        f"{result['maxrss_mb'] - base['maxrss_mb']:+.1f} MB",
                        flush=True,
                    )
    summary: dict[str, Any] = {
        "backend": backend,
        "span_days": args.span_days,
        "bare_client": bare_runs,
    }
    for mode, runs in out.items():
        peaks = [v["maxrss_mb"] for v in runs.values()]
        extract = [v["extract_peak_mb"] for v in runs.values() if "extract_peak_mb" in v]
        summary[mode] = {
            "sizes": runs,
            "spread_mb": max(peaks) - min(peaks) if peaks else 0.0,
            "extract_spread_mb": max(extract) - min(extract) if extract else None,
        }
    return summary


def cli_sync(url: str, workers: int, workdir: Path, warehouse: str | None) -> dict[str, Any]:
    """One ``numberyo sync`` into a fresh ``workdir``, run by the console entry in this process
    (so that its process defaults apply: this process has not imported pyarrow yet)."""
    import io

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    os.environ["NUMBERYO_API_TOKEN"] = TOKEN
    sys.argv = [
        "numberyo",
        "sync",
        "--base-url",
        url,
        "--warehouse",
        warehouse or f"duckdb:///{workdir / 'wh.duckdb'}",
        "--parquet-path",
        str(workdir / "landing"),
        "--concurrency",
        str(workers),
        "--json",
        "--no-progress",
    ]
    from numberyo_provider.cli import console_main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = console_main()
    if code:
        raise RuntimeError(f"numberyo sync exited {code}: {printed.getvalue()[-2000:]}")
    summary = json.loads(printed.getvalue())
    landing = workdir / "landing"
    files = {t.name: len(list(t.rglob("*.parquet"))) for t in sorted(landing.iterdir())}
    shutil.rmtree(workdir, ignore_errors=True)
    return {"checks": summary["checks_new"], "files_per_table": files}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", default="2000,10000", help="sizes of the wall-time runs")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    # --workers: the flag's name before 0.2 (one name per idea), still taken.
    parser.add_argument(
        "--concurrency", "--workers", dest="workers", metavar="N", type=int, default=16
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--incremental-latency-ms",
        type=float,
        default=200.0,
        help="latency of the extra incremental runs (an API across the internet); 0 skips them",
    )
    parser.add_argument(
        "--span-days", type=int, default=1825, help="days the seeded history spans (1825)"
    )
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
    parser.add_argument("--sync-child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--cli-child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--floor-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load-alone-child", metavar="LOAD_ID", help=argparse.SUPPRESS)
    parser.add_argument("--bare-cpu-child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.floor_child:
        print(json.dumps(floor_child()))
        return 0
    if args.bare_cpu_child:
        print(json.dumps(bare_cpu_child(args.bare_cpu_child, args.workers)))
        return 0
    if args.load_alone_child:
        print(json.dumps(load_alone(args.workdir, args.load_alone_child)))
        return 0
    if args.sync_child or args.cli_child:
        if args.sync_child:
            run = one_sync(args.sync_child, args.workers, args.workdir, args.warehouse, args.keep)
        else:
            run = cli_sync(args.cli_child, args.workers, args.workdir, args.warehouse)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime  # the whole process: imports included
        import pyarrow

        pool = pyarrow.default_memory_pool().backend_name
        peak = _maxrss_mb()
        print(
            json.dumps(
                {
                    "maxrss_mb": peak,
                    "own_mb": peak - _rss_file_mb(),
                    "cpu_s": cpu,
                    "arrow_pool": pool,
                    **run,
                }
            )
        )
        return 0

    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
    }
    print(f"Load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    compile_package()
    with tempfile.TemporaryDirectory(prefix="numberyo-bench-sync-") as tmp:
        workdir = Path(tmp)
        floor = import_floor()
        results["import_floor"] = floor
        print(
            f"Import floor (a fresh process importing pyarrow, duckdb, sqlalchemy, requests "
            f"and the sync's modules): "
            f"{floor['maxrss_mb']:.1f} MB ({floor['with_duckdb_mb']:.1f} MB once a DuckDB file "
            f"was opened; without mapped files {floor['own_mb']:.1f} / "
            f"{floor['with_duckdb_own_mb']:.1f} MB), {floor['wall_s']:.2f} s",
            flush=True,
        )
        if not args.skip_throughput:
            results["throughput"] = []
            for checks in [int(c) for c in args.checks.split(",") if c]:
                print(
                    f"Wall time: backfill of {checks:,} checks over {args.span_days} days, "
                    f"{args.latency_ms:g} ms latency, {args.workers} workers, cold process",
                    flush=True,
                )
                t = throughput(args, workdir, checks)
                results["throughput"].append(t)
                print(
                    f"  median {t['median_wall_s']:.2f} s vs ideal {t['median_ideal_s']:.2f} s: "
                    f"{t['median_x_ideal']:.2f}x the ideal (run_sync alone "
                    f"{t['median_sync_s']:.2f} s); bare-client ceiling on this machine "
                    f"{t['client_ceiling_x_ideal']:.2f}x; the sync {t['median_x_client']:.2f}x "
                    f"of the bare client run just after it",
                    flush=True,
                )
        if not args.skip_throughput and args.incremental_latency_ms > 0:
            inc = incremental_at_latency(args, workdir)
            results["incremental_at_latency"] = inc
            print(
                f"Incremental run with nothing new at {inc['latency_ms']:g} ms latency: "
                f"{inc['median_wall_s']:.2f} s cold process "
                f"(run_sync {inc['median_sync_s']:.2f} s, {inc['pages']} page(s)); the same "
                f"pages one after the other through a bare client "
                f"{inc['median_bare_pages_s']:.2f} s",
                flush=True,
            )
        if not args.skip_memory:
            print(
                f"Peak memory (fresh process per size, no latency, {args.span_days} days):",
                flush=True,
            )
            backends = ["duckdb"] + (["postgres"] if args.postgres_url else [])
            results["memory"] = {}
            for backend in backends:
                m = memory(args, workdir, backend, floor)
                results["memory"][backend] = m
                for mode in MEMORY_MODES:
                    spread = m[mode]["extract_spread_mb"]
                    print(
                        f"  {backend} {mode}: spread {m[mode]['spread_mb']:.1f} MB"
                        + (f"; before the commit {spread:.1f} MB" if spread is not None else ""),
                        flush=True,
                    )
    results["load_average_after"] = os.getloadavg()
    print(f"Load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
