"""Check runs with a PostgreSQL warehouse: the ledger lives in the warehouse database itself."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from numberyo_provider import schema
from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.checks import CheckOptions, run_check
from numberyo_provider.checks.ledger import CREATED, PENDING, Ledger, Outcome, request_id
from numberyo_provider.warehouse import LoadCommit, LoadError, connect_warehouse

pytestmark = pytest.mark.postgres

NUMBERS = [f"32456{i:06d}" for i in range(12)]


def _scalar(url: str, sql: str) -> Any:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def test_the_ledger_on_postgres_is_guarded_and_exports_the_warehouse_schema(
    postgres_url: str,
) -> None:
    first, second = Ledger(postgres_url), Ledger(postgres_url)  # concurrent set-up is safe
    try:
        ids = [request_id("r", "HLR", n) for n in NUMBERS[:2]]
        first.mark_pending("r", "HLR", list(zip(ids, NUMBERS[:2], strict=True)))
        second.record("r", [Outcome(ids[0], CREATED, check_id=42)])
        first.mark_pending("r", "HLR", [(ids[0], NUMBERS[0])])  # never overwrites created
        first.mark_not_checked("r", "HLR", [(ids[1], NUMBERS[1])], "budget")  # nor pending
        assert {r.request_id: r.status for r in second.rows(run_id="r")} == {
            ids[0]: CREATED,
            ids[1]: PENDING,
        }
        first.reject("r", [("x", "not a phone number")])
        table = pa.concat_tables(list(first.iter_request_batches("r")))
        assert table.schema == schema.CHECK_REQUESTS.schema and table.num_rows == 2
        assert all(r.requested_at.tzinfo is not None for r in first.rows())
    finally:
        first.close()
        second.close()
    assert _scalar(postgres_url, "SELECT count(*) FROM numberyo._ledger_requests") == 2
    assert _scalar(postgres_url, "SELECT count(*) FROM numberyo._ledger_rejected") == 1


def test_a_run_into_postgres_loads_results_and_ledger_and_never_pays_twice(
    postgres_url: str, numberyo_simulator_factory: Any, tmp_path: Path
) -> None:
    server = numberyo_simulator_factory(credits=8, costs={"HLR": "1.00"})

    def run(run_id: str) -> Any:
        with NumberYoClient(server.token, server.url, pool_size=4) as client:
            return run_check(
                client=client,
                options=CheckOptions(check_type="HLR", run_id=run_id, concurrency=4),
                chunks=[[*NUMBERS, "garbage"]],
                warehouse=postgres_url,
                parquet_path=str(tmp_path / "landing"),
            )

    first = run("pg-1")
    assert first.summary.stopped == "insufficient_credits"
    assert (first.summary.created, first.summary.not_checked) == (8, 4)
    assert first.load is not None and first.load.rows["check_requests"] == 12
    server.sim.set_credits(100)
    second = run("pg-1")  # the same run resumes
    assert (second.summary.already_created, second.summary.created) == (8, 4)
    third = run("pg-2")  # a new run: fresh results from the PostgreSQL warehouse
    assert (third.summary.fresh_skipped, third.summary.created) == (12, 0)
    assert Counter(e.phone_number for e in server.sim.charges()) == Counter(NUMBERS)
    assert _scalar(postgres_url, "SELECT count(*) FROM numberyo.checks") == 12
    assert _scalar(postgres_url, "SELECT count(*) FROM numberyo.hlr_results") == 12
    assert (
        _scalar(postgres_url, "SELECT count(*) FROM numberyo.check_requests WHERE run_id = 'pg-1'")
        == 12
    )
    assert (
        _scalar(
            postgres_url, "SELECT count(*) FROM numberyo.check_requests WHERE status <> 'created'"
        )
        == 0
    )
    assert (
        _scalar(postgres_url, "SELECT count(DISTINCT run_id) FROM numberyo.rejected_numbers") == 2
    )
    # The ledger is the warehouse database itself (no SQLite file anywhere).
    assert _scalar(postgres_url, "SELECT count(*) FROM numberyo._ledger_requests") == 12
    assert not list(tmp_path.glob("*.sqlite"))


def test_upserts_on_postgres_replace_rows_by_key(postgres_url: str) -> None:
    now = datetime(2025, 3, 30, tzinfo=UTC)

    def rejected(*rows: tuple[str, str]) -> pa.Table:
        return pa.Table.from_pylist(
            [{"run_id": "r", "raw_value": v, "reason": why, "rejected_at": now} for v, why in rows],
            schema=schema.REJECTED_NUMBERS.schema,
        )

    with connect_warehouse(postgres_url) as wh:
        wh.ensure_schema()
        for load_id, batches in (
            ("check-1", [rejected(("a", "empty"), ("b", "too short"))]),
            ("check-2", [rejected(("a", "x"), ("a", "invalid for region BE"))]),
        ):
            wh.commit_load(
                LoadCommit(
                    load_id, "check", now, [], None, [], upserts={"rejected_numbers": batches}
                )
            )
        rows = wh.query(
            f"SELECT raw_value, reason FROM {wh.qualified('rejected_numbers')} ORDER BY 1"
        )
        assert [tuple(r) for r in rows] == [("a", "invalid for region BE"), ("b", "too short")]
        with pytest.raises(LoadError, match="_loads"):
            wh.commit_load(
                LoadCommit("check-3", "check", now, [], None, [], upserts={"_loads": []})
            )
