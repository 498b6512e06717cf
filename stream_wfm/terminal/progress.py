"""A one-line progress bar for the command line (no dependency).

On a terminal the line is redrawn in place (at most every ``interval``
seconds); elsewhere (a pipe, a CI log) a plain line is printed at most every
``plain_interval`` seconds, so logs stay readable. :meth:`ProgressBar.close`
always leaves the final state on its own line.

:class:`Phases` numbers a run's phases, one bar each (``stream-wfm bench``).
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
        self.show(render(self._label, done, total, suffix))

    def show(self, line: str) -> None:
        """Show ``line`` as the current state (drawn when the interval allows)."""
        self._line = line
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


class Phases:
    """Numbered phases of a run, one :class:`ProgressBar` each:
    ``[bench 2/7] label [####....] done/total  12.3s`` (``label...`` without a total).

    ``plan(n)`` announces the number of phases; ``phase(label, total)`` starts the next one;
    ``update(done)`` reports its progress; ``close()`` ends the last line. Disabled, it
    prints nothing.
    """

    def __init__(
        self,
        name: str,
        stream: TextIO | None = None,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._stream = stream
        self._enabled = enabled
        self._clock = clock
        self._started = clock()
        self._planned = 0
        self._number = 0
        self._label = ""
        self._total = 0
        self._bar: ProgressBar | None = None

    def plan(self, phases: int) -> None:
        self._planned = phases

    def phase(self, label: str, total: int = 0) -> None:
        self.close()
        self._number += 1
        of = f"/{self._planned}" if self._planned else ""
        self._label = f"[{self._name} {self._number}{of}] {label}"
        self._total = total
        if self._enabled:
            self._bar = ProgressBar(self._label, self._stream, clock=self._clock)
        self.update(0)

    def update(self, done: int) -> None:
        bar = self._bar
        if bar is None:
            return
        elapsed = f"{self._clock() - self._started:.1f}s"
        if self._total > 0:
            bar.update(done, self._total, elapsed)
        else:
            bar.show(f"{self._label}...  {elapsed}")

    def close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()
