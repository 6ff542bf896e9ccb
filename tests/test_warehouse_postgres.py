"""SQL warehouses: the DuckDB tests mirrored on PostgreSQL (COPY fast path and the generic path)
and on SQLite (the generic path on a second dialect)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from numberyo_provider.schema import (
    ALL_TABLES,
    CHECKS,
    DATA_TABLES,
    HLR_RESULTS,
    TABLES_BY_NAME,
    VERIFY_RESULTS,
    description,
)
from numberyo_provider.sync.land import LandedFile, ParquetLander
from numberyo_provider.warehouse import (
    LoadCommit,
    LoadError,
    WarehouseError,
    WarehouseLockedError,
    Watermark,
    connect_warehouse,
)
from numberyo_provider.warehouse import sql as sql_module
from numberyo_provider.warehouse.sql import ADVISORY_LOCK_KEY, SqlWarehouse

T0 = datetime(2025, 3, 30, 14, 21, tzinfo=UTC)

BACKENDS = [
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres-copy"),
    pytest.param("postgres-generic", marks=pytest.mark.postgres, id="postgres-generic"),
    pytest.param("sqlite", id="sqlite"),
]


# --- helpers (mirroring test_warehouse_duckdb.py) ------------------------------------------


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


def _norm(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite keeps no time zone; we store UTC
    return value


def rows(wh: SqlWarehouse, table: str, *, lineage: bool = False) -> list[tuple[Any, ...]]:
    t = wh.tables[table]
    cols = [c for c in t.columns if lineage or not c.name.startswith("_loaded")]
    order = [t.c[k] for k in TABLES_BY_NAME[table].primary_key]
    with wh.transaction() as conn:
        result = conn.execute(sa.select(*cols).order_by(*order))
        return [tuple(_norm(v) for v in r) for r in result]


def snapshot(wh: SqlWarehouse) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: rows(wh, t.name, lineage=True) for t in ALL_TABLES}


def truncate(path: str) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def wh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlWarehouse]:
    if request.param.startswith("postgres"):
        url = request.getfixturevalue("postgres_url")
        warehouse = SqlWarehouse(url, use_copy=request.param == "postgres")
        assert warehouse.use_copy is (request.param == "postgres")
    else:
        warehouse = connect_warehouse(f"sqlite:///{tmp_path / 'wh.sqlite'}")  # type: ignore[assignment]
    assert isinstance(warehouse, SqlWarehouse)
    with warehouse:
        warehouse.ensure_schema()
        yield warehouse


# --- schema --------------------------------------------------------------------------------


def test_ensure_schema_is_idempotent_and_complete(wh: SqlWarehouse) -> None:
    wh.ensure_schema()
    inspector = sa.inspect(wh.engine)
    for t in ALL_TABLES:
        table = wh.tables[t.name]
        assert inspector.has_table(table.name, schema=table.schema)
        pk = inspector.get_pk_constraint(table.name, schema=table.schema)["constrained_columns"]
        assert tuple(pk) == t.primary_key
        assert [c["name"] for c in inspector.get_columns(table.name, schema=table.schema)] == (
            t.schema.names
        )


@pytest.mark.postgres
def test_postgres_types_and_comments(postgres_url: str) -> None:
    with connect_warehouse(postgres_url) as pg:
        pg.ensure_schema()
        types = dict(
            ((r[0], r[1]), r[2])
            for r in pg.query(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'numberyo'"
            )
        )
        assert types[("checks", "extra")] == "jsonb"
        assert types[("checks", "user_cost")] == "numeric"
        assert types[("checks", "created_at")] == "timestamp with time zone"
        assert types[("hlr_results", "ported")] == "boolean"
        assert types[("hlr_results", "result_index")] == "integer"
        assert pg.query(
            "SELECT numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_schema = 'numberyo' AND table_name = 'checks' "
            "AND column_name = 'user_cost'"
        ) == [(18, 4)]
        assert pg.query("SELECT obj_description('numberyo.checks'::regclass)") == [
            (CHECKS.description,)
        ]
        assert pg.query("SELECT col_description('numberyo.checks'::regclass, 4)") == [
            (description(CHECKS.schema.field("user_cost")),)
        ]


def test_ensure_schema_adds_columns_the_model_gained(wh: SqlWarehouse) -> None:
    wh.query(f"ALTER TABLE {wh.qualified('hlr_results')} DROP COLUMN msc")
    wh.query(f"ALTER TABLE {wh.qualified('_loads')} DROP COLUMN cleaned_at")
    wh.ensure_schema()
    for name, column in (("hlr_results", "msc"), ("_loads", "cleaned_at")):
        table = wh.tables[name]
        columns = sa.inspect(wh.engine).get_columns(table.name, table.schema)
        assert column in [c["name"] for c in columns]


def test_reads_before_ensure_schema_say_what_to_do(tmp_path: Path) -> None:
    with (
        connect_warehouse(f"sqlite:///{tmp_path / 'empty.sqlite'}") as fresh,
        pytest.raises(WarehouseError, match="ensure_schema"),
    ):
        fresh.get_watermark()


# --- loads ---------------------------------------------------------------------------------


def test_commit_merges_rows_with_lineage(wh: SqlWarehouse, tmp_path: Path) -> None:
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
    assert as_json(rows(wh, "verify_results")[0][6]) == {"line": "mobile"}
    (manifest,) = rows(wh, "_loads")
    assert manifest[:3] == ("load-1", "sync", "committed")
    assert as_json(manifest[5]) == [f.path for f in files]
    assert as_json(manifest[6]) == result.rows
    assert as_json(manifest[7]) == [{"check_id": 5, "status": 404}]


def test_loads_stream_in_batches(
    wh: SqlWarehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_module, "BATCH_ROWS", 7)  # many batches from few rows
    files = land(tmp_path / "land", "b", hlr=[hlr(i) for i in range(50)], rows_per_file=20)
    assert wh.commit_load(commit("b", files)).rows["hlr_results"] == 50
    assert [r[0] for r in rows(wh, "hlr_results")] == list(range(50))


def test_committing_the_same_load_twice_leaves_the_same_rows(
    wh: SqlWarehouse, tmp_path: Path
) -> None:
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
    assert len(rows(wh, "_loads")) == 1


def test_later_loads_never_erase_known_check_details(wh: SqlWarehouse, tmp_path: Path) -> None:
    root = tmp_path / "land"
    full = check(1, source="API", user_cost="2.50", phone_number="32456789023", extra='{"a": 1}')
    wh.commit_load(commit("post", land(root, "post", checks=[full])))
    listed = check(1, created_at=T0 + timedelta(hours=1))
    wh.commit_load(commit("list", land(root, "list", checks=[listed])))
    (row,) = rows(wh, "checks", lineage=True)
    assert row[2:6] == ("API", pytest.approx(2.5), T0 + timedelta(hours=1), "32456789023")
    assert as_json(row[6]) == {"a": 1}
    assert row[-1] == "list"
    wh.commit_load(commit("fix", land(root, "fix", checks=[check(1, source="Dashboard")])))
    assert rows(wh, "checks")[0][2] == "Dashboard"


def test_results_are_replaced_by_key(wh: SqlWarehouse, tmp_path: Path) -> None:
    root = tmp_path / "land"
    wh.commit_load(commit("a", land(root, "a", hlr=[hlr(1, 0), hlr(1, 1), hlr(2, 0)])))
    wh.commit_load(commit("b", land(root, "b", hlr=[hlr(1, 0, msisdn="999", ported=True)])))
    got = {(r[0], r[1]): (r[5], r[6], r[-1]) for r in rows(wh, "hlr_results")}
    assert got == {
        (1, 0): ("999", True, "b"),
        (1, 1): ("32456780001", None, "a"),
        (2, 0): ("32456780002", None, "a"),
    }


def test_a_key_twice_in_one_load_merges_in_landing_order(wh: SqlWarehouse, tmp_path: Path) -> None:
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


def test_watermark_only_moves_forward(wh: SqlWarehouse) -> None:
    assert wh.get_watermark() is None
    wh.commit_load(commit("a", [], Watermark(10, T0)))
    wh.commit_load(commit("b", [], Watermark(9, T0 - timedelta(days=1))))
    assert wh.get_watermark() == Watermark(10, T0)
    wh.commit_load(commit("c", [], Watermark(11, T0)))
    assert wh.get_watermark() == Watermark(11, T0)
    wh.commit_load(commit("d", [], Watermark(3, T0 + timedelta(seconds=1))))
    assert wh.get_watermark() == Watermark(3, T0 + timedelta(seconds=1))
    assert [r[3] for r in rows(wh, "_sync_state")] == ["d"]


# --- crash safety --------------------------------------------------------------------------


def _first_load(wh: SqlWarehouse, root: Path) -> None:
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
def test_a_fault_mid_load_changes_nothing(wh: SqlWarehouse, tmp_path: Path, fault: str) -> None:
    root = tmp_path / "land"
    _first_load(wh, root)
    before = snapshot(wh)
    files = _bad_load(root)
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
    files = _bad_load(root)
    wh.commit_load(commit("bad", files, Watermark(4, T0 + timedelta(hours=1))))
    assert [r[0] for r in rows(wh, "checks")] == [1, 2, 3]
    assert wh.get_watermark() == Watermark(4, T0 + timedelta(hours=1))


def test_a_truncated_second_file_of_a_table_changes_nothing(
    wh: SqlWarehouse, tmp_path: Path
) -> None:
    root = tmp_path / "land"
    _first_load(wh, root)
    before = snapshot(wh)
    files = land(root, "bad", checks=[check(i) for i in range(2, 12)], rows_per_file=5)
    assert len(files) == 2
    truncate(files[1].path)
    with pytest.raises(LoadError):
        wh.commit_load(commit("bad", files))
    assert snapshot(wh) == before
    # The connection that failed goes back to the pool clean: the next load works.
    wh.commit_load(commit("next", land(root, "next", checks=[check(20)])))
    assert [r[0] for r in rows(wh, "checks")] == [1, 20]


# --- existing checks, failed loads, locks --------------------------------------------------


def test_existing_check_ids_needs_the_results_too(wh: SqlWarehouse, tmp_path: Path) -> None:
    n = 10_000
    files = land(
        tmp_path / "land",
        "big",
        checks=[check(i, type="HLR" if i % 2 else "Verify") for i in range(n)],
        hlr=[hlr(i) for i in range(1, 5000, 2)],
        verify=[{"check_id": i, "result_index": 0} for i in range(0, 100, 2)],
    )
    wh.commit_load(commit("big", files))
    expected = set(range(1, 5000, 2)) | set(range(0, 100, 2))
    assert wh.existing_check_ids(list(range(-5, n + 5))) == expected
    assert wh.existing_check_ids([]) == set()


def test_fresh_numbers_are_the_distinct_numbers_of_a_type_since_a_time(
    wh: SqlWarehouse, tmp_path: Path
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
    wh: SqlWarehouse, tmp_path: Path
) -> None:
    root = tmp_path / "land"
    good = land(root, "good", checks=[check(1)])
    wh.commit_load(commit("good", good))
    bad = land(root, "bad", checks=[check(2)])
    bad += land(root, "bad-repair-1a2b", checks=[check(3)])  # a sub-lander of the same run
    # The committed load's file must never be listed for deletion, even if passed by mistake.
    wh.record_failed_load("bad", "sync", T0, [*bad, *good], [{"error": "boom"}])
    wh.record_failed_load("good", "sync", T0, good, [])
    assert wh.failed_loads_to_clean() == {"bad": [f.path for f in bad]}
    assert {r[0]: r[2] for r in rows(wh, "_loads")} == {"good": "committed", "bad": "failed"}
    wh.mark_loads_cleaned(["bad", "good"])  # a committed load is never marked
    assert wh.failed_loads_to_clean() == {}
    assert {r[0]: r[-1] is not None for r in rows(wh, "_loads")} == {"good": False, "bad": True}
    wh.record_failed_load("bad", "sync", T0, bad, [])
    assert wh.failed_loads_to_clean() == {"bad": [f.path for f in bad]}
    wh.commit_load(commit("bad", bad))
    assert wh.failed_loads_to_clean() == {}


@pytest.mark.postgres
def test_postgres_lock_waits_are_bounded(postgres_url: str, tmp_path: Path) -> None:
    files = land(tmp_path / "land", "l", checks=[check(1)])
    with SqlWarehouse(postgres_url, lock_timeout=0.3) as pg:
        pg.ensure_schema()
        other = sa.create_engine(postgres_url)
        try:
            with other.begin() as conn:  # another session mid-commit
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
                with pytest.raises(WarehouseLockedError, match=r"\(lock_timeout, --lock-timeout\)"):
                    pg.commit_load(commit("l", files))
            assert pg.commit_load(commit("l", files)).rows["checks"] == 1
        finally:
            other.dispose()


@pytest.mark.postgres
def test_bare_postgresql_urls_use_psycopg_3(postgres_url: str) -> None:
    bare = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with connect_warehouse(bare) as pg:
        assert isinstance(pg, SqlWarehouse) and pg.use_copy
        pg.ensure_schema()
        assert pg.get_watermark() is None


def test_an_aborted_transaction_raises_its_first_error_not_the_abort(postgres_url: str) -> None:
    """PostgreSQL refuses every statement after a failure ("current transaction is aborted",
    SQLSTATE 25P02); a cleanup statement after the failure must not replace the real error."""
    warehouse = SqlWarehouse(postgres_url)
    try:
        with pytest.raises(sa.exc.DBAPIError) as caught, warehouse.transaction() as conn:
            try:
                conn.exec_driver_sql("SELECT 1 / 0")
            finally:
                conn.exec_driver_sql("SELECT 1")  # refused: the transaction is aborted
    finally:
        warehouse.close()
    assert "division by zero" in str(caught.value)
    assert "aborted" not in str(caught.value).lower()
