"""DuckDB warehouse: schema, idempotent merges, all-or-nothing commits, readers, the file lock."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from numberyo_provider.errors import ConfigurationError
from numberyo_provider.schema import (
    ALL_TABLES,
    CHECKS,
    DATA_TABLES,
    HLR_RESULTS,
    VERIFY_RESULTS,
    description,
)
from numberyo_provider.sync.land import LandedFile, ParquetLander
from numberyo_provider.warehouse import (
    LoadCommit,
    LoadError,
    Warehouse,
    WarehouseError,
    WarehouseLockedError,
    Watermark,
    connect_warehouse,
)
from numberyo_provider.warehouse.duckdb import DuckDBWarehouse
from numberyo_provider.warehouse.sql import SqlWarehouse

T0 = datetime(2025, 3, 30, 14, 21, tzinfo=UTC)


# --- helpers (mirrored in test_warehouse_postgres.py) --------------------------------------


def table_of(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = list(rows)
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    return pa.table({k: [r.get(k) for r in rows] for k in keys})


def land(
    root: Path,
    load_id: str,
    *,
    checks: Iterable[Mapping[str, Any]] = (),
    hlr: Iterable[Mapping[str, Any]] = (),
    verify: Iterable[Mapping[str, Any]] = (),
    rows_per_file: int = 250_000,
) -> list[LandedFile]:
    lander = ParquetLander(str(root), load_id, rows_per_file=rows_per_file)
    for table, rows in ((CHECKS, checks), (HLR_RESULTS, hlr), (VERIFY_RESULTS, verify)):
        rows = list(rows)
        if rows:
            lander.write(table, table_of(rows))
    return lander.flush()


def commit(
    load_id: str,
    files: list[LandedFile],
    watermark: Watermark | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> LoadCommit:
    return LoadCommit(load_id, "sync", T0, files, watermark, errors or [])


def check(i: int, **kw: Any) -> dict[str, Any]:
    return {"check_id": i, "type": "HLR", "created_at": T0 + timedelta(minutes=i), **kw}


def hlr(i: int, idx: int = 0, **kw: Any) -> dict[str, Any]:
    return {"check_id": i, "result_index": idx, "msisdn": f"3245678{i:04d}", **kw}


def rows(wh: Warehouse, table: str, *, lineage: bool = False) -> list[tuple[Any, ...]]:
    from numberyo_provider.schema import TABLES_BY_NAME

    t = TABLES_BY_NAME[table]
    names = [n for n in t.schema.names if lineage or not n.startswith("_loaded")]
    order = ", ".join(t.primary_key)
    return wh.query(f"SELECT {', '.join(names)} FROM {wh.qualified(table)} ORDER BY {order}")


def snapshot(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: rows(wh, t.name, lineage=True) for t in ALL_TABLES}


def truncate(path: str) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    with connect_warehouse(f"duckdb:///{tmp_path / 'wh' / 'warehouse.duckdb'}") as warehouse:
        warehouse.ensure_schema()
        yield warehouse


# --- URLs ----------------------------------------------------------------------------------


def test_connect_warehouse_picks_the_backend(tmp_path: Path) -> None:
    with connect_warehouse("duckdb:///:memory:") as mem:
        assert isinstance(mem, DuckDBWarehouse)
    with connect_warehouse(f"duckdb:///{tmp_path}/a.duckdb") as absolute:
        assert isinstance(absolute, DuckDBWarehouse)
        assert absolute.path == str(tmp_path / "a.duckdb")
    with connect_warehouse(f"sqlite:///{tmp_path}/w.sqlite") as lite:
        assert isinstance(lite, SqlWarehouse)
    with connect_warehouse("postgresql://u:pw@127.0.0.1:1/db") as pg:
        assert isinstance(pg, SqlWarehouse)
        assert "pw" not in pg.url_for_display
        # psycopg 3 and its COPY path, even where psycopg2 is installed too (dbt-postgres brings
        # it) and SQLAlchemy 2.0 would have taken it.
        assert importlib.util.find_spec("psycopg2") is not None
        assert pg.engine.dialect.driver == "psycopg" and pg.use_copy
    with connect_warehouse("postgresql+psycopg2://u:pw@127.0.0.1:1/db") as named:
        assert named.engine.dialect.driver == "psycopg2" and not named.use_copy


@pytest.mark.parametrize(
    "url",
    [
        "",
        "duckdb://relative.duckdb",
        "duckdb:///x.duckdb#section",
        "not a url",
        "nosuchdb+driver://user:s3cret@host/db",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        connect_warehouse(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert "duckdb:///:memory:" in message and "postgresql+psycopg://" in message  # what to use
    if "@" in url:
        assert "user:***@host" in message


# --- schema --------------------------------------------------------------------------------


def test_ensure_schema_creates_every_table_with_types_and_comments(wh: Warehouse) -> None:
    wh.ensure_schema()  # idempotent
    tables = dict(
        wh.query("SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'numberyo'")
    )
    assert tables == {t.name: t.description for t in ALL_TABLES}
    columns = {
        (r[0], r[1]): (r[2], r[3], r[4])
        for r in wh.query(
            "SELECT table_name, column_name, data_type, is_nullable, comment "
            "FROM duckdb_columns() WHERE schema_name = 'numberyo'"
        )
    }
    assert columns[("checks", "user_cost")][0] == "DECIMAL(18,4)"
    assert columns[("checks", "extra")][0] == "JSON"
    assert columns[("checks", "created_at")][0] == "TIMESTAMP WITH TIME ZONE"
    assert columns[("checks", "check_id")][1] is False
    for t in ALL_TABLES:
        for f in t.schema:
            assert columns[(t.name, f.name)][2] == description(f)


def test_ensure_schema_adds_columns_the_model_gained(wh: Warehouse) -> None:
    wh.query("ALTER TABLE numberyo.hlr_results DROP COLUMN msc")
    wh.query("ALTER TABLE numberyo._loads DROP COLUMN cleaned_at")  # made before it existed
    wh.ensure_schema()
    assert "msc" in [r[0] for r in wh.query("DESCRIBE numberyo.hlr_results")]
    assert "cleaned_at" in [r[0] for r in wh.query("DESCRIBE numberyo._loads")]


def test_reads_before_ensure_schema_say_what_to_do(tmp_path: Path) -> None:
    with (
        connect_warehouse(f"duckdb:///{tmp_path / 'empty.duckdb'}") as fresh,
        pytest.raises(WarehouseError, match="ensure_schema"),
    ):
        fresh.get_watermark()


# --- loads ---------------------------------------------------------------------------------


def test_commit_merges_rows_with_lineage(wh: Warehouse, tmp_path: Path) -> None:
    files = land(
        tmp_path / "land",
        "load-1",
        checks=[check(1, source="API", user_cost="1.00", phone_number="32456789023")],
        hlr=[hlr(1, 0, created_at=T0), hlr(1, 1)],
        verify=[{"check_id": 2, "result_index": 0, "extra": '{"line": "mobile"}'}],
    )
    result = wh.commit_load(commit("load-1", files, errors=[{"check_id": 5, "status": 404}]))
    assert result.rows == {"checks": 1, "hlr_results": 2, "verify_results": 1, "other_results": 0}
    (row,) = rows(wh, "checks", lineage=True)
    assert row[:6] == (1, "HLR", "API", pytest.approx(1), T0 + timedelta(minutes=1), "32456789023")
    assert row[-2:] == (result.finished_at, "load-1")
    assert [r[:2] for r in rows(wh, "hlr_results")] == [(1, 0), (1, 1)]
    assert json.loads(rows(wh, "verify_results")[0][6]) == {"line": "mobile"}
    (manifest,) = wh.query("SELECT load_id, kind, status, files, rows, errors FROM numberyo._loads")
    assert manifest[:3] == ("load-1", "sync", "committed")
    assert json.loads(manifest[3]) == [f.path for f in files]
    assert json.loads(manifest[4]) == result.rows
    assert json.loads(manifest[5]) == [{"check_id": 5, "status": 404}]


def test_committing_the_same_load_twice_leaves_the_same_rows(wh: Warehouse, tmp_path: Path) -> None:
    files = land(
        tmp_path / "land",
        "load-1",
        checks=[check(i) for i in range(1, 30)],
        hlr=[hlr(i) for i in range(1, 30)],
        rows_per_file=7,
    )
    wh.commit_load(commit("load-1", files))
    first = {t.name: rows(wh, t.name) for t in DATA_TABLES}
    wh.commit_load(commit("load-1", files))
    assert {t.name: rows(wh, t.name) for t in DATA_TABLES} == first
    assert wh.query("SELECT count(*) FROM numberyo._loads") == [(1,)]


def test_later_loads_never_erase_known_check_details(wh: Warehouse, tmp_path: Path) -> None:
    root = tmp_path / "land"
    full = check(1, source="API", user_cost="2.50", phone_number="32456789023", extra='{"a": 1}')
    wh.commit_load(commit("post", land(root, "post", checks=[full])))
    # The list endpoint only knows id, type and created_at.
    listed = check(1, created_at=T0 + timedelta(hours=1))
    wh.commit_load(commit("list", land(root, "list", checks=[listed])))
    (row,) = rows(wh, "checks", lineage=True)
    assert row[2:6] == ("API", pytest.approx(2.5), T0 + timedelta(hours=1), "32456789023")
    assert json.loads(row[6]) == {"a": 1}
    assert row[-1] == "list"
    # A known value is replaced by a newer known value.
    wh.commit_load(commit("fix", land(root, "fix", checks=[check(1, source="Dashboard")])))
    assert rows(wh, "checks")[0][2] == "Dashboard"


def test_results_are_replaced_by_key(wh: Warehouse, tmp_path: Path) -> None:
    root = tmp_path / "land"
    wh.commit_load(commit("a", land(root, "a", hlr=[hlr(1, 0), hlr(1, 1), hlr(2, 0)])))
    wh.commit_load(commit("b", land(root, "b", hlr=[hlr(1, 0, msisdn="999", ported=True)])))
    got = {(r[0], r[1]): (r[5], r[6]) for r in rows(wh, "hlr_results")}
    assert got == {
        (1, 0): ("999", True),
        (1, 1): ("32456780001", None),
        (2, 0): ("32456780002", None),
    }
    lineage = dict(
        ((r[0], r[1]), r[-1])
        for r in wh.query("SELECT check_id, result_index, _load_id FROM numberyo.hlr_results")
    )
    assert lineage == {(1, 0): "b", (1, 1): "a", (2, 0): "a"}


def test_a_key_twice_in_one_load_merges_in_landing_order(wh: Warehouse, tmp_path: Path) -> None:
    files = land(
        tmp_path / "land",
        "dup",
        checks=[check(1, source="API", user_cost="1.00"), check(2), check(1, type="Verify")],
        hlr=[hlr(3, 0, msisdn="first"), hlr(3, 0, msisdn="second")],
    )
    result = wh.commit_load(commit("dup", files))
    assert result.rows["checks"] == 2 and result.rows["hlr_results"] == 1
    got = {r[0]: r[1:4] for r in rows(wh, "checks")}
    assert got[1] == ("Verify", "API", pytest.approx(1))
    assert [r[5] for r in rows(wh, "hlr_results")] == ["second"]


def test_many_files_merge_group_by_group_exactly_like_one_statement(
    wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from numberyo_provider.warehouse import duckdb as duckdb_warehouse

    monkeypatch.setattr(duckdb_warehouse, "MAX_FILES_PER_MERGE", 2)
    files = land(
        tmp_path / "land",
        "dup",
        checks=[check(1, source="API", user_cost="1.00"), check(2), check(1, type="Verify")],
        hlr=[hlr(3, 0, msisdn="first"), hlr(4, 0), hlr(3, 0, msisdn="second"), hlr(5, 0)],
        rows_per_file=1,  # a file per row: the key's occurrences fall in different groups
    )
    assert len(files) == 7
    result = wh.commit_load(commit("dup", files))
    # Counted once per key, as in one statement.
    assert result.rows["checks"] == 2 and result.rows["hlr_results"] == 3
    got = {r[0]: r[1:4] for r in rows(wh, "checks")}
    assert got[1] == ("Verify", "API", pytest.approx(1))  # later wins, NULL never erases
    assert {r[0]: r[5] for r in rows(wh, "hlr_results")}[3] == "second"


@pytest.mark.slow
def test_the_merge_memory_does_not_grow_with_the_number_of_files(tmp_path: Path) -> None:
    """500 one-row files per table (what the old one-file-per-day layout made of a multi-year
    backfill) commit under a 16 MB limit; read in one statement they ran out of memory."""
    ids = range(1, 501)
    files = land(
        tmp_path / "land",
        "many",
        checks=[check(i) for i in ids],
        hlr=[hlr(i) for i in ids],
        rows_per_file=1,
    )
    assert len(files) == 1000
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}?memory_limit=16MB"
    with connect_warehouse(url) as small:
        small.ensure_schema()
        result = small.commit_load(commit("many", files))
        assert result.rows == {
            "checks": 500,
            "hlr_results": 500,
            "verify_results": 0,
            "other_results": 0,
        }
        assert small.query("SELECT count(*) FROM numberyo.hlr_results") == [(500,)]


def test_an_empty_load_still_records_manifest_and_watermark(wh: Warehouse) -> None:
    result = wh.commit_load(commit("nothing-new", [], Watermark(5, T0)))
    assert result.rows == {"checks": 0, "hlr_results": 0, "verify_results": 0, "other_results": 0}
    assert wh.get_watermark() == Watermark(5, T0)


# --- watermark -----------------------------------------------------------------------------


def test_watermark_only_moves_forward(wh: Warehouse) -> None:
    assert wh.get_watermark() is None
    wh.commit_load(commit("a", [], Watermark(10, T0)))
    wh.commit_load(commit("b", [], Watermark(9, T0 - timedelta(days=1))))
    assert wh.get_watermark() == Watermark(10, T0)
    wh.commit_load(commit("c", [], Watermark(11, T0)))
    assert wh.get_watermark() == Watermark(11, T0)
    wh.commit_load(commit("d", [], Watermark(3, T0 + timedelta(seconds=1))))
    assert wh.get_watermark() == Watermark(3, T0 + timedelta(seconds=1))
    assert wh.query("SELECT load_id FROM numberyo._sync_state") == [("d",)]
    assert wh.get_watermark("other-stream") is None


# --- crash safety --------------------------------------------------------------------------


def _first_load(wh: Warehouse, root: Path) -> None:
    wh.commit_load(
        commit("good", land(root, "good", checks=[check(1)], hlr=[hlr(1)]), Watermark(1, T0))
    )


def _bad_load(root: Path) -> list[LandedFile]:
    return land(
        root,
        "bad",
        checks=[check(1, source="API"), check(2), check(3)],
        hlr=[hlr(2), hlr(3)],
        verify=[{"check_id": 4, "result_index": 0}],
    )


@pytest.mark.parametrize("fault", ["truncated", "vanished", "bad-json", "unknown-column"])
def test_a_fault_mid_load_changes_nothing(wh: Warehouse, tmp_path: Path, fault: str) -> None:
    root = tmp_path / "land"
    _first_load(wh, root)
    before = snapshot(wh)
    files = _bad_load(root)
    # The fault hits the LAST table merged: checks and hlr_results were already merged.
    victim = next(f for f in files if f.table == "verify_results")
    if fault == "truncated":
        truncate(victim.path)
    elif fault == "vanished":
        os.remove(victim.path)
    elif fault == "bad-json":
        table = pq.read_table(victim.path)
        i = table.schema.get_field_index("extra")
        pq.write_table(
            table.set_column(i, table.schema.field(i), pa.array(["{broken"], pa.string())),
            victim.path,
        )
    else:
        table = pq.read_table(victim.path)
        pq.write_table(table.append_column("from_the_future", pa.array([1])), victim.path)
    with pytest.raises(LoadError, match="nothing was committed") as info:
        wh.commit_load(commit("bad", files, Watermark(4, T0 + timedelta(hours=1))))
    if fault == "unknown-column":
        assert "from_the_future" in str(info.value)
    assert snapshot(wh) == before
    assert wh.get_watermark() == Watermark(1, T0)
    # A rerun with the files repaired commits everything.
    files = _bad_load(root)
    wh.commit_load(commit("bad", files, Watermark(4, T0 + timedelta(hours=1))))
    assert [r[0] for r in rows(wh, "checks")] == [1, 2, 3]
    assert wh.get_watermark() == Watermark(4, T0 + timedelta(hours=1))


def test_a_truncated_second_file_of_a_table_changes_nothing(wh: Warehouse, tmp_path: Path) -> None:
    root = tmp_path / "land"
    _first_load(wh, root)
    before = snapshot(wh)
    files = land(root, "bad", checks=[check(i) for i in range(2, 12)], rows_per_file=5)
    assert len(files) == 2
    truncate(files[1].path)
    with pytest.raises(LoadError):
        wh.commit_load(commit("bad", files))
    assert snapshot(wh) == before


def test_files_of_a_foreign_table_are_refused(wh: Warehouse) -> None:
    with pytest.raises(LoadError, match="not a data table"):
        wh.commit_load(commit("x", [LandedFile("_loads", "/nowhere/x-00001.parquet", 1, {})]))


# --- existing checks, failed loads ---------------------------------------------------------


def test_existing_check_ids_needs_the_results_too(wh: Warehouse, tmp_path: Path) -> None:
    n = 10_000
    checks = [check(i, type="HLR" if i % 2 else "Verify") for i in range(n)]
    # HLR checks with odd ids below 5000 have results; Verify checks with ids below 100 too.
    files = land(
        tmp_path / "land",
        "big",
        checks=checks,
        hlr=[hlr(i) for i in range(1, 5000, 2)],
        verify=[{"check_id": i, "result_index": 0} for i in range(0, 100, 2)],
    )
    wh.commit_load(commit("big", files))
    asked = list(range(-5, n + 5))
    expected = set(range(1, 5000, 2)) | set(range(0, 100, 2))
    assert wh.existing_check_ids(asked) == expected
    assert wh.existing_check_ids([]) == set()


def test_fresh_numbers_are_the_distinct_numbers_of_a_type_since_a_time(
    wh: Warehouse, tmp_path: Path
) -> None:
    """What a check run need not pay for again: numbers (as stored) of checks of the type created
    at or after ``since``; other types, older checks and checks without a number do not count."""
    assert wh.fresh_numbers("HLR", T0) == []
    files = land(
        tmp_path / "land",
        "fresh",
        checks=[
            check(1, phone_number="32456000001"),
            check(2, phone_number="32456000001"),  # the same number twice: listed once
            check(3, phone_number="hmac:abc"),  # a pseudonym is a number as stored
            check(4),  # no number (a check listed by the sync before its details)
            check(5, phone_number="32456000005", type="Verify"),
            {**check(6, phone_number="32456000006"), "created_at": T0 - timedelta(days=1)},
        ],
    )
    wh.commit_load(commit("fresh", files))
    assert sorted(wh.fresh_numbers("HLR", T0)) == ["32456000001", "hmac:abc"]
    assert sorted(wh.fresh_numbers("HLR", T0 - timedelta(days=2))) == [
        "32456000001",
        "32456000006",
        "hmac:abc",
    ]
    assert wh.fresh_numbers("Verify", T0) == ["32456000005"]
    assert wh.fresh_numbers("HLR", T0 + timedelta(minutes=4)) == []


def test_failed_loads_are_listed_for_cleanup_but_never_a_committed_one(
    wh: Warehouse, tmp_path: Path
) -> None:
    root = tmp_path / "land"
    good = land(root, "good", checks=[check(1)])
    wh.commit_load(commit("good", good))
    bad = land(root, "bad", checks=[check(2)])
    bad += land(root, "bad-repair-1a2b", checks=[check(3)])  # a sub-lander of the same run
    # The committed load's file must never be listed for deletion, even if passed by mistake.
    wh.record_failed_load("bad", "sync", T0, [*bad, *good], [{"error": "boom"}])
    wh.record_failed_load("good", "sync", T0, good, [])  # already committed: ignored
    assert wh.failed_loads_to_clean() == {"bad": [f.path for f in bad]}
    status = dict(wh.query("SELECT load_id, status FROM numberyo._loads"))
    assert status == {"good": "committed", "bad": "failed"}
    # Once its files are deleted, a failed load leaves the list and says when.
    wh.mark_loads_cleaned(["bad", "good"])  # a committed load is never marked
    assert wh.failed_loads_to_clean() == {}
    cleaned = dict(wh.query("SELECT load_id, cleaned_at IS NOT NULL FROM numberyo._loads"))
    assert cleaned == {"good": False, "bad": True}
    # Recorded as failed again (a retry with the same id): listed again.
    wh.record_failed_load("bad", "sync", T0, bad, [])
    assert wh.failed_loads_to_clean() == {"bad": [f.path for f in bad]}
    # A failed load that is later committed leaves the list.
    wh.commit_load(commit("bad", bad))
    assert wh.failed_loads_to_clean() == {}


# --- in-memory, transactions ---------------------------------------------------------------


def test_memory_warehouse_keeps_its_data_between_operations(tmp_path: Path) -> None:
    with connect_warehouse("duckdb:///:memory:") as mem:
        mem.ensure_schema()
        mem.commit_load(commit("m", land(tmp_path, "m", checks=[check(1)]), Watermark(1, T0)))
        assert mem.get_watermark() == Watermark(1, T0)
        assert mem.existing_check_ids([1]) == set()  # no results yet
        assert [r[0] for r in rows(mem, "checks")] == [1]


def test_transaction_rolls_back_on_error(wh: Warehouse) -> None:
    with pytest.raises(RuntimeError), wh.transaction() as con:
        con.execute(f"INSERT INTO {wh.qualified('_sync_state')} VALUES ('s', 1, now(), 'l', now())")
        raise RuntimeError("boom")
    assert wh.query("SELECT count(*) FROM numberyo._sync_state") == [(0,)]


# --- other processes -----------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import os, sys, time, duckdb
    path, ready, release = sys.argv[1:4]
    con = duckdb.connect(path)
    open(ready, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    con.close()
    """
)

