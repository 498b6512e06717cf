"""Per-key order across retries and deferrals (docs/contract.md §11).

While one of an ordering key's events waits in a retry tier — a retry, or a deferral
(open breaker, fair share, 429, order) — the key's later events wait behind it: they
are deferred after it, without spending retries, and delivered after it. When the
waiting event is delivered or dead-lettered, the key's next events go on.

:class:`KeyOrder` keeps, per input partition (where the events came from) and
ordering key, the offsets of the key's events that wait in a retry tier (:class:`Waiting`)
and the tier and due time of the latest one written. An event *may go* when no event
of its key from the same input partition with a lower offset waits (input order); one
that may not is deferred to that tier, due no earlier than that latest record
(:meth:`KeyOrder.ahead` returns where). A key's records land in one partition of each
tier (retry records are keyed like their input record), so an event deferred after
another comes back after it.

Only keys with waiting events are kept: nothing per event on the happy path but one
truth test (:attr:`KeyOrder.active`). At most ``max_keys`` keys are kept in memory;
the keys over that number are spilled to a file (:mod:`stream_wfm.pipeline.order_spill`),
so that an outage of many keys' endpoints does not grow the process without bound.
The state is rebuilt after a restart or a rebalance from the retry partitions a member
is assigned (:mod:`stream_wfm.pipeline.order_scan`): the ``range`` assignor gives the member that
owns input partition *p* the retry partitions *p* too, and those hold every waiting
event of its keys. Order is kept per input partition: events of one key that arrive
on different topics (an agent's state events and its end-call events) are ordered
each among their own topic's.
"""

from __future__ import annotations

import bisect
import logging
import sqlite3
from typing import Final

from stream_wfm.pipeline.commands import TP
from stream_wfm.pipeline.order_spill import SpilledKeys

log = logging.getLogger(__name__)

__all__ = ["KeyOrder", "Waiting"]

#: A key whose waiting events were all due longer ago than this is let go (see ahead()).
STALE_MS: Final = 60_000


class Waiting:
    """One key's events waiting in retry tiers: their input offsets (ascending) and where
    a later event of the key goes to wait behind them (``tier``, due ``due_ms``)."""

    __slots__ = ("due_ms", "offsets", "tier")

    def __init__(self, tier: int, due_ms: int) -> None:
        self.offsets: list[int] = []
        self.tier = tier
        self.due_ms = due_ms


