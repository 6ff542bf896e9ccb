"""Load benchmark: 1,000,000 ``hlr_results`` rows from landed Parquet into the warehouse.

DuckDB: ``DuckDBWarehouse.commit_load`` (one transaction: schema-checked ``read_parquet``, casts,
de-duplication check, delete + insert by key, manifest, watermark) against DuckDB's own
``CREATE TABLE AS SELECT * FROM read_parquet(...)`` on the same files, in the same run, on DuckDB's
defaults and within the loader's own ``memory_limit`` (64MB: what that limit costs). Both timings
include opening and closing the database file (the close checkpoints the data).

PostgreSQL (informational): ``SqlWarehouse.commit_load`` (COPY into a temp table, then
``INSERT ... ON CONFLICT`` into the keyed table) against a bare ``COPY`` of the same rows into an
unkeyed table.

    .venv/bin/python bench/bench_load.py [--rows 1000000] [--reps 3]
        [--postgres-url ADMIN_URL | --no-postgres] [--json bench/results/load.json]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from numberyo_provider.schema import HLR_RESULTS
from numberyo_provider.sync.land import LandedFile, ParquetLander
from numberyo_provider.warehouse import LoadCommit, Warehouse, Watermark, connect_warehouse
from numberyo_provider.warehouse.duckdb import DEFAULT_MEMORY_LIMIT

BATCH = 50_000
BASE_TS = datetime(2025, 3, 1, tzinfo=UTC)


def hlr_batch(start: int, n: int) -> pa.Table:
    """Realistic HLR result rows: unique keys, phone-like strings, a few distinct days."""
    ids = pa.array(range(start, start + n), pa.int64())
    digits = pc.cast(pc.add(ids, 32_456_000_000), pa.string())
    micros = pc.add(pc.multiply(ids, 2_000_000), int(BASE_TS.timestamp() * 1_000_000))
    return pa.table(
        {
            "check_id": ids,
            "result_index": pa.array([0] * n, pa.int32()),
            "country_code": pa.array([32] * n, pa.int32()),
            "country_name": pa.array(["Belgium"] * n),
            "operator_name": pa.array(["Proximus NV van publiek recht"] * n),
            "msisdn": digits,
            "ported": pc.less(pc.random(n), 0.1),
            "reachable": pc.less(pc.random(n), 0.9),
            "valid_number": pc.less(pc.random(n), 0.95),
            "plmn": pa.array(["20601"] * n),
            "mcc": pa.array(["206"] * n),
            "mnc": pa.array(["01"] * n),
            "imsi": pc.cast(pc.add(ids, 206_010_000_000_000), pa.string()),
            "local_format": pc.cast(pc.add(ids, 456_000_000), pa.string()),
            "msc": pa.nulls(n, pa.string()),
            "original_operator_name": pa.nulls(n, pa.string()),
            "number_requested": digits,
            "created_at": pc.cast(micros, pa.timestamp("us", tz="UTC")),
            "extra": pa.nulls(n, pa.string()),
        }
    )


def land(root: Path, rows: int) -> list[LandedFile]:
    lander = ParquetLander(str(root), "bench-load")
    for start in range(0, rows, BATCH):
        lander.write(HLR_RESULTS, hlr_batch(start + 1, min(BATCH, rows - start)))
    return lander.flush()


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _commit(wh: Warehouse, commit: LoadCommit) -> None:
    wh.commit_load(commit)


def bench_duckdb(work: Path, files: list[LandedFile], reps: int) -> dict[str, object]:
    paths = [f.path for f in files]
    commit = LoadCommit(
        load_id="bench-load",
        kind="sync",
        started_at=datetime.now(UTC),
        files=files,
        watermark=Watermark(len(paths), BASE_TS + timedelta(days=1)),
        errors=[],
    )
    loader, ctas, ctas_limited, reload = [], [], [], []
    for rep in range(reps):
        base = work / f"ctas-{rep}.duckdb"
        limited = work / f"ctas-limited-{rep}.duckdb"

        def run_ctas(path: Path = base, config: dict[str, str] | None = None) -> None:
            con = duckdb.connect(str(path), config=config or {})
            con.execute("CREATE TABLE t AS SELECT * FROM read_parquet($f)", {"f": paths})
            con.close()

        ctas.append(timed(run_ctas))
        # The same statement within the memory the loader allows itself: what the limit costs.
        ctas_limited.append(
            timed(functools.partial(run_ctas, limited, {"memory_limit": DEFAULT_MEMORY_LIMIT}))
        )
        db = work / f"loader-{rep}.duckdb"
        wh = connect_warehouse(f"duckdb:///{db}")
        wh.ensure_schema()
        loader.append(timed(functools.partial(_commit, wh, commit)))
        reload.append(timed(functools.partial(_commit, wh, commit)))
        count = wh.query("SELECT count(*) FROM numberyo.hlr_results")[0][0]
        assert count == sum(f.rows for f in files), count
        wh.close()
        for p in (base, limited, db):
            p.unlink()
    m_loader, m_ctas = statistics.median(loader), statistics.median(ctas)
    m_limited = statistics.median(ctas_limited)
    return {
        "loader_s": loader,
        "ctas_s": ctas,
        "ctas_limited_s": ctas_limited,
        "median_ctas_limited_s": m_limited,
        "ratio_same_limit": m_loader / m_limited,
        "reload_s": reload,
        "median_loader_s": m_loader,
        "median_ctas_s": m_ctas,
        "median_reload_s": statistics.median(reload),
        "ratio": m_loader / m_ctas,
    }


def bench_postgres(admin_url: str, files: list[LandedFile], reps: int) -> dict[str, object]:
    import sqlalchemy as sa

    commit = LoadCommit("bench-load", "sync", datetime.now(UTC), files, None, [])
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    loader, plain = [], []
    names = [n for n in HLR_RESULTS.schema.names if not n.startswith("_")]
    for _ in range(reps):
        name = f"numberyo_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.engine.make_url(admin_url).set(database=name)
        try:
            wh = connect_warehouse(url.render_as_string(hide_password=False))
            wh.ensure_schema()
            loader.append(timed(functools.partial(_commit, wh, commit)))
            wh.close()
            engine = sa.create_engine(url)

            def run_plain(engine: sa.Engine = engine) -> None:
                with engine.begin() as conn:
                    conn.exec_driver_sql(
                        "CREATE TABLE plain (check_id bigint, result_index int, country_code int,"
                        " country_name text, operator_name text, msisdn text, ported boolean,"
                        " reachable boolean, valid_number boolean, plmn text, mcc text, mnc text,"
                        " imsi text, local_format text, msc text, original_operator_name text,"
                        " number_requested text, created_at timestamptz, extra jsonb)"
                    )
                    raw = conn.connection.driver_connection
                    assert raw is not None
                    with raw.cursor() as cur, cur.copy("COPY plain FROM STDIN (FORMAT csv)") as cp:
                        for f in files:
                            for batch in pq.ParquetFile(f.path).iter_batches(65_536, columns=names):
                                buf = io.BytesIO()
                                pacsv.write_csv(
                                    pa.Table.from_batches([batch]),
                                    buf,
                                    pacsv.WriteOptions(include_header=False),
                                )
                                cp.write(buf.getbuffer())

            plain.append(timed(run_plain))
            engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()
    m_loader, m_plain = statistics.median(loader), statistics.median(plain)
    return {
        "loader_s": loader,
        "plain_copy_s": plain,
        "median_loader_s": m_loader,
        "median_plain_copy_s": m_plain,
        "ratio": m_loader / m_plain,
    }


def postgres_reachable(url: str) -> str | None:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        engine.dispose()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "NUMBERYO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="an admin URL: a throwaway database is created and dropped per repetition",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.reps < 3:
        parser.error("medians need at least 3 repetitions")
    results: dict[str, object] = {"rows": args.rows, "reps": args.reps}
    with tempfile.TemporaryDirectory(prefix="numberyo-bench-") as tmp:
        work = Path(tmp)
        t = timed(lambda: results.__setitem__("files", land(work / "land", args.rows)))
        files: list[LandedFile] = results.pop("files")  # type: ignore[assignment]
        results["landing_s"] = t
        results["parquet_files"] = len(files)
        print(f"landed {args.rows:,} rows in {len(files)} files in {t:.2f} s", flush=True)
        duck = bench_duckdb(work, files, args.reps)
        results["duckdb"] = duck
        print(
            f"DuckDB   loader median {duck['median_loader_s']:.3f} s | CTAS median "
            f"{duck['median_ctas_s']:.3f} s | ratio {duck['ratio']:.2f}x | CTAS within the "
            f"loader's memory_limit={DEFAULT_MEMORY_LIMIT} {duck['median_ctas_limited_s']:.3f} s, "
            f"ratio {duck['ratio_same_limit']:.2f}x | reload of the same load "
            f"{duck['median_reload_s']:.3f} s",
            flush=True,
        )
        if not args.no_postgres:
            reason = postgres_reachable(args.postgres_url)
            if reason:
                print(f"PostgreSQL skipped: {reason}")
            else:
                pg = bench_postgres(args.postgres_url, files, args.reps)
                results["postgres"] = pg
                print(
                    f"Postgres loader median {pg['median_loader_s']:.3f} s | bare COPY median "
                    f"{pg['median_plain_copy_s']:.3f} s | ratio {pg['ratio']:.2f}x"
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