_READER = textwrap.dedent(
    """
    import json, os, sys, time, duckdb
    path, out, ready, stop = sys.argv[1:5]
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stopping = os.path.exists(stop)
        try:
            con = duckdb.connect(path, read_only=True)
        except duckdb.Error as exc:
            if "lock" not in str(exc).lower():
                raise
            time.sleep(0.005)
            continue
        try:
            seen.append(con.execute(
                "SELECT (SELECT count(*) FROM numberyo.checks),"
                " (SELECT count(*) FROM numberyo.hlr_results),"
                " (SELECT count(*) FROM numberyo._loads)"
            ).fetchone())
        finally:
            con.close()
        if not os.path.exists(ready):
            open(ready, "w").close()
        if stopping:
            break
        time.sleep(0.005)
    with open(out, "w") as fh:
        json.dump(seen, fh)
    """
)


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_a_process_holding_the_file_makes_us_wait_then_fail_clearly(tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    ready, release = tmp_path / "ready", tmp_path / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db), str(ready), str(release)],
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(ready, holder)
        with (
            connect_warehouse(f"duckdb:///{db}", lock_timeout=0.3) as busy,
            pytest.raises(WarehouseLockedError) as info,
        ):
            busy.ensure_schema()
        message = str(info.value)
        assert str(db) in message and "another process" in message
        assert "lock_timeout" in message and "--lock-timeout" in message
        release.touch()
        with connect_warehouse(f"duckdb:///{db}", lock_timeout=60) as patient:
            patient.ensure_schema()  # waits for the holder to let go
            assert patient.get_watermark() is None
    finally:
        release.touch()
        holder.wait(timeout=60)