class KeyOrder:
    """The keys with events in retry tiers, per input partition. Runs on the event loop."""

    def __init__(self, max_keys: int = 100_000, spill: SpilledKeys | None = None) -> None:
        """``max_keys``: keys kept in memory; more are spilled to ``spill`` (default: a
        file in the temporary directory, made when first needed)."""
        self._by_tp: dict[TP, dict[str, Waiting]] = {}
        self._keys = 0  # keys in memory
        self._count = 0  # waiting events in memory
        self._max_keys = max_keys
        self._spill = spill or SpilledKeys()
        #: True while some event waits: the happy path tests this and nothing else.
        self.active = False

    def ahead(
        self, tp: TP, key: str, offset: int, now_ms: int = 0, *, leave: bool = False
    ) -> Waiting | None:
        """Where the event at ``offset`` of input partition ``tp`` must wait, when an
        earlier event of its ``key`` waits in a retry tier; None: it may go, and with
        ``leave`` it no longer waits itself (it is on its way to its lane).

        A key whose waiting events were all due more than :data:`STALE_MS` ago is let go
        (and forgotten): their records should have come back long ago, so they are not
        where this member will see them (e.g. their partition went elsewhere); holding
        the key would hold it forever."""
        keys = self._by_tp.get(tp)
        waiting = None if keys is None else keys.get(key)
        if waiting is None:
            if self._spill.events:
                return self._spilled_ahead(tp, key, offset, now_ms, leave)
            return None
        first = waiting.offsets[0]
        if first >= offset:
            if leave and first == offset:
                self.done(tp, key, offset)
            return None
        if now_ms and waiting.due_ms + STALE_MS < now_ms:
            assert keys is not None
            self._count -= len(waiting.offsets)
            self._drop(tp, keys, key)
            return None
        return waiting

    def _spilled_ahead(
        self, tp: TP, key: str, offset: int, now_ms: int, leave: bool
    ) -> Waiting | None:
        spilled = self._spill.ahead(tp, key)
        if spilled is None or spilled.first_offset > offset:
            return None
        if spilled.first_offset == offset:
            if leave and self._spill.done(tp, key, offset):
                self._update_active()
            return None
        if now_ms and spilled.due_ms + STALE_MS < now_ms:
            self._spill.drop_key(tp, key)
            self._update_active()
            return None
        return Waiting(spilled.tier, spilled.due_ms)

    def wait(self, tp: TP, key: str, offset: int, tier: int, due_ms: int) -> None:
        """The event at ``offset`` was written to retry tier ``tier``, due ``due_ms``."""
        keys = self._by_tp.get(tp)
        waiting = None if keys is None else keys.get(key)
        if waiting is None:
            if self._spill.events and self._spill.has(tp, key):
                try:
                    self._spill.wait(tp, key, offset, tier, due_ms)
                except sqlite3.Error:  # its key's order is not kept; nothing is lost
                    log.exception(
                        "could not spill a waiting event to disk; its key's later events "
                        "may overtake it"
                    )
                return
            if self._keys >= self._max_keys and self._spilled(tp, key, offset, tier, due_ms):
                return
            if keys is None:
                keys = self._by_tp[tp] = {}
            waiting = keys[key] = Waiting(tier, due_ms)
            self._keys += 1
        elif due_ms >= waiting.due_ms:
            waiting.tier, waiting.due_ms = tier, due_ms
        offsets = waiting.offsets
        i = bisect.bisect_left(offsets, offset)
        if i == len(offsets) or offsets[i] != offset:
            offsets.insert(i, offset)
            self._count += 1
            self.active = True

    def _spilled(self, tp: TP, key: str, offset: int, tier: int, due_ms: int) -> bool:
        """Spill a new key; False (keep it in memory) when the file cannot be written."""
        first = not self._spill.events
        try:
            self._spill.wait(tp, key, offset, tier, due_ms)
        except sqlite3.Error:
            log.exception(
                "could not spill a waiting key to disk; keeping it in memory",
                extra={"keys_in_memory": self._keys},
            )
            return False
        if first:
            log.warning(
                "more keys wait behind retried events than are kept in memory; "
                "spilling the rest to disk",
                extra={"keys_in_memory": self._keys},
            )
        self.active = True
        return True

    def done(self, tp: TP, key: str, offset: int) -> None:
        """The event at ``offset`` no longer waits (delivered, dead-lettered, dropped)."""
        keys = self._by_tp.get(tp)
        waiting = None if keys is None else keys.get(key)
        if waiting is None:
            if self._spill.events and self._spill.done(tp, key, offset):
                self._update_active()
            return
        assert keys is not None
        offsets = waiting.offsets
        i = bisect.bisect_left(offsets, offset)
        if i < len(offsets) and offsets[i] == offset:
            del offsets[i]
            self._count -= 1
            if not offsets:
                self._drop(tp, keys, key)
            else:
                self.active = True

    def forget(self, tps: list[TP]) -> None:
        """The input partitions ``tps`` went to another member: so do their keys."""
        for tp in tps:
            keys = self._by_tp.pop(tp, None)
            if keys is not None:
                self._count -= sum(len(w.offsets) for w in keys.values())
                self._keys -= len(keys)
            self._spill.forget(tp)
        self._update_active()

    def close(self) -> None:
        """Remove the spill file, if any. Safe to call twice."""
        self._spill.close()

    def _drop(self, tp: TP, keys: dict[str, Waiting], key: str) -> None:
        del keys[key]
        self._keys -= 1
        if not keys:
            del self._by_tp[tp]
        self._update_active()

    def _update_active(self) -> None:
        self.active = self._count > 0 or self._spill.events > 0

    @property
    def waiting_events(self) -> int:
        return self._count + self._spill.events

    @property
    def waiting_keys(self) -> int:
        return self._keys + self._spill.keys()

    @property
    def spilled_events(self) -> int:
        return self._spill.events
