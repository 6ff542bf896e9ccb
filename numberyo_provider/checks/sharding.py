"""Stable assignment of numbers to shards, so parallel tasks split the paid checks without overlap.

A number's shard is a hash of its *normalised* E.164 digits, computed in Python after
normalisation: ``+32 456 78 90 23`` and ``0456789023`` (region BE) are one number and must land in
one shard, or two shard tasks would each pay for it. A SQL predicate on the raw column cannot know
that, so each shard task reads the whole source stream and keeps only its own numbers. Reading is
cheap next to paid checks (a 100,000-row table streams in well under a second), and it keeps the
split correct whatever the source's formats or dialect.

The hash is BLAKE2b (8 bytes, big-endian) modulo the shard count: the same on every process,
machine and Python version, unlike the built-in ``hash()``, which is salted per process. Changing
the shard count reshuffles numbers between shards, so a run must keep one count from start to end
(the request ledger still prevents a second charge if it does not).
"""

from __future__ import annotations

import hashlib

from numberyo_provider.errors import ConfigurationError

__all__ = ["check_shard", "in_shard", "shard_of"]


def _check_count(shards: int) -> None:
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ConfigurationError(f"shards must be a positive integer, not {shards!r}")


def check_shard(shard_index: int, shards: int) -> None:
    """Validate a task's shard settings before it reads anything."""
    _check_count(shards)
    if isinstance(shard_index, bool) or not isinstance(shard_index, int):
        raise ConfigurationError(f"shard_index must be an integer, not {shard_index!r}")
    if not 0 <= shard_index < shards:
        raise ConfigurationError(
            f"shard_index must be between 0 and {shards - 1} for {shards} shards, not {shard_index}"
        )


def shard_of(digits: str, shards: int) -> int:
    """The shard (0 to ``shards - 1``) of a number's E.164 digits."""
    _check_count(shards)
    digest = hashlib.blake2b(digits.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def in_shard(digits: str, shard_index: int, shards: int) -> bool:
    """Whether a number belongs to ``shard_index``; call :func:`check_shard` once beforehand."""
    return shard_of(digits, shards) == shard_index
