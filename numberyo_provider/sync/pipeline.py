"""How the sync's stages overlap: one pool of request workers, a landing thread beside them.

List pages and result fetches share one pool of ``concurrency`` threads, so the requests in flight
never exceed what the user allowed, but a list page goes before any queued result fetch (the next
page is what keeps the pipeline fed). Normalising and landing a batch happens on its own thread
while the next batches are listed and fetched.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextlib import suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numberyo_provider.api.models import Check
    from numberyo_provider.sync.extract import PendingResults
    from numberyo_provider.sync.run import _Run

log = logging.getLogger("numberyo_provider.sync")

#: Priorities of the shared request workers: a list page before any result fetch.
PAGES, RESULTS = 0, 1
_STOP_WORKER = 99
#: Seconds the landing thread gets to stop after a failure before the run goes on failing.
LANDING_JOIN_S = 30.0


class RequestPool:
    """``workers`` threads running queued calls lowest priority first, FIFO within a priority.

    One pool bounds the requests in flight to ``concurrency``; :meth:`lane` gives the lister and
    the result fetcher each an :class:`Executor` of its own priority, so a list page never waits
    behind a batch of result fetches (at most for a worker to finish its current request).
    """

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def lane(self, priority: int) -> Executor:
        return Lane(self, priority)

    def submit(
        self, priority: int, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Any]:
        if self._closed:
            raise RuntimeError("the request pool is shut down")
        future: Future[Any] = Future()
        self._queue.put((priority, next(self._order), (future, fn, args, kwargs)))
        return future

    def _work(self) -> None:
        while True:
            priority, _, task = self._queue.get()
            if priority == _STOP_WORKER:
                return
            future, fn, args, kwargs = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, *, wait: bool, cancel_futures: bool) -> None:
        self._closed = True
        if cancel_futures:
            kept = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item[0] == _STOP_WORKER:
                    kept.append(item)
                else:
                    item[2][0].cancel()
            for item in kept:
                self._queue.put(item)
        for _ in self._threads:
            self._queue.put((_STOP_WORKER, next(self._order), None))
        if wait:
            for thread in self._threads:
                thread.join()


class Lane(Executor):
    """One priority of a :class:`RequestPool`, as the Executor the lister or fetcher expects."""

    def __init__(self, pool: RequestPool, priority: int) -> None:
        self._pool = pool
        self._priority = priority

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self._pool.submit(self._priority, fn, args, kwargs)


class LandingThread:
    """Waits for each dispatched batch's results, then normalises and lands it, off the main
    thread, which meanwhile lists and dispatches the next batches. ``put`` blocks while one
    batch waits (bounding memory); the first exception stops the run and is re-raised by the
    main thread (``check``/``finish``), not a cancellation it caused."""

    _DONE = None

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._queue: queue.Queue[tuple[list[Check], int, PendingResults] | None] = queue.Queue(1)
        self.error: BaseException | None = None
        #: Set by the thread as it ends. Waited on instead of ``Thread.join``: on Python 3.11 a
        #: Ctrl-C that interrupts a join marks the thread stopped while it still runs, so a
        #: later join returned at once and the clean-up raced the landing.
        self._stopped = threading.Event()
        threading.Thread(
            target=self._loop, name=f"numberyo-{run.load_id}-landing", daemon=True
        ).start()

    def _loop(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is self._DONE:
                    return
                self._run._land(*item)
        except BaseException as exc:
            self.error = exc
            self._run.cancel.set()  # the main thread stops listing, then raises ``error``
        finally:
            self._stopped.set()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, item: tuple[list[Check], int, PendingResults]) -> None:
        while True:
            self.check()
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Land what was put, then return (or raise the landing error)."""
        while True:
            self.check()
            try:
                self._queue.put(self._DONE, timeout=0.2)
                break
            except queue.Full:
                continue
        while not self._stopped.wait(0.2):
            pass
        self.check()

    def abandon(self) -> None:
        """After a failure: stop, and wait for the thread so nothing lands behind the clean-up."""
        self._run.cancel.set()
        while True:  # unblock it if it waits for a batch
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with suppress(queue.Full):
            self._queue.put_nowait(self._DONE)
        if not self._stopped.wait(LANDING_JOIN_S):
            log.warning("sync %s: the landing thread did not stop in time", self._run.load_id)
