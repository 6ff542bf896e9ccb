"""Opening a DuckDB file that another process may hold: wait with backoff, then say who and what.

DuckDB lets one process open a database file for writing, and a read-only connection in another
process also keeps writers out. The warehouse therefore opens the file only for the duration of one
operation and, when the file is taken, retries until ``timeout_s`` has passed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

import duckdb

from numberyo_provider.errors import ConfigurationError
from numberyo_provider.warehouse.base import WarehouseLockedError

_LOCK_MARKERS = ("could not set lock", "conflicting lock")


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and any(m in text for m in _LOCK_MARKERS)


def connect_with_retry(
    path: str,
    *,
    timeout_s: float,
    read_only: bool = False,
    config: Mapping[str, str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect(path)``, retried with jittered backoff while the file is locked."""
    deadline = time.monotonic() + max(timeout_s, 0.0)
    delay = 0.02
    while True:
        try:
            return duckdb.connect(path, read_only=read_only, config=dict(config or {}))
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.ProgrammingError) and not is_lock_error(exc):
                raise ConfigurationError(
                    f"bad DuckDB setting for {path} ({dict(config or {})}): {exc}"
                ) from None
            if not is_lock_error(exc):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WarehouseLockedError(
                    f"DuckDB file {path} is held by another process (DuckDB allows one writer, "
                    f"and a read-only connection elsewhere also blocks writing); gave up after "
                    f"{timeout_s:g} s. Close the other connection (a DuckDB CLI, notebook, BI tool "
                    "or another sync) or raise lock_timeout_s. DuckDB said: "
                    f"{str(exc).splitlines()[0]}"
                ) from exc
            time.sleep(min(delay * (0.5 + random.random()), remaining))
            delay = min(delay * 2, 1.0)
