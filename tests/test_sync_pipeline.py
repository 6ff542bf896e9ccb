"""The landing thread is waited for after a Ctrl-C, on every supported Python.

On Python 3.11 a KeyboardInterrupt that interrupts ``Thread.join`` leaves the thread marked as
stopped while it still runs: every later ``join`` returns at once and ``is_alive()`` says False.
A Ctrl-C during ``LandingThread.finish`` (the main thread joining the landing thread) then let
``abandon`` return while a batch was still being landed, and the run's clean-up raced it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from numberyo_provider.sync.pipeline import LandingThread


class _Run:
    """What LandingThread needs of a run: a batch that lands until the run is cancelled, then
    takes a moment more to finish the write it was in."""

    load_id = "sync-test"

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.landed = threading.Event()

    def _land(self, *item: Any) -> None:
        self.cancel.wait(10)
        time.sleep(0.5)
        self.landed.set()


def test_abandon_waits_for_the_landing_thread_after_ctrl_c_interrupted_finish() -> None:
    run = _Run()
    landing = LandingThread(run)  # type: ignore[arg-type]
    landing.put(([], 0, None))  # type: ignore[arg-type]
    ctrl_c = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        ctrl_c.start()
        with pytest.raises(KeyboardInterrupt):
            landing.finish()  # joins the landing thread: the Ctrl-C lands there
        landing.abandon()
        assert run.landed.is_set(), "abandon() returned while the batch was still landing"
    finally:
        ctrl_c.cancel()
        signal.signal(signal.SIGINT, previous)
