"""The sync into a real PostgreSQL database: backfill, incremental, crash and rerun."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_sync import (  # type: ignore[import-not-found]
    NUMBER,
    assert_matches_truth,
    loads,
    parquet_files,
    results_requested,
    sync,
    warehouse_rows,
)

pytestmark = pytest.mark.postgres


def test_backfill_then_incremental(
    numberyo_simulator_factory: Callable[..., Any], postgres_url: str, tmp_path: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=64)
    sim = server.sim
    sim.seed_checks(1, types=("CNAM",))  # a 400 on results: recorded, not fatal
    root = tmp_path / "landing"
    # Trust authentication ignores the password: it is there to prove it is never shown.
    with_password = postgres_url.replace("postgres@", "postgres:pw-s3cret@")
    first = sync(server, with_password, root, batch_size=20)
    assert first.checks_new == 65 and first.errors == 1
    assert_matches_truth(postgres_url, sim)
    assert "pw-s3cret" not in json.dumps(first.as_dict()) + first.render()

    asked_before = len(results_requested(sim))
    new = [sim.create_check(server.token, NUMBER, t)["check"]["id"] for t in ("Verify", "HLR")]
    second = sync(server, postgres_url, root)
    # The new checks, and the unsupported one: it is in the overlap at the watermark and has no
    # results loaded (no other_results row), so its results are asked again (a free GET, 400).
    cnam = [c["check"]["id"] for c in sim.truth() if c["check"]["type"] == "CNAM"]
    assert second.checks_new == 3 and second.errors == 1
    assert sorted(results_requested(sim)[asked_before:]) == sorted(new + cnam)
    assert_matches_truth(postgres_url, sim)
    assert [h["status"] for h in loads(postgres_url)] == ["committed", "committed"]


@pytest.mark.parametrize("stage", ["landed", "before_commit"])
def test_crash_then_rerun(
    numberyo_simulator_factory: Callable[..., Any], postgres_url: str, tmp_path: Path, stage: str
) -> None:
    server = numberyo_simulator_factory(seed_checks=30)
    sim = server.sim
    root = tmp_path / "landing"
    sync(server, postgres_url, root)
    for t in ("HLR", "Verify") * 4:
        sim.create_check(server.token, NUMBER, t)
    before = warehouse_rows(postgres_url)

    def crash(name: str) -> None:
        if name == stage:
            raise RuntimeError("injected crash")

    with pytest.raises(RuntimeError):
        sync(server, postgres_url, root, on_stage=crash)
    assert warehouse_rows(postgres_url) == before
    assert loads(postgres_url)[-1]["status"] == "failed"
    sync(server, postgres_url, root)
    assert_matches_truth(postgres_url, sim)


def test_crash_inside_the_load_rolls_back(
    numberyo_simulator_factory: Callable[..., Any], postgres_url: str, tmp_path: Path
) -> None:
    server = numberyo_simulator_factory(seed_checks=30)
    sim = server.sim
    root = tmp_path / "landing"

    def corrupt(name: str) -> None:
        if name == "before_commit":
            files = parquet_files(root)
            Path(max(files, key=lambda p: ("verify_results" in p, p))).write_bytes(b"garbage")

    with pytest.raises(Exception) as info:
        sync(server, postgres_url, root, on_stage=corrupt)
    assert not isinstance(info.value, AssertionError)
    assert warehouse_rows(postgres_url)["checks"] == []
    assert parquet_files(root) == []
    sync(server, postgres_url, root)
    assert_matches_truth(postgres_url, sim)
    assert os.path.isdir(root)