@pytest.mark.slow
def test_a_reader_process_only_ever_sees_committed_states(tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    with connect_warehouse(f"duckdb:///{db}") as writer:
        writer.ensure_schema()
    out, ready, stop = tmp_path / "seen.json", tmp_path / "ready", tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(db), str(out), str(ready), str(stop)],
        stderr=subprocess.PIPE,
    )
    per_load, loads = 300, 5
    try:
        _wait_for(ready, reader)
        with connect_warehouse(f"duckdb:///{db}", lock_timeout=60) as writer:
            for n in range(loads):
                ids = range(n * per_load, (n + 1) * per_load)
                files = land(
                    tmp_path / "land",
                    f"load-{n}",
                    checks=[check(i) for i in ids],
                    hlr=[hlr(i) for i in ids],
                    rows_per_file=100,
                )
                writer.commit_load(commit(f"load-{n}", files))
                time.sleep(0.1)
        stop.touch()
        assert reader.wait(timeout=60) == 0, reader.communicate()
    finally:
        stop.touch()
        if reader.poll() is None:
            reader.kill()
    seen = [tuple(s) for s in json.loads(out.read_text())]
    committed = {(n * per_load, n * per_load, n) for n in range(loads + 1)}
    assert seen[0] == (0, 0, 0)
    assert seen[-1] == (loads * per_load, loads * per_load, loads)
    assert set(seen) <= committed, sorted(set(seen) - committed)


