"""A small progress bar on stderr (a line per phase when stderr is not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    WIDTH = 28

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._tty = enabled and self._stream.isatty()
        self._label = ""
        self._total = 0
        self._last = 0.0
        self._started = time.monotonic()
        self._phase_no = 0
        self._phases = 0

    def plan(self, phases: int) -> None:
        self._phases = phases

    def phase(self, label: str, total: int = 0) -> None:
        self._end_line()
        self._phase_no += 1
        self._label = label
        self._total = total
        self._last = 0.0
        if self._enabled and not self._tty:
            print(f"[bench {self._prefix()}] {label}", file=self._stream, flush=True)
        self.update(0, force=True)

    def _prefix(self) -> str:
        return f"{self._phase_no}/{self._phases}" if self._phases else str(self._phase_no)

    def update(self, done: int, force: bool = False) -> None:
        if not self._tty:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        elapsed = now - self._started
        if self._total > 0:
            frac = min(1.0, done / self._total)
            filled = int(frac * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            count = f"{done}/{self._total}"
            text = f"[bench {self._prefix()}] [{bar}] {frac:4.0%} {self._label} {count}"
        else:
            text = f"[bench {self._prefix()}] {self._label}..."
        self._stream.write(f"\r{text}  {elapsed:5.1f}s\x1b[K")
        self._stream.flush()

    def _end_line(self) -> None:
        if self._tty and self._label:
            self._stream.write("\n")
            self._stream.flush()

    def close(self) -> None:
        self._end_line()
        self._label = ""
