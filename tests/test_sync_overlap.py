"""A first backfill sets the warehouse up while its first requests are out (issue 13).

The set-up (imports, schema, watermark) used to run before the first request. When the run knows
that everything it lists is new (no DuckDB file yet, or a full refresh), it now overlaps; any
other run asks for pages 1 and 2 alone meanwhile. Their faults must still fail the run as
themselves and leave nothing visible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_sync import (
    assert_matches_truth,
    loads,
    parquet_files,
    results_requested,
    sync,
    temp_files,
    warehouse_rows,
)

from numberyo_provider.errors import NumberYoError
from numberyo_provider.sync import SyncCancelled

EMPTY: dict[str, list[Any]] = {"checks": [], "hlr_results": [], "verify_results": []}


def test_a_first_backfill_fetches_results_before_the_warehouse_is_ready(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    """The set-up is held at its ``started`` stage until result requests were answered: that
    can only end early if requests go out meanwhile (else the hold runs into its 20 s limit)."""
    server = numberyo_simulator_factory(seed_checks=60)
    answered_while_setting_up: list[int] = []

    def hold(name: str) -> None:
        if name == "started":
            give_up = time.monotonic() + 20
            while not results_requested(server.sim) and time.monotonic() < give_up:
                time.sleep(0.01)
            answered_while_setting_up.append(len(results_requested(server.sim)))

    summary = sync(server, wh_url, root, on_stage=hold, batch_size=20)
    assert answered_while_setting_up and answered_while_setting_up[0] > 0
    assert summary.checks_new == 60 and summary.watermark_before is None
    assert_matches_truth(wh_url, server.sim)


@pytest.fixture
def one_new_check(numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path) -> Any:
    """A simulator whose 30 checks are loaded, and one check created since: the next run is an
    incremental one."""
    server = numberyo_simulator_factory(seed_checks=30)
    sync(server, wh_url, root)
    server.sim.create_check(server.token, "32456789023", "HLR")
    return server


def test_an_incremental_run_asks_for_pages_one_and_two_alone_while_it_sets_up(
    one_new_check: Any, wh_url: str, root: Path
) -> None:
    """With a warehouse file present only the warehouse knows where the run stops, so nothing
    but pages 1 and 2 (which every run on an account of more than one page reads: the stop rule
    reads one page past the first old check) may go out before the set-up is done. The set-up is
    held until both were answered: that can only end early if they were asked for meanwhile; and
    neither is asked for again after it."""
    server = one_new_check
    before = len(server.sim.requests())
    during_set_up: list[list[str]] = []

    def hold(name: str) -> None:
        if name == "started":
            give_up = time.monotonic() + 20
            while len(server.sim.requests()) < before + 2 and time.monotonic() < give_up:
                time.sleep(0.01)
            time.sleep(0.2)  # room for any other request to show
            during_set_up.append([e.endpoint for e in server.sim.requests()[before:]])

    summary = sync(server, wh_url, root, on_stage=hold)
    assert during_set_up == [["list", "list"]]
    assert summary.checks_new == 1 and summary.pages == 2
    assert [e.endpoint for e in server.sim.requests()[before:]].count("list") == 2
    assert_matches_truth(wh_url, server.sim)


def test_an_incremental_run_opens_the_duckdb_file_three_times(
    one_new_check: Any, wh_url: str, root: Path, connects: list[str]
) -> None:
    """Once to prepare (schema, watermark, failed loads, whether it holds checks: one session),
    once to ask which listed checks are loaded, once to commit. It opened it once per
    operation before: about 20 ms each."""
    summary = sync(one_new_check, wh_url, root)
    assert summary.checks_new == 1
    assert len(connects) == 3
    assert_matches_truth(wh_url, one_new_check.sim)


def test_an_account_of_one_page_costs_at_most_one_empty_page_and_stays_exact(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    """Page 2 is asked for before the run knows the account's size: on an account of one page
    it comes back empty and unread, the only request more than the run needs (none if the
    lister is done before a worker picks it up: then it is cancelled unsent)."""
    server = numberyo_simulator_factory(seed_checks=4)
    sync(server, wh_url, root)
    server.sim.create_check(server.token, "32456789023", "Verify")
    before = len(server.sim.requests())
    summary = sync(server, wh_url, root)
    assert summary.checks_new == 1 and summary.pages == 1
    after = [e.endpoint for e in server.sim.requests()[before:]]
    assert after.count("list") in (1, 2) and after.count("results") == 1
    assert_matches_truth(wh_url, server.sim)


def test_a_set_up_failure_after_the_first_pages_were_asked_for_fails_as_itself(
    one_new_check: Any, wh_url: str, root: Path
) -> None:
    server = one_new_check

    def crash(name: str) -> None:
        if name == "started":
            raise RuntimeError("injected set-up failure")

    with pytest.raises(RuntimeError, match="injected set-up failure"):
        sync(server, wh_url, root, on_stage=crash)
    assert len(warehouse_rows(wh_url)["checks"]) == 30
    assert loads(wh_url)[-1]["status"] == "failed"
    sync(server, wh_url, root)
    assert_matches_truth(wh_url, server.sim)


def test_a_full_refresh_overlaps_too_and_stays_exact(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=40)
    sync(server, wh_url, root)
    summary = sync(server, wh_url, root, full_refresh=True, batch_size=15)
    assert summary.checks_new == 40 and summary.watermark_before is not None
    assert summary.watermark_after == summary.watermark_before
    assert_matches_truth(wh_url, server.sim)


def test_a_set_up_failure_fails_the_backfill_as_itself_and_leaves_nothing(
    numberyo_simulator_factory: Callable[..., Any], wh_url: str, root: Path
) -> None:
    """The failure happens on the set-up thread while batches are landing or waiting to."""
    server = numberyo_simulator_factory(seed_checks=200, latency_ms=2)

    def crash(name: str) -> None:
        if name == "started":
            time.sleep(0.3)  # let requests and batches pile up behind the set-up
            raise RuntimeError("injected set-up failure")

    with pytest.raises(RuntimeError, match="injected set-up failure"):
        sync(server, wh_url, root, on_stage=crash, batch_size=10)
    assert warehouse_rows(wh_url) == EMPTY
    assert loads(wh_url)[-1]["status"] == "failed"
    assert parquet_files(root) == [] and temp_files(root) == []
    sync(server, wh_url, root)
    assert_matches_truth(wh_url, server.sim)


def test_a_warehouse_that_cannot_be_created_fails_clearly_not_as_a_cancellation(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path, root: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=100, latency_ms=2)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the warehouse's directory should be")
    with pytest.raises(NumberYoError) as info:
        sync(server, f"duckdb:///{blocker / 'wh.duckdb'}", root, batch_size=10)
    assert not isinstance(info.value, SyncCancelled)
    assert "not-a-directory" in str(info.value)
    assert parquet_files(root) == [] and temp_files(root) == []
