"""Opening a DuckDB file that another process may hold: wait with backoff, then say who and what.

DuckDB lets one process open a database file for writing, and a read-only connection in another
process also keeps writers out. The warehouse therefore opens the file only for the duration of one
operation and, when the file is taken, retries until ``lock_timeout`` has passed.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from pathlib import Path

import duckdb

from numberyo_provider.errors import ConfigurationError, WarehouseLockedError
from numberyo_provider.private_files import create_private_with
from numberyo_provider.warehouse.ddl import quote_ident, quote_literal

#: Another process holds the file; or another DuckDB instance of this process has it attached.
_LOCK_MARKERS = ("could not set lock", "conflicting lock", "unique file handle conflict")


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and any(m in text for m in _LOCK_MARKERS)


def connect_with_retry(
    path: str,
    *,
    lock_timeout: float,
    read_only: bool = False,
    config: Mapping[str, str] | None = None,
    row_group_size: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection whose default catalog is the file at ``path``, retried with jittered backoff
    while the file is locked.

    The file is ATTACHed to an in-memory instance (named after the file, as ``duckdb.connect(path)``
    would) because only ATTACH takes storage options such as ``ROW_GROUP_SIZE``.
    """
    deadline = time.monotonic() + max(lock_timeout, 0.0)
    delay = 0.02
    options = ["READ_ONLY"] if read_only else []
    if row_group_size is not None:
        options.append(f"ROW_GROUP_SIZE {int(row_group_size)}")
    attach = f"ATTACH {quote_literal(path)} AS {quote_ident(Path(path).stem)}" + (
        f" ({', '.join(options)})" if options else ""
    )
    if not read_only and not os.path.exists(path):  # holds numbers in clear: born 0600
        create_private_with(path, lambda new: _create(new, options))
    while True:
        try:
            con = duckdb.connect(":memory:", config=dict(config or {}))
        except duckdb.Error as exc:
            raise ConfigurationError(
                f"bad DuckDB setting for {path} ({dict(config or {})}): {exc}"
            ) from None
        try:
            con.execute(attach)
            con.execute(f"USE {quote_ident(Path(path).stem)}")
            return con
        except duckdb.Error as exc:
            con.close()
            if not is_lock_error(exc):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WarehouseLockedError(
                    f"DuckDB file {path} is held by another process or connection (DuckDB allows "
                    "one writer, and a read-only connection elsewhere also blocks writing); gave "
                    f"up after {lock_timeout:g} s. Close the other connection (a DuckDB CLI, "
                    "notebook, BI tool or another sync) or raise the lock timeout (lock_timeout, "
                    "--lock-timeout). DuckDB said: "
                    f"{str(exc).splitlines()[0]}"
                ) from exc
            time.sleep(min(delay * (0.5 + random.random()), remaining))
            delay = min(delay * 2, 1.0)


def _create(path: str, options: list[str]) -> None:
    """A new, empty DuckDB file at ``path`` (attached as the real one will be, then closed)."""
    with duckdb.connect(":memory:") as con:
        suffix = f" ({', '.join(options)})" if options else ""
        con.execute(f"ATTACH {quote_literal(path)} AS {quote_ident(Path(path).stem)}{suffix}")
