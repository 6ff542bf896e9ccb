"""The listing's compact id set behaves as a ``set[int]`` would, in a fraction of its memory."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from numberyo_provider.sync import id_set
from numberyo_provider.sync.id_set import IdSet


@pytest.mark.parametrize(
    "order", ["newest first", "oldest first", "shuffled", "bursts with repeats"]
)
def test_it_answers_as_a_set_does(order: str) -> None:
    rng = random.Random(order)
    ids = list(range(1, 30_000, 3))
    if order == "newest first":  # as the API lists them
        ids.reverse()
    elif order == "shuffled":
        rng.shuffle(ids)
    elif order == "bursts with repeats":  # pages shifted by new checks repeat the page before
        ids = [i for start in range(0, len(ids), 10) for i in ids[max(0, start - 3) : start + 10]]
    reference: set[int] = set()
    compact = IdSet()
    for i in ids:
        assert (i in compact) == (i in reference)
        compact.add(i)
        reference.add(i)
        assert len(compact) == len(reference)
    probes = [*range(-5, 30_005), 2**63 - 1, -(2**63)]
    assert [p for p in probes if p in compact] == sorted(reference)


def test_blocks_split_and_stay_sorted() -> None:
    compact = IdSet()
    for i in range(5 * id_set._BLOCK * 2, 0, -1):
        compact.add(i)
    assert len(compact._blocks) > 4
    assert all(len(b) <= 2 * id_set._BLOCK for b in compact._blocks)
    flat = [i for block in compact._blocks for i in block]
    assert flat == sorted(flat) == list(range(1, 5 * id_set._BLOCK * 2 + 1))
    assert compact._maxes == [block[-1] for block in compact._blocks]


def test_ids_beyond_64_bits_and_other_values() -> None:
    compact = IdSet()
    for big in (2**63, 2**70, -(2**63) - 1):
        assert big not in compact
        compact.add(big)
        compact.add(big)
        assert big in compact
    compact.add(7)
    assert len(compact) == 4
    assert "7" not in compact and None not in compact and 7 in compact
    assert 2**63 - 1 not in compact


def test_it_takes_a_fraction_of_a_python_set() -> None:
    ids = [10_000_000 + 7 * i for i in range(100_000, 0, -1)]  # fresh int objects, newest first

    def traced(build: object) -> int:
        tracemalloc.start()
        try:
            held = build()  # type: ignore[operator]
            size, _ = tracemalloc.get_traced_memory()
            del held
        finally:
            tracemalloc.stop()
        return size

    def python_set() -> set[int]:
        return {i + 1 for i in ids}

    def compact_set() -> IdSet:
        s = IdSet()
        for i in ids:
            s.add(i + 1)
        return s

    plain, compact = traced(python_set), traced(compact_set)
    assert compact < 12 * len(ids), compact  # bytes an id
    assert plain > 4 * compact, (plain, compact)