def test_file_named_like_the_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    from numberyo_provider.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="named like the schema") as info:
        connect_warehouse(f"duckdb:///{tmp_path / 'numberyo.duckdb'}")
    assert "warehouse.duckdb" in str(info.value)
    assert not (tmp_path / "numberyo.duckdb").exists()


def test_duckdb_settings_from_the_url(tmp_path: Path) -> None:
    wh = connect_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}?memory_limit=300MB&threads=1")
    with wh.connection() as con:
        limit, threads = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        ).fetchone() or ("", "")
    assert limit.replace(" ", "").upper().startswith(("286.1MIB", "300", "286"))
    assert int(threads) == 1
    default = connect_warehouse(f"duckdb:///{tmp_path / 'v.duckdb'}")
    assert default.config["memory_limit"] == "64MB"
    with default.connection() as con:
        spill = con.execute("SELECT current_setting('temp_directory')").fetchone()
    # DuckDB would spill an in-memory instance's overflow into the working directory.
    assert spill == (f"{tmp_path / 'v.duckdb'}.tmp",)


def test_row_groups_are_written_at_the_configured_size(tmp_path: Path) -> None:
    rows = 40_000
    files = land(tmp_path / "land", "load-rg", checks=[check(i) for i in range(rows)])
    sizes = {}
    for option, expected in (("", 16_384), ("?row_group_size=122880", 122_880)):
        path = tmp_path / f"w{expected}.duckdb"
        with connect_warehouse(f"duckdb:///{path}{option}") as wh:
            wh.ensure_schema()
            wh.commit_load(commit("load-rg", files))
            with wh.connection() as con:
                counts = con.execute(
                    "SELECT row_group_id, max(count) FROM pragma_storage_info('numberyo.checks') "
                    "GROUP BY ALL ORDER BY ALL"
                ).fetchall()
        sizes[expected] = [c for _, c in counts]
    assert max(sizes[16_384]) == 16_384 and sum(sizes[16_384]) == rows
    assert sizes[122_880] == [rows]


