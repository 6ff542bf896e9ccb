"""Stopping a run from another thread: the sleep a client's retries wait in.

A sync or a check run is asked to stop by setting a :class:`threading.Event` (``cancel``: Ctrl-C,
an Airflow ``on_kill``). Work in flight notices it between steps; a client waiting out a retry's
backoff would not, for up to a minute. Give the client ``sleep=cancellable_sleep(cancel)``: the
wait then ends as soon as ``cancel`` is set, with :class:`~numberyo_provider.errors.SyncCancelled`
(a request that waits for a retry was provably not received, so nothing is lost or paid).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from numberyo_provider.errors import SyncCancelled

__all__ = ["cancellable_sleep"]


def cancellable_sleep(cancel: threading.Event) -> Callable[[float], None]:
    """A ``sleep(seconds)`` that raises :class:`SyncCancelled` as soon as ``cancel`` is set."""

    def sleep(seconds: float) -> None:
        if cancel.wait(seconds):
            raise SyncCancelled("the sync was cancelled")

    return sleep
