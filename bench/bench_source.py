"""How much memory streaming a source table costs: proof that it is bounded, not per row.

Builds a contacts table (DuckDB file, SQLite file, PostgreSQL) and measures, each in a fresh
process so that nothing earlier pollutes the figures:

* ``stream``: :func:`iter_source_values` over the whole table;
* ``pipeline``: the same plus to E.164, deduplicate and shard every value (what a check run does
  before paying);
* ``fetchall``: the naive reference, every row read at once.

Peak RSS growth is sampled by a background thread (every 5 ms) and after every chunk, so it also
sees memory allocated by the database drivers in C, which ``tracemalloc`` would miss.

    .venv/bin/python bench/bench_source.py                     # 100,000 rows, duckdb + sqlite
    .venv/bin/python bench/bench_source.py --rows 100000 --rows 1000000 --backend postgres
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

PG_URL = os.environ.get(
    "NUMBERYO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
UNIQUE = 0.9  # a tenth of the rows repeat an earlier number, as real contact lists do


def _build(backend: str, rows: int, workdir: Path) -> str:
    unique = max(1, int(rows * UNIQUE))
    if backend == "duckdb":
        import duckdb

        path = workdir / f"contacts_{rows}.duckdb"
        with duckdb.connect(str(path)) as duck:
            duck.execute(
                "CREATE TABLE contacts AS SELECT range AS id, "
                f"'+32 47' || lpad(CAST(range % {unique} AS VARCHAR), 7, '0') AS phone "
                f"FROM range({rows})"
            )
        return f"duckdb:///{path}"
    if backend == "sqlite":
        path = workdir / f"contacts_{rows}.db"
        with sqlite3.connect(path) as lite:
            lite.execute(
                "CREATE TABLE contacts AS WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL "
                f"SELECT i + 1 FROM r WHERE i < {rows - 1}) "
                f"SELECT i AS id, '+32 47' || printf('%07d', i % {unique}) AS phone FROM r"
            )
        lite.close()
        return f"sqlite:///{path}"
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_contacts")
        conn.exec_driver_sql(
            "CREATE TABLE bench_contacts AS SELECT g AS id, "
            f"'+32 47' || lpad(CAST(mod(g, {unique}) AS TEXT), 7, '0') AS phone "
            f"FROM generate_series(0, {rows - 1}) AS g"
        )
    engine.dispose()
    return PG_URL


def _drop_postgres_table() -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_contacts")
    engine.dispose()


def _table(url: str) -> str:
    return "bench_contacts" if url.startswith("postgresql") else "contacts"


class _PeakRss:
    """Samples RSS in the background: peaks between two chunks are not missed."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        self.peak = max(self.peak, self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.sample()

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _child(mode: str, url: str, chunk_size: int) -> dict[str, Any]:
    import sqlalchemy as sa

    from numberyo_provider.checks.numbers import Deduplicator, E164Number, to_e164
    from numberyo_provider.checks.sharding import shard_of
    from numberyo_provider.checks.source import SourceSpec, iter_source_values

    spec = SourceSpec(url, _table(url), "phone")
    rows = chunks = valid = 0
    dedup = Deduplicator()
    per_shard = [0, 0, 0, 0]
    started = time.perf_counter()
    with _PeakRss() as rss:
        if mode == "fetchall":
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                values = conn.exec_driver_sql(f"SELECT phone FROM {_table(url)}").fetchall()
                rss.sample()
                rows, chunks = len(values), 1
                del values
            engine.dispose()
        else:
            for chunk in iter_source_values(spec, chunk_size=chunk_size):
                rows += len(chunk)
                chunks += 1
                if mode == "pipeline":
                    for raw in chunk:
                        result = to_e164(raw)
                        if isinstance(result, E164Number) and not dedup.seen(result.digits):
                            valid += 1
                            per_shard[shard_of(result.digits, 4)] += 1
                rss.sample()
    seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "rows": rows,
        "chunks": chunks,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds) if seconds else None,
        "peak_rss_growth_mb": round((rss.peak - rss.baseline) / 2**20, 1),
        "distinct_valid": valid,
        "per_shard": per_shard if mode == "pipeline" else None,
    }


def _dedup_bytes_per_number(count: int) -> float:
    """Deduplicator memory per distinct number, measured with tracemalloc."""
    import tracemalloc

    from numberyo_provider.checks.numbers import Deduplicator

    digits = [str(32_470_000_000 + i) for i in range(count)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    dedup = Deduplicator()
    for d in digits:
        dedup.seen(d)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


def _to_e164_rate(count: int) -> float:
    from numberyo_provider.checks.numbers import to_e164

    raws = [f"+32 47{i:07d}" for i in range(count)]  # all distinct: the cache does not help
    started = time.perf_counter()
    for raw in raws:
        to_e164(raw)
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="table size (repeatable)")
    parser.add_argument(
        "--backend",
        action="append",
        choices=["duckdb", "sqlite", "postgres"],
        help="backend (repeatable); default duckdb and sqlite",
    )
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--modes", default="stream,pipeline,fetchall")
    parser.add_argument(
        "--pipeline-max-rows",
        type=int,
        default=100_000,
        help="skip the (CPU-bound, ~40 us a value) pipeline mode above this size",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("MODE", "URL", "CHUNK"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        mode, url, chunk = args.child
        print(json.dumps(_child(mode, url, int(chunk))))
        return

    sizes = args.rows or [100_000]
    backends = args.backend or ["duckdb", "sqlite"]
    run: Callable[[str, str], dict[str, Any]] = lambda mode, url: json.loads(  # noqa: E731
        subprocess.run(
            [sys.executable, __file__, "--child", mode, url, str(args.chunk_size)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    print(f"chunk_size={args.chunk_size}; peak RSS growth over the child's baseline")
    header = f"{'backend':9} {'rows':>9} {'mode':9} {'seconds':>8} {'rows/s':>9} {'peak MB':>8}"
    print(header)
    with tempfile.TemporaryDirectory(prefix="numberyo-bench-source-") as tmp:
        for backend in backends:
            for rows in sizes:
                url = _build(backend, rows, Path(tmp))
                try:
                    results = [
                        run(mode, url)
                        for mode in args.modes.split(",")
                        if mode != "pipeline" or rows <= args.pipeline_max_rows
                    ]
                finally:
                    if backend == "postgres":
                        _drop_postgres_table()
                for r in results:
                    mode = r["mode"]
                    print(
                        f"{backend:9} {r['rows']:>9} {mode:9} {r['seconds']:>8} "
                        f"{r['rows_per_second']:>9} {r['peak_rss_growth_mb']:>8}"
                        + (
                            f"  distinct={r['distinct_valid']} shards={r['per_shard']}"
                            if mode == "pipeline"
                            else ""
                        )
                    )
    print(f"to_e164(): {_to_e164_rate(100_000):,.0f} distinct numbers/s")
    print(f"Deduplicator: {_dedup_bytes_per_number(1_000_000):.0f} bytes per distinct number")


if __name__ == "__main__":
    main()