@pytest.mark.parametrize("value", ["1000", "lots", "0"])
def test_bad_row_group_size_is_a_clear_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"row_group_size.*multiple of 2048"):
        connect_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}?row_group_size={value}")
    assert not (tmp_path / "w.duckdb").exists()


def test_a_connection_of_this_process_holding_the_file_is_waited_for(tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "held.duckdb"
    held = duckdb.connect(str(db))
    try:
        with (
            connect_warehouse(f"duckdb:///{db}", lock_timeout=0.3) as busy,
            pytest.raises(WarehouseLockedError, match=r"\(lock_timeout, --lock-timeout\)") as info,
        ):
            busy.ensure_schema()
        assert str(db) in str(info.value)
    finally:
        held.close()
    with connect_warehouse(f"duckdb:///{db}", lock_timeout=5) as free:
        free.ensure_schema()
        assert free.get_watermark() is None


def test_bad_duckdb_setting_is_a_clear_error(tmp_path: Path) -> None:
    from numberyo_provider.errors import ConfigurationError

    wh = connect_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}?memory_limit=lots")
    with pytest.raises(ConfigurationError, match="bad DuckDB setting"):
        wh.ensure_schema()


# --- large upserts and the error a failed transaction shows (issue 9) -----------------------


def _requests(lo: int, hi: int, *, status: str = "not_checked") -> pa.Table:
    """``check_requests`` rows with random-looking 32-hex keys, as the ledger's are."""
    import hashlib

    from numberyo_provider.schema import CHECK_REQUESTS

    n = hi - lo
    return pa.table(
        {
            "request_id": [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(lo, hi)],
            "run_id": ["run-big"] * n,
            "phone_number": [f"32456{i:06d}" for i in range(lo, hi)],
            "check_type": ["HLR"] * n,
            "status": [status] * n,
            "check_id": pa.nulls(n, pa.int64()),
            "attempts": pa.array([0] * n, pa.int32()),
            "error": ["max_checks (5) reached"] * n,
            "requested_at": pa.array([T0] * n, CHECK_REQUESTS.schema.field("requested_at").type),
            "updated_at": pa.array([T0] * n, CHECK_REQUESTS.schema.field("updated_at").type),
        },
        schema=CHECK_REQUESTS.schema,
    )


