"""A total time limit per HTTP request: connect, headers and the whole body.

urllib3's ``timeout`` bounds each socket operation, not the answer: a server dripping a byte every
few seconds never trips it, while headers or a body can take forever. A :class:`Deadline` is armed
for one attempt; if it passes before the client is done, one watchdog thread shuts the attempt's
socket down, the blocked read returns at once, and the client reports a timeout. Arming costs a
heap push; the thread serves every client of the process (and is restarted in a forked child).

The socket is handed over by the connection classes of :data:`POOL_CLASSES`, from the thread
that is sending (a thread-local), so the watchdog never touches a pooled connection that another
request owns: the client finishes the deadline before the connection goes back to the pool.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse, HTTPResponse

__all__ = ["POOL_CLASSES", "Deadline", "armed", "attach_response"]


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for a TLS socket: it acts on the file descriptor and
    # wakes a read blocked in another thread without touching the TLS object that thread uses.
    with contextlib.suppress(OSError):  # already closed or never connected
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Deadline:
    """One attempt's time limit; :meth:`finish` it before its connection is reused."""

    __slots__ = ("_done", "_lock", "_sock", "at", "fired")

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.fired = False
        self._done = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self._done

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def attach(self, sock: socket.socket | None) -> None:
        """The socket to shut down when the deadline passes (shut at once if it already has)."""
        if sock is None:
            return
        with self._lock:
            if self._done:
                return
            self._sock = sock
            if self.fired:
                _shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            if self._done or self.fired:
                return
            self.fired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def finish(self) -> bool:
        """Stop watching; whether the deadline fired (then the connection must not be reused)."""
        with self._lock:
            self._done = True
            self._sock = None
            return self.fired


#: How late the watchdog may fire, so that one wake-up serves many deadlines.
_SLACK = 0.05
#: The heap is purged of finished deadlines when it reaches this size (then twice the live ones).
_COMPACT_AT = 1024


class _Watchdog:
    """A heap of deadlines and one daemon thread that fires each one that passes unfinished."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._compact_at = _COMPACT_AT

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, deadline: Deadline) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="numberyo-deadline-watchdog", daemon=True
                )
                self._thread.start()
            if len(self._heap) >= self._compact_at:
                # Almost every entry finished long before its time: drop those, so memory is
                # bounded by the requests in flight, not by request rate x timeout.
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._compact_at = max(_COMPACT_AT, 2 * len(self._heap))
            earliest = not self._heap or deadline.at < self._heap[0][0]
            heapq.heappush(self._heap, (deadline.at, next(self._seq), deadline))
            if earliest:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    # A little late on purpose: one wake-up then handles every deadline that
                    # passed meanwhile (almost all finished long ago), not one per request.
                    self._cond.wait(wait + _SLACK)
                    continue
                now = time.monotonic()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
            for deadline in due:
                deadline.fire()  # outside the heap's lock: it takes the deadline's own


_watchdog = _Watchdog()


def _reset_after_fork() -> None:
    global _watchdog
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_reset_after_fork)

_current = threading.local()


class armed:
    """Arm ``deadline`` for the requests this thread sends inside the block."""

    __slots__ = ("_deadline",)

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline

    def __enter__(self) -> Deadline:
        _watchdog.arm(self._deadline)
        _current.deadline = self._deadline
        return self._deadline

    def __exit__(self, *exc: object) -> None:
        _current.deadline = None


def _attach(sock: object) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None and isinstance(sock, socket.socket):
        deadline.attach(sock)


class _DeadlineHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach(sock)  # from here the TLS handshake and sending the request are covered
        return sock

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's own
        _attach(self.sock)  # a reused connection, or the TLS socket that wraps the new one
        return super().getresponse()


class _DeadlineHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach(sock)
        return sock

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's own
        _attach(self.sock)
        return super().getresponse()


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


#: urllib3 pool classes whose connections hand their socket to the thread's armed deadline:
#: direct connections and HTTP(S) proxies are covered from connect to the last byte; through a
#: SOCKS proxy (its own pool classes) only the body is (the client attaches the socket once
#: headers arrived, :func:`attach_response`).
POOL_CLASSES = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


def attach_response(response: BaseHTTPResponse) -> None:
    """Attach the socket of an answer whose headers arrived (covers the SOCKS case)."""
    connection = getattr(response, "connection", None)
    _attach(getattr(connection, "sock", None))
