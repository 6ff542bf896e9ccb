"""Paging under drift and result fetching, against the simulator over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.api.models import parse_timestamp
from numberyo_provider.errors import AuthenticationError, ServerError
from numberyo_provider.sync.extract import (
    CheckLister,
    ListingUnstableError,
    ResultFetcher,
)
from numberyo_provider.warehouse.base import Watermark

NUMBER = "32456789023"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=16) as ex:
        yield ex


def _client(server: Any, **kwargs: Any) -> NumberYoClient:
    kwargs.setdefault("sleep", lambda s: None)
    kwargs.setdefault("pool_size", 16)
    return NumberYoClient(server.token, server.url, **kwargs)


def _ids(server: Any) -> list[int]:
    """The account's check ids, newest first (the simulator's truth)."""
    return [item["check"]["id"] for item in server.sim.truth()]


def _collect(lister: CheckLister) -> dict[int, int]:
    """check id -> the pass that first yielded it; fails on a check yielded twice."""
    found: dict[int, int] = {}
    for checks in lister:
        for check in checks:
            assert check.id not in found, f"check {check.id} yielded twice"
            found[check.id] = lister.stats.passes
    return found


def _list_requests(server: Any) -> int:
    return sum(1 for e in server.sim.requests() if e.endpoint == "list")


def test_backfill_concurrent_sees_every_check_once(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=137)
    with _client(server) as client:
        lister = CheckLister(client, executor, max_in_flight=8)
        found = _collect(lister)
    assert sorted(found) == sorted(_ids(server))
    assert lister.stats.passes == 1
    assert lister.stats.pages == 14
    assert not lister.stats.drift_detected
    assert lister.newest is not None and lister.newest.id == _ids(server)[0]


def test_empty_account(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory()
    with _client(server) as client:
        lister = CheckLister(client, executor)
        assert _collect(lister) == {}
    assert lister.newest is None
    assert lister.stats.pages == 1


def test_watermark_stops_one_page_after_the_first_older_check(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=200)
    truth = server.sim.truth()
    ids = [t["check"]["id"] for t in truth]
    # The watermark is the check at position 35 (page 4). Seeded checks have distinct seconds
    # mostly; the first check strictly older than its second is at 36 or a little further.
    mark = truth[35]["check"]
    wm = Watermark(mark["id"], parse_timestamp(mark["created_at"]))
    first_older = next(
        i for i, t in enumerate(truth) if parse_timestamp(t["check"]["created_at"]) < wm.created_at
    )
    stop_page = first_older // 10 + 1 + 1  # the page holding it, plus one page of overlap
    with _client(server) as client:
        lister = CheckLister(client, executor, watermark=wm, max_in_flight=16)
        found = _collect(lister)
    assert lister.stats.pages == stop_page
    assert set(found) == set(ids[: stop_page * 10])
    # Incremental reads widen 1, 2, 4, ...: a few pages may be requested past the stop at most.
    assert _list_requests(server) <= stop_page + 8


def test_same_second_as_watermark_is_reread(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=30)
    # A watermark in the middle of a second: checks of that second (even with smaller ids) come
    # again, so a check committed in the same second but listed later is never lost.
    truth = server.sim.truth()
    mark = truth[0]["check"]
    wm = Watermark(mark["id"] + 10, parse_timestamp(mark["created_at"]).replace(microsecond=500))
    with _client(server) as client:
        lister = CheckLister(client, executor, watermark=wm, overlap_pages=0)
        found = _collect(lister)
    assert mark["id"] in found


def test_concurrent_skip_is_found_by_the_verification_pass(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    """Page 5 is answered after 3 checks were prepended while pages 6-10 were answered before:
    the 3 last checks of the original page 5 are on no page of that pass."""
    server = numberyo_simulator_factory(seed_checks=100)
    sim = server.sim
    original = _ids(server)
    done = threading.Event()

    def hook(endpoint: str, info: Any) -> None:
        if endpoint != "list" or done.is_set() or info.get("page") != 5:
            return
        deadline = time.monotonic() + 10
        while _list_requests(server) < 9 and time.monotonic() < deadline:
            time.sleep(0.01)  # wait until every other page of the pass was answered
        for _ in range(3):
            sim.create_check(server.token, NUMBER, "HLR")
        done.set()

    sim.before_request = hook
    with _client(server) as client:
        lister = CheckLister(client, executor, max_in_flight=16)
        found = _collect(lister)
    skipped = original[47:50]
    assert all(found[i] >= 2 for i in skipped), "the skipped checks come from verification"
    assert set(found) == set(_ids(server))  # the 100 seeded + 3 created meanwhile
    assert lister.stats.drift_detected
    assert lister.stats.found_by_verification >= 6


def test_without_verification_an_unclean_pass_is_an_error(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=100)
    sim = server.sim
    done = threading.Event()

    def hook(endpoint: str, info: Any) -> None:
        if endpoint == "list" and not done.is_set() and info.get("page") == 5:
            deadline = time.monotonic() + 10
            while _list_requests(server) < 9 and time.monotonic() < deadline:
                time.sleep(0.01)
            sim.create_check(server.token, NUMBER, "HLR")
            done.set()

    sim.before_request = hook
    with _client(server) as client:
        lister = CheckLister(client, executor, max_in_flight=16, max_verification_passes=0)
        with pytest.raises(ListingUnstableError, match="run the sync again"):
            _collect(lister)


def test_sequential_pass_with_prepends_is_clean(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=60)
    sim = server.sim
    original = set(_ids(server))

    def hook(endpoint: str, info: Any) -> None:
        if endpoint == "list" and info.get("page") in (2, 4):
            sim.create_check(server.token, NUMBER, "Verify")

    sim.before_request = hook
    with _client(server) as client:
        lister = CheckLister(client, executor, concurrent=False)
        found = _collect(lister)
    assert original <= set(found)
    assert lister.stats.drift_detected  # totals changed ...
    assert lister.stats.passes == 1  # ... but prepends cannot hide anything from a sequential pass


def test_shrinking_total_triggers_a_rescan(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=50)
    sim = server.sim
    original = _ids(server)
    done = threading.Event()

    def hook(endpoint: str, info: Any) -> None:
        if endpoint == "list" and info.get("page") == 3 and not done.is_set():
            sim.delete_check(original[0])  # pulls every older check one position up
            done.set()

    sim.before_request = hook
    with _client(server) as client:
        lister = CheckLister(client, executor, concurrent=False)
        found = _collect(lister)
    # original[20] moved from page 3 to page 2 (already read): only the rescan can see it.
    assert found[original[20]] == 2
    assert set(original[1:]) <= set(found)
    assert lister.stats.passes == 2


def test_a_list_that_keeps_shrinking_fails_cleanly(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=80)
    sim = server.sim
    victims = iter(_ids(server))

    def hook(endpoint: str, info: Any) -> None:
        if endpoint == "list" and info.get("page") == 2:
            sim.delete_check(next(victims))

    sim.before_request = hook
    with _client(server) as client:
        lister = CheckLister(client, executor, concurrent=False, max_verification_passes=2)
        with pytest.raises(ListingUnstableError, match="3 listing passes"):
            _collect(lister)


def test_result_errors_404_and_400_are_recorded_not_fatal(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory()
    sim = server.sim
    ids = sim.seed_checks(6, types=("HLR", "Verify"))
    odd = sim.seed_checks(1, types=("CNAM",))
    sim.break_results(ids[0], 404)
    with _client(server) as client:
        lister = CheckLister(client, executor)
        checks = [c for page in lister for c in page]
        results, errors = ResultFetcher(client, executor).submit(checks).wait()
    assert set(results) == set(ids[1:])
    by_id = {e.check_id: e for e in errors}
    assert by_id[ids[0]].status == 404
    assert "Check not found" in by_id[ids[0]].message
    assert by_id[odd[0]].status == 400
    assert by_id[odd[0]].as_dict() == {
        "check_id": odd[0],
        "status": 400,
        "message": "Unsupported check type.",
    }


def test_result_errors_other_than_404_400_fail(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=5)
    with _client(server, max_retries=1) as client:
        checks = [c for page in CheckLister(client, executor) for c in page]
        server.sim.fail_next(10, 500, endpoint="results")
        with pytest.raises(ServerError):
            ResultFetcher(client, executor).submit(checks).wait()
    with NumberYoClient("wrong-token", server.url) as bad, pytest.raises(AuthenticationError):
        ResultFetcher(bad, executor).submit(checks).wait()


def test_check_times_are_utc(
    numberyo_simulator_factory: Callable[..., Any], executor: ThreadPoolExecutor
) -> None:
    server = numberyo_simulator_factory(seed_checks=3)
    with _client(server) as client:
        checks = [c for page in CheckLister(client, executor) for c in page]
    assert all(c.created_at.tzinfo is not None for c in checks)
    assert all(c.created_at <= datetime.now(UTC) for c in checks)