def _upsert(wh: Warehouse, load_id: str, batches: Iterable[pa.Table]) -> Any:
    return wh.commit_load(
        LoadCommit(load_id, "check", T0, [], None, [], upserts={"check_requests": batches})
    )


def test_an_aborted_transaction_raises_its_first_error_not_the_abort(wh: Warehouse) -> None:
    """A statement run after a failure (cleanup in a ``finally``) gets DuckDB's "Current
    transaction is aborted"; the caller must see the failure itself."""
    import duckdb

    with pytest.raises(duckdb.Error) as caught, wh.transaction() as con:
        try:
            con.execute("SELECT CAST('not a number' AS INTEGER)")
        finally:
            con.execute("SELECT 1")  # refused: the transaction is aborted
    assert "not a number" in str(caught.value)
    assert "aborted" not in str(caught.value).lower()


def _wide_results(first: int, n: int) -> pa.Table:
    """``n`` HLR results with every column filled (a distinct value per row where the type
    allows): what memory a merge needs depends on the columns it carries."""
    ids = pa.array(range(first, first + n), pa.int64())
    text = pc.cast(ids, pa.string())
    columns: dict[str, pa.Array] = {}
    for f in HLR_RESULTS.schema:
        if f.name.startswith("_"):
            continue  # lineage: the lander fills it
        if f.name == "check_id":
            columns[f.name] = ids
        elif f.name == "result_index":
            columns[f.name] = pa.array([0] * n, f.type)
        elif f.name == "extra":  # JSON text
            columns[f.name] = pc.binary_join_element_wise('{"n": ', text, "}", "")
        elif pa.types.is_string(f.type):
            columns[f.name] = pc.binary_join_element_wise(f.name[:3], text, "")
        elif pa.types.is_integer(f.type):
            columns[f.name] = pc.cast(pc.bit_wise_and(ids, 0x7FFF), f.type)
        elif pa.types.is_boolean(f.type):
            columns[f.name] = pc.equal(pc.bit_wise_and(ids, 1), 1)
        elif pa.types.is_timestamp(f.type):
            columns[f.name] = pa.array([T0] * n, f.type)
        else:
            columns[f.name] = pa.nulls(n, f.type)
    return pa.table(columns)


