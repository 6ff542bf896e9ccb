"""Shard assignment: stable everywhere, balanced, and a partition of the input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from numberyo_provider.checks.numbers import E164Number, to_e164
from numberyo_provider.checks.sharding import check_shard, in_shard, shard_of
from numberyo_provider.errors import ConfigurationError


@pytest.mark.parametrize(
    ("digits", "shards", "expected"),
    [
        # Pinned: a change here would move numbers between shards of a run in progress.
        ("32456789023", 4, 3),
        ("32456789023", 7, 6),
        ("32456789023", 1000, 27),
        ("33612345678", 4, 1),
        ("12015550123", 1000, 797),
        ("447400123456", 4, 0),
    ],
)
def test_shard_is_pinned(digits: str, shards: int, expected: int) -> None:
    assert shard_of(digits, shards) == expected


def test_shard_is_the_same_in_another_process_with_another_hash_seed() -> None:
    numbers = [str(32_400_000_000 + i * 7919) for i in range(200)]
    script = (
        "import json, sys\n"
        "from numberyo_provider.checks.sharding import shard_of\n"
        "print(json.dumps([shard_of(d, 5) for d in json.loads(sys.argv[1])]))\n"
    )
    results = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script, json.dumps(numbers)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        results.append(json.loads(out.stdout))
    assert results[0] == results[1] == [shard_of(d, 5) for d in numbers]


def test_shards_are_balanced_and_partition_the_input() -> None:
    numbers = [str(32_470_000_000 + i) for i in range(10_000)]
    shards = 4
    parts: dict[int, set[str]] = {s: set() for s in range(shards)}
    for digits in numbers:
        parts[shard_of(digits, shards)].add(digits)
    sizes = Counter({s: len(p) for s, p in parts.items()})
    assert all(abs(size - 2_500) <= 250 for size in sizes.values()), sizes
    assert set().union(*parts.values()) == set(numbers)
    assert sum(sizes.values()) == len(numbers)  # disjoint: no number in two shards
    for s in range(shards):
        assert {d for d in numbers if in_shard(d, s, shards)} == parts[s]


def test_formats_of_one_number_land_in_one_shard() -> None:
    raws = ["+32 456 78 90 23", "0456 78 90 23", "0032456789023", 32456789023]
    results = [to_e164(raw, "BE") for raw in raws]
    shards = {shard_of(r.digits, 8) for r in results if isinstance(r, E164Number)}
    assert len(shards) == 1


def test_one_shard_takes_everything() -> None:
    assert {shard_of(str(n), 1) for n in range(32_400_000_000, 32_400_000_100)} == {0}


@pytest.mark.parametrize("shards", [0, -1, 2.0, True, "4"])
def test_bad_shard_count_is_a_configuration_error(shards: object) -> None:
    with pytest.raises(ConfigurationError, match="shards must be a positive integer"):
        shard_of("32456789023", shards)  # type: ignore[arg-type]


@pytest.mark.parametrize(("index", "shards"), [(4, 4), (-1, 4), (1.0, 4), (None, 4)])
def test_bad_shard_index_is_a_configuration_error(index: object, shards: int) -> None:
    with pytest.raises(ConfigurationError, match="shard_index"):
        check_shard(index, shards)  # type: ignore[arg-type]
    check_shard(3, 4)
