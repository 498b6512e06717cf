"""A one-line progress bar for the command line (no dependency).

On a terminal the line is redrawn in place (at most every ``interval``
seconds); elsewhere (a pipe, a CI log) a plain line is printed at most every
``plain_interval`` seconds, so logs stay readable. :meth:`ProgressBar.close`
always leaves the final state on its own line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def render(label: str, done: int, total: int, suffix: str = "", width: int = 28) -> str:
    """``label [#######.......] done/total suffix``."""
    fraction = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = round(fraction * width)
    bar = "#" * filled + "." * (width - filled)
    text = f"{label} [{bar}] {done}/{total}"
    return f"{text}  {suffix}" if suffix else text


class ProgressBar:
    """``bar.update(done, total, suffix)`` as often as you like; ``bar.close()`` at the end."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        interval: float = 0.1,
        plain_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._interval = interval if self._tty else plain_interval
        self._clock = clock
        self._last_draw: float | None = None
        self._line = ""
        self._drawn = ""

    def update(self, done: int, total: int, suffix: str = "") -> None:
        self._line = render(self._label, done, total, suffix)
        now = self._clock()
        if self._last_draw is not None and now - self._last_draw < self._interval:
            return
        self._last_draw = now
        self._draw()

    def _draw(self) -> None:
        if self._line == self._drawn:
            return
        if self._tty:
            self._stream.write("\r" + self._line + "\x1b[K")
        else:
            self._stream.write(self._line + "\n")
        self._stream.flush()
        self._drawn = self._line

    def close(self) -> None:
        """Show the last state and end the line."""
        if not self._line:
            return
        self._draw()
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()
        self._line = self._drawn = ""