@pytest.mark.slow
def test_reloading_a_million_results_fits_the_default_memory_limit(tmp_path: Path) -> None:
    """A full refresh re-merges rows the table holds: they are deleted by key, then inserted.
    At the default 64MB one DELETE of 300,000 composite keys ran out of memory (it cast every
    column to join on two); now only the keys are read, 250,000 rows a statement."""
    n = 1_000_000
    lander = ParquetLander(str(tmp_path / "land"), "big")
    for start in range(0, n, 100_000):
        lander.write(HLR_RESULTS, _wide_results(start + 1, 100_000))
    files = lander.flush()
    assert len(files) == 4  # the landing's default 250,000 rows a file
    with connect_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}") as wh:
        wh.ensure_schema()
        assert wh.commit_load(commit("big", files)).rows["hlr_results"] == n
        assert wh.commit_load(commit("big", files)).rows["hlr_results"] == n  # the reload
        got = wh.query(
            f"SELECT count(*), count(DISTINCT check_id), min(check_id), max(check_id) "
            f"FROM {wh.qualified('hlr_results')}"
        )
    assert [tuple(r) for r in got] == [(n, n, 1, n)]


def test_out_of_memory_in_a_load_names_the_cause_and_the_url_setting(tmp_path: Path) -> None:
    """A real failure: a tiny memory_limit in the URL. The old loader raised "Current
    transaction is aborted" (its cleanup ran in the aborted transaction) and hid the cause."""
    path = tmp_path / "small.duckdb"
    with connect_warehouse(f"duckdb:///{path}") as wh:
        wh.ensure_schema()
    with (
        connect_warehouse(f"duckdb:///{path}?memory_limit=2MB&threads=1") as wh,
        pytest.raises(LoadError) as caught,
    ):
        _upsert(wh, "check-oom", (_requests(i, i + 20_000) for i in range(0, 100_000, 20_000)))
    message = str(caught.value)
    assert "Out of Memory" in message
    assert "memory_limit is 2MB" in message
    assert f"duckdb:///{path}?memory_limit=1GB" in message
    assert "nothing was committed" in message
    assert "aborted" not in message.lower()
    with connect_warehouse(f"duckdb:///{path}") as wh:  # and indeed nothing was
        assert rows(wh, "check_requests") == []
        assert rows(wh, "_loads") == []


@pytest.mark.slow
def test_a_200k_row_upsert_fits_a_small_memory_limit(tmp_path: Path) -> None:
    """200,000 ``check_requests`` rows in one load at memory_limit=32MB: the old keyed upsert
    (ON CONFLICT on an ART index) ran out of memory here; the staged delete + insert spills.
    A second load replacing half of them and adding as many keeps every key once."""
    with connect_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}?memory_limit=32MB") as wh:
        wh.ensure_schema()
        first = _upsert(
            wh, "check-1", (_requests(i, i + 20_000) for i in range(0, 200_000, 20_000))
        )
        assert first.rows["check_requests"] == 200_000
        second = _upsert(
            wh,
            "check-2",
            (_requests(i, i + 20_000, status="created") for i in range(100_000, 300_000, 20_000)),
        )
        assert second.rows["check_requests"] == 200_000
        got = wh.query(
            f"SELECT status, count(*), count(DISTINCT request_id) FROM "
            f"{wh.qualified('check_requests')} GROUP BY status ORDER BY status"
        )
    assert [tuple(r) for r in got] == [
        ("created", 200_000, 200_000),
        ("not_checked", 100_000, 100_000),
    ]


