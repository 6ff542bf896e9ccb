"""Landing on S3 (moto in server mode on loopback) and loading from there into the warehouses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from numberyo_provider.schema import CHECKS, HLR_RESULTS
from numberyo_provider.sync.land import ParquetLander, remove_files
from numberyo_provider.warehouse import LoadCommit, Watermark, connect_warehouse

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

T0 = datetime(2025, 3, 30, 14, 21, tzinfo=UTC)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        # Dummy credentials: moto accepts anything; they must never reach a real account.
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.delenv("AWS_PROFILE", raising=False)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """A fresh bucket: (root URL, storage options, filesystem)."""
    options: dict[str, Any] = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
    bucket = f"numberyo-{uuid.uuid4().hex[:10]}"
    fs.mkdir(bucket)
    yield f"s3://{bucket}/landing", options, fs
    fs.rm(bucket, recursive=True)


def checks(ids: list[int]) -> pa.Table:
    return pa.table(
        {
            "check_id": pa.array(ids, pa.int64()),
            "type": ["HLR"] * len(ids),
            "created_at": pa.array([T0] * len(ids), pa.timestamp("us", tz="UTC")),
        }
    )


def results(ids: list[int]) -> pa.Table:
    return pa.table({"check_id": ids, "result_index": [0] * len(ids), "msisdn": ["32"] * len(ids)})


def test_files_land_at_their_final_keys_only(s3: tuple[str, dict[str, Any], Any]) -> None:
    root, options, fs = s3
    lander = ParquetLander(root, "load-1", storage_options=options, rows_per_file=2)
    lander.write(CHECKS, checks([1, 2, 3]))
    files = lander.flush()
    bucket = root.split("/")[2]
    partition = f"s3://{bucket}/landing/checks/type=HLR/landed_date={lander.landed_date}"
    assert [f.path for f in files] == [
        f"{partition}/load-1-00001.parquet",
        f"{partition}/load-1-00002.parquet",
    ]
    fs.invalidate_cache()
    keys = fs.find(bucket)
    assert keys == [f.path.removeprefix("s3://") for f in files]  # no temp key, nothing else
    for f in files:
        with fs.open(f.path, "rb") as handle:
            table = pq.read_table(handle)
        assert table.schema.equals(CHECKS.schema)
        assert table.num_rows == f.rows


def test_a_failed_upload_leaves_nothing(s3: tuple[str, dict[str, Any], Any]) -> None:
    _, options, fs = s3
    lander = ParquetLander("s3://no-such-bucket-numberyo/x", "load-1", storage_options=options)
    lander.write(CHECKS, checks([1]))
    with pytest.raises(OSError):
        lander.flush()
    assert lander.files == []
    assert not fs.exists("no-such-bucket-numberyo/x")


def test_abort_and_remove_files_on_s3(s3: tuple[str, dict[str, Any], Any]) -> None:
    root, options, fs = s3
    lander = ParquetLander(root, "load-1", storage_options=options)
    lander.write(CHECKS, checks([1]))
    (aborted,) = lander.flush()
    lander.abort()
    fs.invalidate_cache()
    assert not fs.exists(aborted.path)

    lander = ParquetLander(root, "load-2", storage_options=options)
    lander.write(CHECKS, checks([2]))
    lander.write(HLR_RESULTS, results([2]))
    first, second = lander.flush()
    bucket = root.split("/")[2]
    outside = f"s3://{bucket}/elsewhere/keep.parquet"
    fs.pipe(outside, b"PAR1")
    remove_files(root, [first.path, outside], storage_options=options)
    fs.invalidate_cache()
    assert not fs.exists(first.path)
    assert fs.exists(second.path) and fs.exists(outside)


def test_duckdb_loads_and_reads_landed_s3_files(
    s3: tuple[str, dict[str, Any], Any], tmp_path: Path
) -> None:
    root, options, fs = s3
    lander = ParquetLander(root, "load-1", storage_options=options)
    lander.write(CHECKS, checks([1, 2]))
    lander.write(HLR_RESULTS, results([1, 2]))
    files = lander.flush()
    with connect_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}") as wh:
        wh.ensure_schema()
        result = wh.commit_load(
            LoadCommit("load-1", "sync", T0, files, Watermark(2, T0), [], storage_options=options)
        )
        assert result.rows == {
            "checks": 2,
            "hlr_results": 2,
            "verify_results": 0,
            "other_results": 0,
        }
        assert wh.existing_check_ids([1, 2, 3]) == {1, 2}
    # Analysts can query the landing zone itself, Hive partitions included.
    con = duckdb.connect()
    con.register_filesystem(fs)
    rows = con.execute(
        "SELECT check_id, type, landed_date FROM read_parquet(?, hive_partitioning = true) "
        "ORDER BY 1",
        [f"{root}/checks/*/*/*.parquet"],
    ).fetchall()
    assert [(r[0], r[1], str(r[2])) for r in rows] == [
        (1, "HLR", lander.landed_date),
        (2, "HLR", lander.landed_date),
    ]


@pytest.mark.postgres
def test_postgres_loads_landed_s3_files(
    s3: tuple[str, dict[str, Any], Any], postgres_url: str
) -> None:
    root, options, _ = s3
    lander = ParquetLander(root, "load-1", storage_options=options)
    lander.write(CHECKS, checks([1, 2]))
    lander.write(HLR_RESULTS, results([1]))
    files = lander.flush()
    with connect_warehouse(postgres_url) as wh:
        wh.ensure_schema()
        result = wh.commit_load(
            LoadCommit("load-1", "sync", T0, files, None, [], storage_options=options)
        )
        assert result.rows == {
            "checks": 2,
            "hlr_results": 1,
            "verify_results": 0,
            "other_results": 0,
        }
        assert wh.existing_check_ids([1, 2]) == {1}
