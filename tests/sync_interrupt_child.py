"""``numberyo sync`` in a child process that pauses at one chosen moment, so a test can send it a
real SIGINT there (``tests/test_sync_interrupt.py``).

    python tests/sync_interrupt_child.py <point> <ready-file> sync --warehouse ... [...]

``point`` is ``listing`` (after the second page is read), ``results`` (while results are
awaited), ``landing`` (a Parquet temp file written, not yet renamed into place) or ``commit``
(inside the load's DuckDB transaction, during a long query, like a big merge). The child writes
``ready-file`` when it is there, then waits to be interrupted.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any


def pause(ready: Path, cancel: threading.Event | None = None) -> None:
    """Wait for the SIGINT; a pause on another thread than the main one also ends when the run is
    cancelled, as the sync's own waits do (they look at ``cancel`` every 0.2 s)."""
    ready.write_text("ready")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # time.sleep is interrupted by SIGINT (main thread only)
        if cancel is not None and cancel.is_set():
            return
        time.sleep(0.05)
    raise SystemExit("sync_interrupt_child: never interrupted")


def install(point: str, ready: Path) -> None:
    from numberyo_provider.sync import extract, land
    from numberyo_provider.warehouse import duckdb as duckdb_warehouse

    if point == "listing":
        account = extract.CheckLister._account

        def paused_account(self: Any, page: Any) -> None:
            account(self, page)
            if self.stats.pages == 2:
                pause(ready)

        extract.CheckLister._account = paused_account  # type: ignore[method-assign]
    elif point == "results":
        wait = extract.PendingResults.wait

        def paused_wait(self: Any) -> Any:  # on the landing thread
            pause(ready, self._cancel)
            return wait(self)

        extract.PendingResults.wait = paused_wait  # type: ignore[method-assign]
    elif point == "landing":
        write = land._write_rows

        def paused_write(writer: Any, data: Any) -> None:
            write(writer, data)
            pause(ready)

        land._write_rows = paused_write
    elif point == "commit":
        merge = duckdb_warehouse.DuckDBWarehouse._merge_files

        def slow_merge(self: Any, conn: Any, table: Any, *args: Any) -> int:
            rows = merge(self, conn, table, *args)
            if table.name == "checks":
                ready.write_text("ready")
                # Short queries back to back: the SIGINT lands inside one (DuckDB interrupts
                # it) or between two (Python raises KeyboardInterrupt); both are the commit.
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    conn.execute("SELECT count(*) FROM range(50000000)").fetchall()
                raise SystemExit("sync_interrupt_child: never interrupted")
            return rows

        duckdb_warehouse.DuckDBWarehouse._merge_files = slow_merge  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown point {point!r}")


if __name__ == "__main__":
    # Ctrl-C reaches a command in the foreground, where SIGINT has its default handler. A test
    # runner started as a background job of a non-interactive shell (``nohup make test &``)
    # passes SIGINT down ignored, and Python keeps an inherited SIG_IGN: the sync would then
    # never see the signal this test sends.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    install(sys.argv[1], Path(sys.argv[2]))
    from numberyo_provider.cli import main

    sys.exit(main(sys.argv[3:]))