def test_a_keyed_request_table_of_an_earlier_version_loses_only_its_key(tmp_path: Path) -> None:
    """Earlier versions declared PRIMARY KEY on check_requests / rejected_numbers; DuckDB's
    index must fit in memory whole, so ensure_schema rebuilds them without it, rows kept."""
    import duckdb

    from numberyo_provider.warehouse import ddl

    path = tmp_path / "old.duckdb"
    with connect_warehouse(f"duckdb:///{path}") as wh:
        wh.ensure_schema()
        _upsert(wh, "check-old", [_requests(0, 3)])
    with duckdb.connect(str(path)) as con:  # what an earlier version created
        con.execute("CREATE TABLE numberyo.keep AS SELECT * FROM numberyo.check_requests")
        con.execute("DROP TABLE numberyo.check_requests")
        keyed = ddl.duckdb_create_table(
            next(t for t in ALL_TABLES if t.name == "check_requests")
        ).replace("\n)", ',\n  PRIMARY KEY ("request_id")\n)')
        con.execute(keyed)
        con.execute("INSERT INTO numberyo.check_requests SELECT * FROM numberyo.keep")
        con.execute("DROP TABLE numberyo.keep")
        assert con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
            "AND table_name = 'check_requests'"
        ).fetchone() == (1,)
    with connect_warehouse(f"duckdb:///{path}") as wh:
        wh.ensure_schema()
        wh.ensure_schema()  # idempotent
        _upsert(wh, "check-new", [_requests(2, 5, status="created")])
        assert (
            wh.query(
                "SELECT constraint_type FROM duckdb_constraints() WHERE table_name = "
                "'check_requests' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
            )
            == []
        )
        got = wh.query(
            f"SELECT status, count(*) FROM {wh.qualified('check_requests')} GROUP BY 1 ORDER BY 1"
        )
        assert [tuple(r) for r in got] == [("created", 3), ("not_checked", 2)]
        nullable = wh.query(
            "SELECT column_name, is_nullable, comment FROM duckdb_columns() WHERE "
            "table_name = 'check_requests' AND column_name IN ('request_id', 'check_id') "
            "ORDER BY 1"
        )
    assert [(r[0], r[1]) for r in nullable] == [("check_id", True), ("request_id", False)]
    assert all(r[2] for r in nullable)  # comments carried over
    with pytest.raises(duckdb.ConstraintException), duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO numberyo.check_requests (request_id) VALUES ('x')")


@pytest.mark.slow
def test_a_reader_never_sees_part_of_a_large_upsert(tmp_path: Path) -> None:
    """The staged upsert is still one transaction with its ``_loads`` row: a reader process
    polling throughout sees each load's 30,000 request rows all at once, or none of them."""
    db = tmp_path / "shared.duckdb"
    with connect_warehouse(f"duckdb:///{db}") as writer:
        writer.ensure_schema()
    reader_script = _READER.replace(
        "count(*) FROM numberyo.checks)", "count(*) FROM numberyo.check_requests)"
    ).replace(
        "count(*) FROM numberyo.hlr_results)",
        "count(DISTINCT request_id) FROM numberyo.check_requests)",
    )
    assert "check_requests" in reader_script
    out, ready, stop = tmp_path / "seen.json", tmp_path / "ready", tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", reader_script, str(db), str(out), str(ready), str(stop)],
        stderr=subprocess.PIPE,
    )
    per_load, loads = 30_000, 4
    try:
        _wait_for(ready, reader)
        with connect_warehouse(f"duckdb:///{db}", lock_timeout=60) as writer:
            for n in range(loads):
                lo = n * per_load
                batches = (_requests(i, i + 5_000) for i in range(lo, lo + per_load, 5_000))
                _upsert(writer, f"check-{n}", batches)
                time.sleep(0.1)
        stop.touch()
        assert reader.wait(timeout=60) == 0, reader.communicate()
    finally:
        stop.touch()
        if reader.poll() is None:
            reader.kill()
    seen = [tuple(s) for s in json.loads(out.read_text())]
    committed = {(n * per_load, n * per_load, n) for n in range(loads + 1)}
    assert seen[-1] == (loads * per_load, loads * per_load, loads)
    assert set(seen) <= committed, sorted(set(seen) - committed)


def test_connect_warehouse_takes_lock_timeout(tmp_path: Path) -> None:
    with connect_warehouse(f"duckdb:///{tmp_path / 'a.duckdb'}", lock_timeout=3) as wh:
        assert isinstance(wh, DuckDBWarehouse) and wh.lock_timeout == 3
    # Its 0.1 name, taken with a warning until 0.3.
    with (
        pytest.warns(DeprecationWarning, match="lock_timeout_s"),
        connect_warehouse(f"duckdb:///{tmp_path / 'b.duckdb'}", lock_timeout_s=4) as wh,
    ):
        assert isinstance(wh, DuckDBWarehouse) and wh.lock_timeout == 4


# --- sessions ------------------------------------------------------------------------------


def test_a_session_opens_the_file_once_and_another_thread_waits_for_it(
    wh: Warehouse, connects: list[str]
) -> None:
    """A run's preparation is four operations; in a session they share one connection. Another
    thread's operation meanwhile gets a connection of its own once the session has ended."""
    import threading

    answered = threading.Event()
    other: list[bool] = []

    def elsewhere() -> None:
        other.append(wh.has_checks())
        answered.set()

    with wh.session():
        wh.ensure_schema()
        assert wh.get_watermark("checks") is None
        assert wh.failed_loads_to_clean() == {}
        thread = threading.Thread(target=elsewhere, name="other")
        thread.start()
        assert not answered.wait(0.5)  # the file is the session's until it ends
        assert not wh.has_checks()
        with wh.session():  # nested: the same connection
            wh.ensure_schema()
    assert answered.wait(30) and other == [False]
    thread.join(5)
    assert connects == ["MainThread", "other"]
    wh.ensure_schema()  # after the session: one connection per operation again
    assert connects == ["MainThread", "other", "MainThread"]


def test_a_failed_statement_in_a_session_leaves_the_next_one_working(
    wh: Warehouse, connects: list[str]
) -> None:
    assert isinstance(wh, DuckDBWarehouse)
    with wh.session():
        with pytest.raises(Exception, match="no_such_table"):
            wh.query("SELECT * FROM no_such_table")
        assert wh.query("SELECT 41 + 1") == [(42,)]
    assert len(connects) == 1
