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
truth test (:attr:`KeyOrder.active`). The state is rebuilt after a restart or a
rebalance from the retry partitions a member is assigned
(:mod:`stream_wfm.pipeline.order_scan`): the ``range`` assignor gives the member that
owns input partition *p* the retry partitions *p* too, and those hold every waiting
event of its keys. Order is kept per input partition: events of one key that arrive
on different topics (an agent's state events and its end-call events) are ordered
each among their own topic's.
"""

from __future__ import annotations

import bisect
from typing import Final

from stream_wfm.pipeline.commands import TP

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

    def __init__(self) -> None:
        self._by_tp: dict[TP, dict[str, Waiting]] = {}
        self._count = 0  # waiting events overall
        #: True while some event waits: the happy path tests this and nothing else.
        self.active = False

    def ahead(self, tp: TP, key: str, offset: int, now_ms: int = 0) -> Waiting | None:
        """Where the event at ``offset`` of input partition ``tp`` must wait, when an
        earlier event of its ``key`` waits in a retry tier; None: it may go.

        A key whose waiting events were all due more than :data:`STALE_MS` ago is let go
        (and forgotten): their records should have come back long ago, so they are not
        where this member will see them (e.g. their partition went elsewhere); holding
        the key would hold it forever."""
        keys = self._by_tp.get(tp)
        if keys is None:
            return None
        waiting = keys.get(key)
        if waiting is None or waiting.offsets[0] >= offset:
            return None
        if now_ms and waiting.due_ms + STALE_MS < now_ms:
            self._count -= len(waiting.offsets)
            del keys[key]
            if not keys:
                del self._by_tp[tp]
            self.active = self._count > 0
            return None
        return waiting

    def wait(self, tp: TP, key: str, offset: int, tier: int, due_ms: int) -> None:
        """The event at ``offset`` was written to retry tier ``tier``, due ``due_ms``."""
        keys = self._by_tp.get(tp)
        if keys is None:
            keys = self._by_tp[tp] = {}
        waiting = keys.get(key)
        if waiting is None:
            waiting = keys[key] = Waiting(tier, due_ms)
        elif due_ms >= waiting.due_ms:
            waiting.tier, waiting.due_ms = tier, due_ms
        offsets = waiting.offsets
        i = bisect.bisect_left(offsets, offset)
        if i == len(offsets) or offsets[i] != offset:
            offsets.insert(i, offset)
            self._count += 1
            self.active = True

    def done(self, tp: TP, key: str, offset: int) -> None:
        """The event at ``offset`` no longer waits (delivered, dead-lettered, dropped)."""
        keys = self._by_tp.get(tp)
        if keys is None:
            return
        waiting = keys.get(key)
        if waiting is None:
            return
        offsets = waiting.offsets
        i = bisect.bisect_left(offsets, offset)
        if i < len(offsets) and offsets[i] == offset:
            del offsets[i]
            self._count -= 1
            if not offsets:
                del keys[key]
                if not keys:
                    del self._by_tp[tp]
            self.active = self._count > 0

    def forget(self, tps: list[TP]) -> None:
        """The input partitions ``tps`` went to another member: so do their keys."""
        for tp in tps:
            keys = self._by_tp.pop(tp, None)
            if keys is not None:
                self._count -= sum(len(w.offsets) for w in keys.values())
        self.active = self._count > 0

    @property
    def waiting_events(self) -> int:
        return self._count

    @property
    def waiting_keys(self) -> int:
        return sum(len(keys) for keys in self._by_tp.values())
