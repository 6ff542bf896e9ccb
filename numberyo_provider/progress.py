"""A one-line terminal progress reporter (done/total, items/s, ETA) for long CLI runs.

It draws only when its stream is a terminal, so logs, pipes and Airflow task logs stay clean; it is
thread-safe (workers may call :meth:`Progress.advance`) and redraws at most every ``min_interval``
seconds so a fast loop does not spend its time printing.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """``label: [#####.....] 5,000/10,000 50% 812.3 checks/s ETA 0:06``.

    ``total`` may be unknown (``None``) or change while running (:meth:`set_total`); then the bar
    and the ETA are left out. ``enabled=None`` means "when ``stream`` is a terminal".
    """

    def __init__(
        self,
        label: str = "checks",
        *,
        unit: str = "checks",
        total: int | None = None,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        min_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.unit = unit
        self._stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self._stream, "isatty", None)
            enabled = bool(isatty()) if callable(isatty) else False
        self.enabled = enabled
        self._min_interval = min_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._total = total
        self._done = 0
        self._started = clock()
        self._last_draw = float("-inf")
        self._drawn = False
        self._closed = False

    @property
    def done(self) -> int:
        return self._done

    @property
    def total(self) -> int | None:
        return self._total

    def set_total(self, total: int | None) -> None:
        with self._lock:
            self._total = total
            self._draw(force=False)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self._done += n
            self._draw(force=False)

    def rate(self) -> float:
        elapsed = self._clock() - self._started
        return self._done / elapsed if elapsed > 0 else 0.0

    def render(self, width: int = 100) -> str:
        """The line as it would be drawn (also what tests look at)."""
        rate = self.rate()
        parts = [f"{self.label}:"]
        total = self._total
        if total:
            ratio = min(1.0, self._done / total)
            parts.append(f"{self._done:,}/{total:,} {ratio:4.0%}")
        else:
            parts.append(f"{self._done:,}")
        parts.append(f"{rate:,.1f} {self.unit}/s")
        if total and rate > 0 and self._done < total:
            parts.append(f"ETA {_duration((total - self._done) / rate)}")
        text = " ".join(parts)
        room = width - len(text) - 3
        if total and room >= 10:
            bar = min(room, 30)
            filled = int(bar * min(1.0, self._done / total))
            text = f"{parts[0]} [{'#' * filled}{'.' * (bar - filled)}] {' '.join(parts[1:])}"
        return text[: max(0, width - 1)]

    def _draw(self, *, force: bool) -> None:
        if not self.enabled or self._closed:
            return
        now = self._clock()
        if not force and now - self._last_draw < self._min_interval:
            return
        self._last_draw = now
        width = shutil.get_terminal_size((100, 20)).columns
        line = self.render(width)
        try:
            self._stream.write(f"\r{line}\x1b[K")
            self._stream.flush()
        except (OSError, ValueError):  # a closed terminal must not fail the run
            self.enabled = False
            return
        self._drawn = True

    def close(self) -> None:
        """Draw the final state and end the line (no-op when nothing was ever drawn)."""
        with self._lock:
            if self._closed:
                return
            self._draw(force=True)
            self._closed = True
            if self._drawn:
                try:
                    self._stream.write("\n")
                    self._stream.flush()
                except (OSError, ValueError):
                    pass

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["Progress"]
