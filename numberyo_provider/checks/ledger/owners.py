"""Who holds a claim: owner ids, and whether an owner provably died.

An owner is one :class:`~numberyo_provider.checks.engine.Checker` (one run of one process):
``host:pid:process start:random``. Another process may take an owner's claims over once the lease
expired, or at once when the owner is a dead process of this host (:func:`owner_is_dead`); an
owner on another host is never presumed dead, only its lease can tell.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid

__all__ = ["new_owner", "owner_is_dead", "retire_owner"]


def _process_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (``/proc``): a reused pid is not the owner."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return "-"
    return stat.rsplit(")", 1)[-1].split()[19]


#: Owners of this process that still run: a finished checker of this process is known dead.
_LIVE_OWNERS: set[str] = set()
_LIVE_LOCK = threading.Lock()


def new_owner() -> str:
    """A claim owner id, ``host:pid:process start:random``, alive until :func:`retire_owner`."""
    host = socket.gethostname().replace(":", "_")[:80]
    pid = os.getpid()
    owner = f"{host}:{pid}:{_process_start(pid)}:{uuid.uuid4().hex[:12]}"
    with _LIVE_LOCK:
        _LIVE_OWNERS.add(owner)
    return owner


def retire_owner(owner: str) -> None:
    """The checker that owned ``owner`` has ended: its leftover claims are free to take over."""
    with _LIVE_LOCK:
        _LIVE_OWNERS.discard(owner)


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` provably died: a process of this host that no longer runs (or
    whose pid now belongs to another process). An owner on another host is never presumed dead:
    only its lease can tell."""
    parts = owner.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname().replace(":", "_")[:80]:
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        if parts[2] != _process_start(pid):  # pragma: no cover - a pid reused by this process
            return True
        with _LIVE_LOCK:
            return owner not in _LIVE_OWNERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return parts[2] != "-" and _process_start(pid) != parts[2]
