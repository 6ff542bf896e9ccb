"""The sync end to end: simulator over HTTP -> Parquet -> real DuckDB, compared row by row with the
simulator's truth. Also the home of the truth comparison that the PostgreSQL tests reuse."""

from __future__ import annotations

import gc
import glob
import json
import multiprocessing
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_reference import HLR_KEYS, VERIFY_KEYS

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.api.models import parse_timestamp
from numberyo_provider.errors import AuthenticationError, ServerError
from numberyo_provider.privacy import PrivacyPolicy
from numberyo_provider.sync import SyncCancelled, SyncSummary, run_sync
from numberyo_provider.sync.id_set import IdSet
from numberyo_provider.warehouse import connect_warehouse

NUMBER = "32456789023"
HLR_COLUMNS = HLR_KEYS
VERIFY_COLUMNS = [*VERIFY_KEYS, "created_at"]


# --- the witness: expected rows straight from the simulator's truth (not from our code) ------


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _json(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    return json.loads(value)


def _ts(text: str | None) -> datetime | None:
    return parse_timestamp(text) if text else None


def expected_rows(truth: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    checks: list[tuple[Any, ...]] = []
    hlr: list[tuple[Any, ...]] = []
    verify: list[tuple[Any, ...]] = []
    for item in truth:
        check = item["check"]
        results = (item["results"] or {}).get("results") or []
        phone = next(
            (r.get("number_requested") for r in results if r.get("number_requested")), None
        )
        checks.append((check["id"], check["type"], _ts(check["created_at"]), phone))
        for index, result in enumerate(results):
            if check["type"] == "HLR":
                extra = {k: v for k, v in result.items() if k not in HLR_COLUMNS} or None
                values = [result.get(c) for c in HLR_COLUMNS]
                values[-1] = _ts(values[-1])
                hlr.append((check["id"], index, *values, extra))
            else:
                extra = {k: v for k, v in result.items() if k not in VERIFY_COLUMNS} or None
                values = [result.get(c) for c in VERIFY_COLUMNS]
                values[-1] = _ts(values[-1])
                verify.append((check["id"], index, *values, extra))
    return {"checks": checks, "hlr_results": hlr, "verify_results": verify}


def warehouse_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with connect_warehouse(url) as wh:
        checks = wh.query(
            f"SELECT check_id, type, created_at, phone_number FROM {wh.qualified('checks')}"
        )
        hlr = wh.query(
            f"SELECT check_id, result_index, {', '.join(HLR_COLUMNS)}, extra "
            f"FROM {wh.qualified('hlr_results')}"
        )
        verify = wh.query(
            f"SELECT check_id, result_index, {', '.join(VERIFY_COLUMNS)}, extra "
            f"FROM {wh.qualified('verify_results')}"
        )
    return {
        "checks": [(r[0], r[1], _utc(r[2]), r[3]) for r in checks],
        "hlr_results": [(*r[:-2], _utc(r[-2]), _json(r[-1])) for r in hlr],
        "verify_results": [(*r[:-2], _utc(r[-2]), _json(r[-1])) for r in verify],
    }


def _key(row: tuple[Any, ...]) -> str:
    return json.dumps(row, default=str, sort_keys=True)


def assert_matches_truth(url: str, sim: Any) -> None:
    """Every row of the three tables equals the API's truth: nothing missing, nothing twice."""
    want = expected_rows(sim.truth())
    have = warehouse_rows(url)
    for table in want:
        got = sorted(have[table], key=_key)
        exp = sorted(want[table], key=_key)
        assert len(got) == len({(r[0], r[1]) if table != "checks" else r[0] for r in got}), (
            f"{table}: duplicate keys"
        )
        missing = [r for r in exp if r not in got]
        extra = [r for r in got if r not in exp]
        assert not missing and not extra, f"{table}: missing {missing[:3]}, unexpected {extra[:3]}"


def loads(url: str) -> list[dict[str, Any]]:
    with connect_warehouse(url) as wh:
        rows = wh.query(
            f"SELECT load_id, kind, status, files, errors, rows FROM {wh.qualified('_loads')} "
            "ORDER BY started_at"
        )
    return [
        {
            "load_id": r[0],
            "kind": r[1],
            "status": r[2],
            "files": _json(r[3]),
            "errors": _json(r[4]),
            "rows": _json(r[5]),
        }
        for r in rows
    ]


def results_requested(sim: Any) -> list[int]:
    return results_requested_since(sim, 0)


def results_requested_since(sim: Any, start: int) -> list[int]:
    return [e.check_id for e in sim.requests()[start:] if e.endpoint == "results"]


def parquet_files(root: Path) -> list[str]:
    return sorted(glob.glob(str(root / "**" / "*.parquet"), recursive=True))


def temp_files(root: Path) -> list[str]:
    """Unfinished files (hidden ``.<name>.tmp``), which ``*.parquet`` globs do not show."""
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp"))


def sync(server: Any, url: str, root: Path, **kwargs: Any) -> SyncSummary:
    kwargs.setdefault("concurrency", 4)
    client = kwargs.pop("client", None)
    if client is None:
        kwargs.setdefault("token", server.token)
        kwargs.setdefault("base_url", server.url)
        kwargs.setdefault("client_options", {"sleep": lambda s: None})
    return run_sync(warehouse=url, parquet_path=str(root), client=client, **kwargs)


# --- behaviour -------------------------------------------------------------------------------


def test_backfill_then_incremental_fetches_only_new_results(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=95)
    sim = server.sim
    first = sync(server, wh_url, root, batch_size=30)
    assert_matches_truth(wh_url, sim)
    assert first.checks_seen == first.checks_new == 95
    assert sorted(results_requested(sim)) == sorted(t["check"]["id"] for t in sim.truth())
    assert first.watermark_before is None
    assert first.watermark_after is not None
    assert first.watermark_after["check_id"] == sim.truth()[0]["check"]["id"]
    assert sum(first.results_loaded.values()) == 95
    assert first.files and all(os.path.exists(p) for p in first.files)

    before = len(sim.requests())
    new_ids = [
        sim.create_check(server.token, NUMBER, t)["check"]["id"] for t in ("HLR", "Verify", "HLR")
    ]
    second = sync(server, wh_url, root)
    assert_matches_truth(wh_url, sim)
    asked = results_requested_since(sim, before)
    assert sorted(asked) == sorted(new_ids)
    assert second.checks_new == 3
    assert second.watermark_after is not None and second.watermark_after["check_id"] == max(new_ids)
    assert second.pages <= 3
    history = loads(wh_url)
    assert [(h["load_id"], h["status"]) for h in history] == [
        (first.load_id, "committed"),
        (second.load_id, "committed"),
    ]
    json.dumps(second.as_dict())  # JSON-able for XCom


def test_only_a_warehouse_with_checks_is_asked_which_are_loaded(
    numberyo_simulator_factory: Callable[..., Any],
    wh_url: str,
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from numberyo_provider.warehouse.duckdb import DuckDBWarehouse

    asked: list[int] = []
    original = DuckDBWarehouse.existing_check_ids

    def spy(self: DuckDBWarehouse, ids: Any) -> set[int]:
        asked.extend(ids)
        return original(self, ids)

    monkeypatch.setattr(DuckDBWarehouse, "existing_check_ids", spy)
    server = numberyo_simulator_factory(seed_checks=45)
    sim = server.sim
    sync(server, wh_url, root, batch_size=20)
    assert asked == []  # an empty warehouse holds none of them: no query per batch
    assert_matches_truth(wh_url, sim)

    # Checks but no watermark (e.g. `numberyo check` loaded them, or the state was reset): a
    # backfill that must not fetch again what is loaded.
    with connect_warehouse(wh_url) as wh:
        wh.query(f"DELETE FROM {wh.qualified('_sync_state')}")
    before = len(sim.requests())
    again = sync(server, wh_url, root, batch_size=20)
    assert sorted(asked) == sorted(t["check"]["id"] for t in sim.truth())
    assert results_requested_since(sim, before) == []
    assert again.checks_seen == 45 and again.checks_new == 0
    assert_matches_truth(wh_url, sim)


def test_nothing_new_reads_one_or_two_pages_and_keeps_the_watermark(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=25)
    first = sync(server, wh_url, root)
    before = len(server.sim.requests())
    again = sync(server, wh_url, root)
    assert again.checks_new == 0 and again.files == []
    assert again.watermark_after == first.watermark_after
    assert [e.endpoint for e in server.sim.requests()[before:]] == ["list", "list"]
    assert_matches_truth(wh_url, server.sim)


def test_empty_account_and_empty_warehouse(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory()
    summary = sync(server, wh_url, root)
    assert summary.checks_seen == 0 and summary.watermark_after is None
    assert loads(wh_url)[0]["status"] == "committed"


def test_drift_during_concurrent_backfill(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=300)
    sim = server.sim
    at_start = {t["check"]["id"] for t in sim.truth()}
    created: list[int] = []

    def hook(endpoint: str, info: Any) -> None:
        if endpoint == "list" and (info.get("page") or 0) % 7 == 3 and len(created) < 12:
            created.append(sim.create_check(server.token, NUMBER, "HLR")["check"]["id"])

    sim.before_request = hook
    summary = sync(server, wh_url, root, concurrency=8, batch_size=50)
    assert summary.drift_detected
    loaded = {r[0] for r in warehouse_rows(wh_url)["checks"]}
    assert at_start <= loaded  # nothing that existed is skipped, nothing loaded twice
    sim.before_request = None
    sync(server, wh_url, root)  # the checks created after their page was read come next time
    assert_matches_truth(wh_url, sim)


def test_drift_during_incremental(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=40)
    sim = server.sim
    sync(server, wh_url, root)
    for _ in range(45):
        sim.create_check(server.token, NUMBER, "Verify")
    existing = {t["check"]["id"] for t in sim.truth()}
    count = [0]

    def hook(endpoint: str, info: Any) -> None:
        if endpoint == "list" and count[0] < 6:
            count[0] += 1
            sim.create_check(server.token, NUMBER, "HLR")

    sim.before_request = hook
    summary = sync(server, wh_url, root, concurrency=8)
    assert summary.drift_detected
    assert existing <= {r[0] for r in warehouse_rows(wh_url)["checks"]}
    sim.before_request = None
    sync(server, wh_url, root)
    assert_matches_truth(wh_url, sim)


def test_rate_limit_and_server_error_storms(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(
        seed_checks=120, rate_limit_share=0.2, error_share=0.2, retry_after_s=0, random_seed=7
    )
    client = NumberYoClient(
        server.token, server.url, max_retries=20, sleep=lambda s: None, pool_size=8
    )
    with client:
        summary = sync(server, wh_url, root, client=client, concurrency=8)
    statuses = {e.status for e in server.sim.requests()}
    assert {429, 200} <= statuses and statuses & {500, 503}
    assert summary.errors == 0
    assert_matches_truth(wh_url, server.sim)


def test_404_and_400_results_are_recorded_not_fatal(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory()
    sim = server.sim
    ids = sim.seed_checks(10)
    unsupported = sim.seed_checks(2, types=("CNAM",))
    sim.break_results(ids[3], 404)
    summary = sync(server, wh_url, root)
    assert summary.errors == 3
    assert_matches_truth(wh_url, sim)  # the check rows are there, without results
    [load] = loads(wh_url)
    errors = {e["check_id"]: e for e in load["errors"]}
    assert errors[ids[3]]["status"] == 404
    assert errors[ids[3]]["message"] == "Check not found or access denied."
    assert {errors[i]["status"] for i in unsupported} == {400}


def test_unknown_verify_fields_are_kept(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory()
    server.sim.seed_checks(5, types=("Verify",))
    sync(server, wh_url, root)
    rows = warehouse_rows(wh_url)["verify_results"]
    assert len(rows) == 5
    for row in rows:
        extra = row[-1]
        assert {"line_type", "national_format", "timezones", "number_requested"} <= set(extra)


def test_full_refresh_refetches_everything_without_duplicates(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=30)
    sync(server, wh_url, root)
    before = len(server.sim.requests())
    summary = sync(server, wh_url, root, full_refresh=True)
    asked = [e for e in server.sim.requests()[before:] if e.endpoint == "results"]
    assert len(asked) == 30 and summary.checks_new == 30
    assert_matches_truth(wh_url, server.sim)


def test_privacy_mask_reaches_files_and_warehouse(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    import pyarrow.parquet as pq

    server = numberyo_simulator_factory()
    server.sim.seed_checks(6, types=("HLR",))
    summary = sync(server, wh_url, root, privacy=PrivacyPolicy(mode="mask"))
    phones = [r[3] for r in warehouse_rows(wh_url)["checks"]]
    assert phones and all("*" in p for p in phones)
    for path in summary.files:
        table = pq.read_table(path)
        for column in ("phone_number", "msisdn", "imsi"):
            if column in table.column_names:
                assert all(v is None or "*" in v for v in table.column(column).to_pylist())


# --- histories spanning years: few files, a merge whose memory does not grow with the days ---


def files_per_table(summary: SyncSummary) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in summary.files:
        table = Path(path).parts[-4]
        counts[table] = counts.get(table, 0) + 1
    return counts


def test_a_history_of_three_years_lands_a_file_per_table_and_type(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    # The seeded history is random and ends now, so its shape changes with the date: bulk jobs
    # may take most of a small account (400 checks spanned 80 days on 2026-12-02). A thousand
    # checks spanned at least 125 days in 20,000 draws of seeds and dates.
    server = numberyo_simulator_factory(seed_checks=1000, seed_span_days=1095)
    summary = sync(server, wh_url, root, batch_size=50)
    days = {c["check"]["created_at"][:10] for c in server.sim.truth()}
    assert len(days) > 100  # the rows were created over hundreds of days...
    # ...and land as one file per table and check type (the old layout: one per day).
    assert files_per_table(summary) == {"checks": 2, "hlr_results": 1, "verify_results": 1}
    assert sorted(parquet_files(root)) == sorted(summary.files)
    assert_matches_truth(wh_url, server.sim)


@pytest.mark.slow
def test_a_multi_year_backfill_commits_within_a_small_memory_limit(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path, root: Path
) -> None:
    """Issue 13: a first backfill of a multi-year account failed with DuckDB's Out of Memory
    Error, merging thousands of one-day files at once. Here the same shape, scaled down (3,000
    checks over three years, a 16 MB limit instead of the default 64 MB): the old layout landed
    about 470 files per results table and could not merge them."""
    server = numberyo_simulator_factory(seed_checks=3000, seed_span_days=1095)
    wh_url = f"duckdb:///{tmp_path / 'wh.duckdb'}?memory_limit=16MB"
    summary = sync(server, wh_url, root, concurrency=8)
    assert summary.checks_new == 3000
    assert files_per_table(summary) == {"checks": 2, "hlr_results": 1, "verify_results": 1}
    assert sum(summary.rows_committed.values()) > 3000
    assert_matches_truth(wh_url, server.sim)
    # An incremental run on top of it stays as small.
    for t in ("HLR", "Verify") * 3:
        server.sim.create_check(server.token, NUMBER, t)
    again = sync(server, wh_url, root)
    assert again.checks_new == 6
    assert files_per_table(again) == {"checks": 2, "hlr_results": 1, "verify_results": 1}


def test_the_listed_ids_are_freed_before_the_commit(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    """The set of listed ids is the one state that grows with the account (8 MB at 1,000,000
    checks): it must not stay alive under the warehouse merge's peak."""
    server = numberyo_simulator_factory(seed_checks=60)
    gc.collect()  # what earlier tests in this worker left in cycles is not this run's
    alive: dict[str, int] = {}

    def stage(name: str) -> None:
        if name == "before_commit":  # no gc.collect(): freed by reference counting, at once
            # type(), not isinstance(): isinstance reads __class__, which makes a lazy proxy
            # that earlier tests left in this worker (Airflow's) import its module.
            alive["listed ids"] = sum(len(o) for o in gc.get_objects() if type(o) is IdSet)

    summary = sync(server, wh_url, root, on_stage=stage, batch_size=20)
    assert summary.checks_new == 60
    assert alive == {"listed ids": 0}


# --- failures: nothing becomes visible, a rerun is exact ----------------------------------------


def test_fatal_error_fails_cleanly_then_rerun_is_exact(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=60)
    sim = server.sim
    calls = [0]

    def hook(endpoint: str, info: Any) -> None:
        if endpoint == "results":
            calls[0] += 1
            # From the 40th on (after some batches were landed as files) every results request
            # answers 500, however the concurrent requests interleave: the run must fail.
            if calls[0] >= 40:
                sim.fail_next(1, 500, endpoint="results")

    sim.before_request = hook
    client = NumberYoClient(server.token, server.url, max_retries=1, sleep=lambda s: None)
    with pytest.raises(ServerError), client:
        # Small files, so some are finished (visible) before the failure, others still open.
        sync(
            server, wh_url, root, client=client, batch_size=10, max_buffered_rows=5, rows_per_file=7
        )
    assert warehouse_rows(wh_url)["checks"] == []
    [failed] = loads(wh_url)
    assert failed["status"] == "failed" and failed["files"]
    assert parquet_files(root) == []  # the failed load's files were deleted
    assert temp_files(root) == []  # and so were its unfinished ones
    # The outage is over: no fault of the first run may be left queued for the rerun.
    sim.before_request = None
    sim.clear_faults()
    sync(server, wh_url, root)
    assert_matches_truth(wh_url, sim)


def test_bad_token_fails_with_nothing_visible(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=5)
    with pytest.raises(AuthenticationError) as info:
        run_sync(warehouse=wh_url, parquet_path=str(root), token="nope-secret", base_url=server.url)
    assert "nope-secret" not in str(info.value)
    assert warehouse_rows(wh_url)["checks"] == []
    [failed] = loads(wh_url)  # the manifest tells about the failed run
    assert failed["status"] == "failed" and failed["files"] == []
    assert "AuthenticationError" in failed["errors"][-1]["message"]
    assert "nope-secret" not in json.dumps(failed)


@pytest.mark.parametrize("stage", ["batch_landed", "landed", "before_commit"])
def test_crash_between_landing_and_loading_then_rerun(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path, stage: str
) -> None:
    server = numberyo_simulator_factory(seed_checks=45)
    sim = server.sim
    sync(server, wh_url, root)
    for t in ("HLR", "Verify") * 8:
        sim.create_check(server.token, NUMBER, t)
    before = warehouse_rows(wh_url)

    def crash(name: str) -> None:
        if name == stage:
            raise RuntimeError(f"injected crash at {name}")

    with pytest.raises(RuntimeError, match="injected crash"):
        sync(server, wh_url, root, on_stage=crash, batch_size=5, max_buffered_rows=3)
    assert warehouse_rows(wh_url) == before  # nothing of the crashed run is visible
    assert loads(wh_url)[-1]["status"] == "failed"
    committed = {p for h in loads(wh_url) if h["status"] == "committed" for p in h["files"]}
    assert set(parquet_files(root)) == committed  # its files were deleted
    assert temp_files(root) == []
    sync(server, wh_url, root)
    assert_matches_truth(wh_url, sim)


def test_crash_inside_the_load_rolls_back_then_rerun(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    """A landed file is destroyed right before the commit: the load transaction fails halfway
    (some tables already staged) and must leave nothing behind."""
    server = numberyo_simulator_factory(seed_checks=50)
    sim = server.sim
    victim: list[str] = []

    def corrupt(name: str) -> None:
        if name == "before_commit":
            files = parquet_files(root)
            victim.append(max(files, key=lambda p: ("verify_results" in p, p)))
            Path(victim[0]).write_bytes(b"PAR1 not a parquet file")

    with pytest.raises(Exception) as info:
        sync(server, wh_url, root, on_stage=corrupt)
    assert not isinstance(info.value, AssertionError)
    assert warehouse_rows(wh_url) == {"checks": [], "hlr_results": [], "verify_results": []}
    assert loads(wh_url)[-1]["status"] == "failed"
    assert parquet_files(root) == []
    sync(server, wh_url, root)
    assert_matches_truth(wh_url, sim)


def _child_sync(url: str, token: str, wh: str, landing: str, stage: str) -> None:
    def die(name: str) -> None:
        if name == stage:
            os._exit(17)  # a hard kill: no cleanup, no finally, no atexit

    run_sync(
        warehouse=wh,
        parquet_path=landing,
        token=token,
        base_url=url,
        concurrency=4,
        batch_size=10,
        on_stage=die,
    )
    os._exit(0)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["landed", "before_commit"])
def test_hard_killed_process_then_rerun_is_exact(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path, stage: str
) -> None:
    server = numberyo_simulator_factory(seed_checks=70)
    sim = server.sim
    sync(server, wh_url, root)
    for t in ("Verify", "HLR") * 6:
        sim.create_check(server.token, NUMBER, t)
    before = warehouse_rows(wh_url)
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(
        target=_child_sync, args=(server.url, server.token, wh_url, str(root), stage)
    )
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the child sync hung")
    assert child.exitcode == 17
    assert warehouse_rows(wh_url) == before
    committed = {p for h in loads(wh_url) if h["status"] == "committed" for p in h["files"]}
    orphans = set(parquet_files(root)) - committed
    assert orphans  # the killed run left files behind, referenced by no committed load
    summary = sync(server, wh_url, root)
    assert summary.checks_new == 12
    assert_matches_truth(wh_url, sim)


def test_files_of_failed_loads_are_deleted_by_the_next_run_once(
    numberyo_simulator_factory: Callable[..., Any],
    wh_url: str,
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from numberyo_provider.sync import land

    server = numberyo_simulator_factory(seed_checks=15)

    def crash(name: str) -> None:
        if name == "landed":
            raise RuntimeError("boom")

    # The failed run cannot delete its files (say, the disk is briefly unavailable).
    def unavailable(*args: Any) -> None:
        raise OSError("disk unavailable")

    with monkeypatch.context() as patched:
        patched.setattr(land, "_remove_one", unavailable)
        patched.setattr(land.ParquetLander, "abort", lambda self: None)
        with pytest.raises(RuntimeError, match="boom"):
            sync(server, wh_url, root, on_stage=crash)
    [failed] = loads(wh_url)
    assert failed["status"] == "failed" and failed["files"]
    assert all(Path(p).exists() for p in failed["files"])
    # Still unavailable at the next run: the leftovers do not keep new data out.
    with monkeypatch.context() as patched:
        patched.setattr(land, "_remove_one", unavailable)
        blocked = sync(server, wh_url, root)
    assert blocked.failed_load_files_cleaned == 0
    assert all(Path(p).exists() for p in failed["files"])
    summary = sync(server, wh_url, root)
    assert not any(Path(p).exists() for p in failed["files"])
    assert summary.failed_load_files_cleaned == len(failed["files"])
    assert_matches_truth(wh_url, server.sim)
    # Cleaned once: the next run does not look for them again.
    assert sync(server, wh_url, root).failed_load_files_cleaned == 0
    with connect_warehouse(wh_url) as wh:
        [(cleaned_at,)] = wh.query(
            f"SELECT cleaned_at FROM {wh.qualified('_loads')} WHERE load_id = ?",
            [failed["load_id"]],
        )
    assert cleaned_at is not None


def test_a_failed_run_that_deletes_its_files_leaves_nothing_to_clean(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=15)

    def crash(name: str) -> None:
        if name == "landed":
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        sync(server, wh_url, root, on_stage=crash)
    [failed] = loads(wh_url)
    assert failed["files"] and not any(Path(p).exists() for p in failed["files"])
    assert sync(server, wh_url, root).failed_load_files_cleaned == 0


def test_cancel_stops_promptly_and_leaves_nothing(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=80, latency_ms=5)
    cancel = threading.Event()

    def stop_after_first_batch(name: str) -> None:
        if name == "batch_landed":
            cancel.set()

    with pytest.raises(SyncCancelled):
        sync(
            server,
            wh_url,
            root,
            cancel=cancel,
            on_stage=stop_after_first_batch,
            batch_size=10,
            max_buffered_rows=2,
        )
    assert warehouse_rows(wh_url)["checks"] == []
    assert parquet_files(root) == [] and temp_files(root) == []
    results = len(results_requested(server.sim))
    assert results < 80  # it did not go on fetching everything


def test_watermark_moves_only_on_commit(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=20)
    first = sync(server, wh_url, root)
    server.sim.create_check(server.token, NUMBER, "HLR")

    def crash(name: str) -> None:
        if name == "before_commit":
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        sync(server, wh_url, root, on_stage=crash)
    with connect_warehouse(wh_url) as wh:
        wm = wh.get_watermark()
    assert wm is not None and first.watermark_after is not None
    assert wm.check_id == first.watermark_after["check_id"]


# --- the stages overlap: list pages never wait behind result fetches ----------------------------


def test_list_pages_run_before_queued_result_fetches() -> None:
    from numberyo_provider.sync.pipeline import PAGES as _PAGES
    from numberyo_provider.sync.pipeline import RESULTS as _RESULTS
    from numberyo_provider.sync.pipeline import RequestPool as _RequestPool

    pool = _RequestPool(1, "test-pool")
    release = threading.Event()
    order: list[str] = []
    try:
        busy = pool.lane(_RESULTS).submit(release.wait, 5)
        results = [pool.lane(_RESULTS).submit(order.append, f"result-{i}") for i in range(3)]
        page = pool.lane(_PAGES).submit(order.append, "page")
        cancelled = pool.lane(_RESULTS).submit(order.append, "cancelled")
        assert cancelled.cancel()
        release.set()
        for future in (busy, page, *results):
            future.result(5)
        # Submitted last, run first among the waiting; FIFO within a lane; cancelled never run.
        assert order == ["page", "result-0", "result-1", "result-2"]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_shutdown_cancels_what_is_queued() -> None:
    from numberyo_provider.sync.pipeline import RESULTS as _RESULTS
    from numberyo_provider.sync.pipeline import RequestPool as _RequestPool

    pool = _RequestPool(1, "test-pool")
    started, release = threading.Event(), threading.Event()

    def first() -> bool:
        started.set()
        return release.wait(5)

    running = pool.lane(_RESULTS).submit(first)
    # Queue the rest only once the one worker runs the first (else shutdown may cancel it too).
    assert started.wait(10)
    queued = [pool.lane(_RESULTS).submit(lambda: None) for _ in range(3)]
    threading.Timer(0.2, release.set).start()
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result() is True
    assert all(f.cancelled() for f in queued)
    with pytest.raises(RuntimeError):
        pool.lane(_RESULTS).submit(lambda: None)


def test_a_landing_failure_is_the_error_the_run_raises(
    numberyo_simulator_factory: Callable[..., Any],
    wh_url: str,
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Normalising and landing run on their own thread: a failure there stops the listing and is
    raised as itself (not as the cancellation it causes), and nothing is visible."""
    import numberyo_provider.sync.run as sync_module

    server = numberyo_simulator_factory(seed_checks=300, latency_ms=2)
    calls = [0]
    real = sync_module.normalize_checks

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise OSError("disk full while landing")
        return real(*args, **kwargs)

    monkeypatch.setattr(sync_module, "normalize_checks", failing)
    with pytest.raises(OSError, match="disk full"):
        sync(server, wh_url, root, batch_size=10)
    assert warehouse_rows(wh_url)["checks"] == []
    assert loads(wh_url)[-1]["status"] == "failed"
    assert parquet_files(root) == [] and temp_files(root) == []
    listed = [e for e in server.sim.requests() if e.endpoint == "list"]
    assert len(listed) < 20  # of 30 pages: it stopped listing instead of reading to the end


def test_a_duckdb_sync_does_not_import_sqlalchemy(tmp_path: Path) -> None:
    """Its import is a sixth of a cold 2,000-check sync's fixed cost (docs/benchmarks.md)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from numberyo_provider.sync import run_sync\n"
        "from numberyo_provider.warehouse import connect_warehouse\n"
        f"with connect_warehouse('duckdb:///{tmp_path / 'wh.duckdb'}') as wh:\n"
        "    wh.ensure_schema()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
