"""The shared buffer: how many consumed events are unfinished, and what that holds back.

Every consumed record that is not finished at once (filtered) counts as
*pending* until it is settled. Above ``max_buffered`` pending events the input
is held (the consumer thread stops fetching input, see
:mod:`stream_wfm.pipeline.consumer`); below half of it the input flows again.
From half of it on the buffer is *under pressure*: a saturated destination's
overflow is shed to a retry tier (the bulkhead, see
:mod:`stream_wfm.pipeline.lanes`), so one hanging destination cannot fill the
buffer and hold every other destination's input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

__all__ = ["Backpressure", "HoldTarget"]


class HoldTarget(Protocol):
    """Where holding the input takes effect (the consumer thread)."""

    def hold_input(self, hold: bool) -> None: ...


class Backpressure:
    """The pending-event count and its water marks. Runs on the event loop."""

    __slots__ = (
        "_held",
        "_high_water",
        "_input",
        "_low_water",
        "_on_change",
        "_shed_water",
        "pending",
    )

    def __init__(self, max_buffered: int, on_change: Callable[[bool], None]) -> None:
        """``on_change(held)`` is told when the input is held or released (metrics)."""
        self._high_water = max_buffered
        self._low_water = max_buffered // 2
        self._shed_water = max_buffered // 2
        self._on_change = on_change
        self._input: HoldTarget | None = None
        self._held = False
        self.pending = 0

    def attach(self, target: HoldTarget) -> None:
        self._input = target

    @property
    def held(self) -> bool:
        return self._held

    def under_pressure(self) -> bool:
        """Half the buffer is in use: saturated destinations' overflow is shed."""
        return self.pending >= self._shed_water

    def check_high(self) -> None:
        """After a batch: hold the input when the buffer is over its high-water mark."""
        if not self._held and self.pending > self._high_water:
            self._set(True)

    def finished(self, n: int = 1) -> None:
        """``n`` pending events are finished; release the input below the low-water mark."""
        self.pending -= n
        if self._held and self.pending < self._low_water:
            self._set(False)

    def _set(self, held: bool) -> None:
        self._held = held
        if held:
            log.warning("backpressure: input held", extra={"pending": self.pending})
        else:
            log.info("backpressure released: input flows again", extra={"pending": self.pending})
        if self._input is not None:
            self._input.hold_input(held)
        self._on_change(held)
