"""Temp files of the landing: held while they are written, swept once their writer is gone.

A local landed file is written as a hidden ``.<name>.tmp`` beside its final name
(:mod:`~numberyo_provider.sync.land`). Its writer holds an exclusive ``flock`` on it from creation
to publication; the kernel drops the lock when the process dies (kill -9, OOM), so an unlocked temp
file is abandoned for sure, with no guess from its age. Every sync sweeps the recent ones before
it lands. Without ``fcntl`` (Windows) nothing is held or swept.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from datetime import UTC, datetime, timedelta

try:
    import fcntl
except ImportError:  # Windows: no flock, so no sweep (temp files are then deleted by hand)
    fcntl = None  # type: ignore[assignment]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

#: A temp file younger than this is never swept, even unlocked: its writer may be between
#: creating it and taking the lock (microseconds; the margin covers a stalled machine).
SWEEP_MIN_AGE_S = 60.0
#: How many of the latest ``landed_date=`` days :func:`sweep_abandoned_temp_files` looks in. A
#: run lands under the day it started, so the next run on any of these days finds the files of a
#: crash; the directories are named, not listed, so the cost does not grow with the history.
SWEEP_DAYS = 7
_TEMP_NAME = re.compile(r"\.[A-Za-z0-9][A-Za-z0-9_.-]*\.parquet\.tmp")


def sweep_abandoned_temp_files(
    root: str, *, days: int = SWEEP_DAYS, now: datetime | None = None
) -> list[str]:
    """Delete the hidden temp files that killed runs left in the last ``days`` landing days of a
    local ``root``; return their paths. A temp file whose ``flock`` another process holds is
    being written and stays, as does any younger than :data:`SWEEP_MIN_AGE_S`. Object stores
    have no temp files in the table directories (see the module doc): nothing to do there."""
    if "://" in root and not root.startswith("file://"):
        return []
    base = root.removeprefix("file://")
    if fcntl is None or not os.path.isdir(base):
        return []
    today = (now or datetime.now(UTC)).date()
    day_dirs = [f"landed_date={(today - timedelta(days=n)).isoformat()}" for n in range(days)]
    now_s = time.time()
    removed: list[str] = []
    for table in _subdirs(base):
        for kind in _subdirs(table):
            if not os.path.basename(kind).startswith("type="):
                continue
            for day in day_dirs:
                directory = os.path.join(kind, day)
                try:
                    names = os.listdir(directory)
                except OSError:  # no such day: the usual case
                    continue
                for name in names:
                    path = os.path.join(directory, name)
                    if _TEMP_NAME.fullmatch(name) and _remove_if_abandoned(path, now_s):
                        removed.append(path)
    return removed


def _subdirs(path: str) -> list[str]:
    try:
        return [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _remove_if_abandoned(path: str, now_s: float) -> bool:
    assert fcntl is not None
    try:
        fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    except OSError:
        return False  # gone meanwhile (its run finished it) or unreadable: not ours to judge
    try:
        if now_s - os.fstat(fd).st_mtime < SWEEP_MIN_AGE_S:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live run holds it
        os.unlink(path)  # under our lock: its writer cannot be back
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def hold(path: str) -> int | None:
    """Mark ``path`` as being written by this process (released by :func:`release`, or by dying)."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def release(fd: int | None) -> None:
    """Let go of a file :func:`hold` marked (after it was published or deleted)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


__all__ = ["SWEEP_DAYS", "SWEEP_MIN_AGE_S", "hold", "release", "sweep_abandoned_temp_files"]
