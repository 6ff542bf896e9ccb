"""Parquet landing: layout, exact schemas, atomic files, bounded memory, clean-up."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from numberyo_provider.errors import ConfigurationError
from numberyo_provider.schema import CHECKS, HLR_RESULTS, LOADS, VERIFY_RESULTS
from numberyo_provider.sync.land import (
    LandedFile,
    ParquetLander,
    SchemaMismatchError,
    conform,
    find_landed_files,
    remove_files,
)

DAY1 = datetime(2025, 3, 30, 14, 21, tzinfo=UTC)
DAY2 = datetime(2025, 3, 31, 0, 0, 1, tzinfo=UTC)


def checks_table(ids: list[int], types: list[str], created: list[datetime]) -> pa.Table:
    return pa.table(
        {
            "check_id": pa.array(ids, pa.int64()),
            "type": types,
            "created_at": pa.array(created, pa.timestamp("us", tz="UTC")),
        }
    )


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_layout_schema_and_compression(tmp_path: Path) -> None:
    before = datetime.now(UTC).date().isoformat()
    lander = ParquetLander(str(tmp_path), "load-1")
    lander.write(
        CHECKS,
        checks_table([1, 2, 3], ["HLR", "Verify", "HLR"], [DAY1, DAY1, DAY2]),
    )
    lander.write(
        HLR_RESULTS,
        pa.table(
            {
                "check_id": [1, 3],
                "result_index": [0, 0],
                "msisdn": ["32456789023", "32456789024"],
                "created_at": pa.array([DAY1, None], pa.timestamp("us", tz="UTC")),
            }
        ),
    )
    files = lander.flush()

    # Partitioned by load (the day it landed), not by the rows' own dates: one file per table
    # and type, whatever the days the rows were created on.
    today = lander.landed_date
    assert today in {before, datetime.now(UTC).date().isoformat()}
    dirs = sorted(str(Path(f.path).parent.relative_to(tmp_path)) for f in files)
    assert dirs == [
        f"checks/type=HLR/landed_date={today}",
        f"checks/type=Verify/landed_date={today}",
        f"hlr_results/type=HLR/landed_date={today}",
    ]
    # <load_id>-<seq>.parquet, unique within the load.
    assert sorted(Path(f.path).name for f in files) == [
        f"load-1-{seq:05d}.parquet" for seq in range(1, 4)
    ]
    assert files == lander.files
    assert sum(f.rows for f in files if f.table == "checks") == 3
    for f in files:
        rel = Path(f.path).parent.relative_to(tmp_path)
        assert rel.parts[1:] == (
            f"type={f.partition['type']}",
            f"landed_date={f.partition['landed_date']}",
        )
    for f in files:
        table = CHECKS if f.table == "checks" else HLR_RESULTS
        # The exact schema, descriptions included: nothing inferred, nothing dropped.
        assert pq.read_schema(f.path).equals(table.schema, check_metadata=False)
        assert [fld.metadata for fld in pq.read_schema(f.path)] == [
            fld.metadata for fld in table.schema
        ]
        meta = pq.ParquetFile(f.path).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        assert meta.num_rows == f.rows
    # Lineage columns are filled at landing (the warehouse sets _loaded_at to the commit time).
    first = pq.read_table(files[0].path)
    assert set(first.column("_load_id").to_pylist()) == {"load-1"}
    assert first.column("_loaded_at").null_count == 0


def test_all_null_columns_keep_their_declared_type(tmp_path: Path) -> None:
    lander = ParquetLander(str(tmp_path), "load-1")
    data = checks_table([1], ["HLR"], [DAY1]).append_column("source", pa.array([None]))
    assert data.schema.field("source").type == pa.null()
    lander.write(CHECKS, data)
    (f,) = lander.flush()
    schema = pq.read_schema(f.path)
    assert schema.field("source").type == pa.string()
    assert schema.field("user_cost").type == pa.decimal128(18, 4)
    assert schema.field("extra").type == pa.string()


def test_hive_readers_see_partitions_and_columns_agree(tmp_path: Path) -> None:
    lander = ParquetLander(str(tmp_path), "load-1")
    lander.write(CHECKS, checks_table([1, 2, 3], ["HLR", "Verify", "HLR"], [DAY1, DAY1, DAY2]))
    lander.write(
        VERIFY_RESULTS,
        pa.table(
            {
                "check_id": [2],
                "result_index": [0],
                "created_at": pa.array([None], pa.timestamp("us", tz="UTC")),
            }
        ),
    )
    lander.flush()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # a bare ::DATE casts in the session's (local) zone
    today = lander.landed_date
    rows = con.execute(
        "SELECT check_id, type, created_at::DATE, landed_date FROM read_parquet(?, "
        "hive_partitioning = true) ORDER BY check_id",
        [str(tmp_path / "checks" / "**" / "*.parquet")],
    ).fetchall()
    assert [(r[0], r[1], str(r[2]), str(r[3])) for r in rows] == [
        (1, "HLR", "2025-03-30", today),
        (2, "Verify", "2025-03-30", today),
        (3, "HLR", "2025-03-31", today),
    ]
    # Filtering on the partition key prunes and still agrees with the in-file column.
    assert con.execute(
        "SELECT count(*) FROM read_parquet(?, hive_partitioning = true) WHERE type = 'Verify'",
        [str(tmp_path / "checks" / "**" / "*.parquet")],
    ).fetchone() == (1,)
    verify = con.execute(
        "SELECT check_id, type, created_at FROM read_parquet(?, hive_partitioning = true)",
        [str(tmp_path / "verify_results" / "**" / "*.parquet")],
    ).fetchall()
    assert verify == [(2, "Verify", None)]
    # pyarrow's dataset reader agrees.
    table = ds.dataset(tmp_path / "checks", format="parquet", partitioning="hive").to_table()
    assert sorted(table.column("type").to_pylist()) == ["HLR", "HLR", "Verify"]


def test_unusual_partition_values_are_encoded_and_decoded(tmp_path: Path) -> None:
    lander = ParquetLander(str(tmp_path), "load-1")
    lander.write(CHECKS, checks_table([1], ["Odd type/x"], [DAY1]))
    (f,) = lander.flush()
    assert "type=Odd%20type%2Fx" in f.path
    assert f.partition["type"] == "Odd type/x"
    row = duckdb.execute(
        "SELECT type FROM read_parquet(?, hive_partitioning = true)",
        [str(tmp_path / "checks" / "**" / "*.parquet")],
    ).fetchone()
    assert row == ("Odd type/x",)


def test_safe_casts_are_applied(tmp_path: Path) -> None:
    data = pa.table(
        {
            "check_id": pa.array([7], pa.int32()),
            "type": ["HLR"],
            "created_at": ["2025-03-30T14:10:23Z"],
            "user_cost": ["1.00"],
        }
    )
    out = conform(CHECKS, data, load_id="l", loaded_at=DAY1)
    assert out.schema.equals(CHECKS.schema)
    assert out.column("user_cost").to_pylist()[0] == pytest.approx(1)
    assert out.column("created_at").to_pylist() == [datetime(2025, 3, 30, 14, 10, 23, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            checks_table([1], ["HLR"], [DAY1]).append_column("colour", pa.array(["red"])),
            "colour",
        ),
        (pa.table({"check_id": [1], "type": ["HLR"]}), "required column created_at"),
        (
            pa.table(
                {
                    "check_id": [1],
                    "result_index": [2**40],
                }
            ),
            "hlr_results.result_index",
        ),
        (
            checks_table([1], ["HLR"], [DAY1]).set_column(
                0, "check_id", pa.array([None], pa.int64())
            ),
            "checks.check_id: 1 null value(s)",
        ),
        (
            checks_table([1], ["HLR"], [DAY1]).append_column("user_cost", pa.array(["lots"])),
            "checks.user_cost",
        ),
    ],
)
def test_schema_mismatch_names_the_column(tmp_path: Path, data: pa.Table, message: str) -> None:
    lander = ParquetLander(str(tmp_path), "load-1")
    table = HLR_RESULTS if "result_index" in data.column_names else CHECKS
    with pytest.raises(SchemaMismatchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lander.write(table, data)
    assert lander.flush() == []
    assert parquet_files(tmp_path) == []


def test_record_batches_are_accepted(tmp_path: Path) -> None:
    lander = ParquetLander(str(tmp_path), "load-1")
    for batch in checks_table([1, 2], ["HLR", "HLR"], [DAY1, DAY1]).to_batches():
        lander.write(CHECKS, batch)
    assert [f.rows for f in lander.flush()] == [2]


def test_bookkeeping_tables_are_not_landed(tmp_path: Path) -> None:
    lander = ParquetLander(str(tmp_path), "load-1")
    with pytest.raises(ConfigurationError, match="_loads"):
        lander.write(LOADS, pa.table({"load_id": ["x"]}))


@pytest.mark.parametrize(
    ("load_id", "kwargs"),
    [("../evil", {}), ("", {}), ("a b", {}), ("ok", {"rows_per_file": 0})],
)
def test_bad_arguments_are_configuration_errors(
    tmp_path: Path, load_id: str, kwargs: dict[str, int]
) -> None:
    with pytest.raises(ConfigurationError):
        ParquetLander(str(tmp_path), load_id, **kwargs)  # type: ignore[arg-type]


def test_memory_is_bounded_and_files_respect_rows_per_file(tmp_path: Path) -> None:
    lander = ParquetLander(str(tmp_path), "big", rows_per_file=100, max_buffered_rows=150)
    next_id = 0
    peak = 0
    for step in range(30):
        n = 37
        ids = list(range(next_id, next_id + n))
        next_id += n
        # Every batch spans three days and two types: the days make no partition, the types do.
        created = [DAY1 + timedelta(days=i % 3) for i in ids]
        types = ["HLR" if i % 2 else "Verify" for i in ids]
        lander.write(CHECKS, checks_table(ids, types, created))
        peak = max(peak, lander.buffered_rows)
        assert lander.buffered_rows <= 150, step
    files = lander.flush()
    assert lander.buffered_rows == 0
    assert peak > 0
    # 555 rows of each type: five full files and one of 55 each, nothing smaller.
    assert sorted(f.rows for f in files) == [55, 55] + [100] * 10
    assert len({f.path for f in files}) == len(files)
    landed = pa.concat_tables([pq.read_table(f.path) for f in files])
    assert sorted(landed.column("check_id").to_pylist()) == list(range(next_id))
    for f in files:
        t = pq.read_table(f.path)
        # Every file holds exactly the rows of its own partition, in the order they came.
        assert set(t.column("type").to_pylist()) == {f.partition["type"]}
        ids = t.column("check_id").to_pylist()
        assert ids == sorted(ids)
        # Memory was bounded by writing row groups early, not by writing more files.
        meta = pq.ParquetFile(f.path).metadata
        assert all(meta.row_group(i).num_rows <= 150 for i in range(meta.num_row_groups))


def test_a_history_of_many_days_lands_few_files(tmp_path: Path) -> None:
    """The old layout wrote a file per created day: a 3-year backfill made thousands of files,
    whose merge ran out of memory. Now the number of days does not matter."""
    lander = ParquetLander(str(tmp_path), "load-1", max_buffered_rows=500)
    for start in range(0, 3000, 100):
        ids = list(range(start, start + 100))
        created = [DAY1 - timedelta(days=i % 1095, seconds=i) for i in ids]
        types = ["HLR" if i % 3 else "Verify" for i in ids]
        lander.write(CHECKS, checks_table(ids, types, created))
    files = lander.flush()
    assert sorted((f.partition["type"], f.rows) for f in files) == [("HLR", 2000), ("Verify", 1000)]
    rows = duckdb.execute(
        "SELECT count(*), count(DISTINCT created_at::DATE) FROM read_parquet(?, "
        "hive_partitioning = true)",
        [str(tmp_path / "checks" / "**" / "*.parquet")],
    ).fetchone()
    assert rows == (3000, 1095)


def test_files_are_invisible_until_finished(tmp_path: Path) -> None:
    lander = ParquetLander(str(tmp_path), "load-1", max_buffered_rows=2)
    lander.write(CHECKS, checks_table([1, 2, 3], ["HLR"] * 3, [DAY1] * 3))
    # Rows went to disk (memory stays bounded) but only as a hidden temp file, which no reader
    # globbing *.parquet sees.
    assert lander.buffered_rows <= 2
    assert parquet_files(tmp_path) == []
    assert [p.name for p in tmp_path.rglob(".*.tmp")] == [".load-1-00001.parquet.tmp"]
    (f,) = lander.flush()
    assert [str(p) for p in parquet_files(tmp_path)] == [f.path]
    assert list(tmp_path.rglob("*.tmp")) == []
    assert pq.read_table(f.path).column("check_id").to_pylist() == [1, 2, 3]


def test_abort_removes_unfinished_files(tmp_path: Path) -> None:
    lander = ParquetLander(str(tmp_path), "load-1", max_buffered_rows=1)
    lander.write(CHECKS, checks_table([1, 2], ["HLR", "Verify"], [DAY1, DAY1]))
    assert list(tmp_path.rglob("*.tmp"))
    lander.abort()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert lander.files == []


def test_a_failed_write_leaves_no_file_and_no_temp(tmp_path: Path) -> None:
    lander = ParquetLander(str(tmp_path), "load-1")
    lander.write(CHECKS, checks_table([1], ["HLR"], [DAY1]))
    # A real fault at the final rename: the target name is taken by a non-empty directory.
    partition = tmp_path / "checks" / "type=HLR" / f"landed_date={lander.landed_date}"
    blocker = partition / "load-1-00001.parquet"
    blocker.mkdir(parents=True)
    (blocker / "occupied").write_text("x")
    with pytest.raises(OSError):
        lander.flush()
    leftovers = [p.name for p in blocker.parent.iterdir()]
    assert leftovers == ["load-1-00001.parquet"]  # only the blocker: no temp file, no partial file
    assert lander.files == []


def test_abort_removes_the_loads_files(tmp_path: Path) -> None:
    other = ParquetLander(str(tmp_path), "load-0")
    other.write(CHECKS, checks_table([9], ["HLR"], [DAY1]))
    kept = other.flush()
    lander = ParquetLander(str(tmp_path), "load-1")
    lander.write(CHECKS, checks_table([1, 2], ["HLR", "Verify"], [DAY1, DAY2]))
    files = lander.flush()
    assert all(os.path.exists(f.path) for f in files)
    lander.abort()
    assert not any(os.path.exists(f.path) for f in files)
    assert [str(p) for p in parquet_files(tmp_path)] == [kept[0].path]
    assert lander.files == files  # still known, e.g. to record the failed load
    with pytest.raises(ConfigurationError, match="aborted"):
        lander.write(CHECKS, checks_table([3], ["HLR"], [DAY1]))


def test_remove_files_only_touches_parquet_files_under_root(tmp_path: Path) -> None:
    root = tmp_path / "land"
    lander = ParquetLander(str(root), "load-1")
    lander.write(CHECKS, checks_table([1, 2], ["HLR", "Verify"], [DAY1, DAY1]))
    files = lander.flush()
    outside = tmp_path / "precious.parquet"
    outside.write_bytes(b"PAR1")
    sneaky = str(root / "checks" / ".." / ".." / "precious.parquet")
    not_parquet = root / "notes.txt"
    not_parquet.write_text("keep me")
    remove_files(
        str(root),
        [files[0].path, str(outside), sneaky, str(not_parquet), str(root / "gone.parquet")],
    )
    assert not os.path.exists(files[0].path)
    assert os.path.exists(files[1].path)
    assert outside.exists() and not_parquet.exists()
    # Emptied partition directories are pruned; the table directory stays.
    assert not (root / "checks" / "type=HLR").exists()
    assert (root / "checks").is_dir()


def test_other_fsspec_filesystems_go_through_a_temp_key(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    root = "memory://numberyo-land-test"
    try:
        lander = ParquetLander(root, "load-1")
        lander.write(CHECKS, checks_table([1, 2], ["HLR", "HLR"], [DAY1, DAY1]))
        (f,) = lander.flush()
        assert f.path == (
            "memory:///numberyo-land-test/checks/type=HLR/"
            f"landed_date={lander.landed_date}/load-1-00001.parquet"
        )
        with fs.open(f.path, "rb") as handle:
            assert pq.read_table(handle).num_rows == 2
        tmp_dir = "/numberyo-land-test/_tmp/load-1"
        assert not fs.exists(tmp_dir) or fs.ls(tmp_dir) == []
        remove_files(root, [f.path])
        assert not fs.exists(f.path)
    finally:
        if fs.exists("/numberyo-land-test"):
            fs.rm("/numberyo-land-test", recursive=True)


def test_landed_file_is_a_plain_record() -> None:
    f = LandedFile("checks", "/x/a-00001.parquet", 3, {"type": "HLR", "landed_date": "2025-01-01"})
    assert f.rows == 3 and f.partition["type"] == "HLR"


def test_files_of_both_layouts_are_discovered_for_a_load(tmp_path: Path) -> None:
    """A check run started by an older version (one directory per created day) and resumed by
    this one: its commit must find the files of both layouts."""
    from numberyo_provider.checks import discover_landed_files

    old_dir = tmp_path / "checks" / "type=HLR" / "created_date=2025-03-30"
    old_dir.mkdir(parents=True)
    old = conform(
        CHECKS, checks_table([1, 2], ["HLR"] * 2, [DAY1] * 2), load_id="run-a", loaded_at=DAY2
    )
    pq.write_table(old, old_dir / "run-a-try1-00001.parquet")
    lander = ParquetLander(str(tmp_path), "run-a-try2")
    lander.write(CHECKS, checks_table([3], ["HLR"], [DAY2]))
    (new,) = lander.flush()
    found = discover_landed_files(str(tmp_path), "run-a")
    assert [(f.table, f.rows, f.partition) for f in found] == [
        ("checks", 2, {"type": "HLR", "created_date": "2025-03-30"}),
        ("checks", 1, {"type": "HLR", "landed_date": lander.landed_date}),
    ]
    assert found[1] == new


def test_the_files_of_a_load_and_of_the_landers_it_named_are_found_per_table(
    tmp_path: Path,
) -> None:
    shard = ParquetLander(str(tmp_path), "run-a-s0of2-x")
    shard.write(CHECKS, checks_table([1, 2], ["HLR", "Verify"], [DAY1] * 2))
    shard.write(HLR_RESULTS, pa.table({"check_id": pa.array([1], pa.int64()), "result_index": [0]}))
    landed = shard.flush()
    other = ParquetLander(str(tmp_path), "run-ab")  # another load sharing a prefix
    other.write(CHECKS, checks_table([3], ["HLR"], [DAY1]))
    other.flush()
    found = find_landed_files(str(tmp_path), CHECKS, "run-a")
    assert found == sorted((f for f in landed if f.table == "checks"), key=lambda f: f.path)
    assert [f.partition["type"] for f in found] == ["HLR", "Verify"]
    assert [f.rows for f in find_landed_files(str(tmp_path), HLR_RESULTS, "run-a")] == [1]
    assert find_landed_files(str(tmp_path), VERIFY_RESULTS, "run-a") == []
    assert find_landed_files(str(tmp_path / "nothing-here"), CHECKS, "run-a") == []


def test_one_fsync_per_finished_file_and_per_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from numberyo_provider.sync import land

    file_syncs: list[int] = []
    dir_syncs: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (file_syncs.append(fd), real_fsync(fd))[1])
    monkeypatch.setattr(land, "_fsync_dir", dir_syncs.append)
    lander = ParquetLander(str(tmp_path / "land"), "load-1", max_buffered_rows=40)
    for start in range(0, 600, 60):  # many batches over many days: row groups, not files
        ids = list(range(start, start + 60))
        created = [DAY1 - timedelta(days=i) for i in ids]
        lander.write(
            CHECKS, checks_table(ids, ["HLR" if i % 2 else "Verify" for i in ids], created)
        )
        lander.write(
            HLR_RESULTS,
            pa.table({"check_id": ids, "result_index": [0] * 60, "msisdn": ["32"] * 60}),
        )
    assert file_syncs == [] and dir_syncs == []  # nothing is durable (or visible) yet
    files = lander.flush()
    assert len(files) == 3 and len(file_syncs) == 3
    assert len(dir_syncs) == len(set(dir_syncs))  # each directory once
    # Every partition directory, and the parent of every directory the load created.
    partitions = {str(Path(f.path).parent) for f in files}
    assert partitions <= set(dir_syncs)
    assert str(tmp_path) in dir_syncs and str(tmp_path / "land" / "checks") in dir_syncs
    # Deepest first: a directory's entries are durable before its own entry in its parent.
    depths = [d.count(os.sep) for d in dir_syncs]
    assert depths == sorted(depths, reverse=True)
