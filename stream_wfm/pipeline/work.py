"""The unit of work the pipeline tracks from consume to finish."""

from __future__ import annotations

from stream_wfm.events import Event, EventKind
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.retry.records import SourceRecord


class Work:
    """One consumed record on its way: where it came from and what it is.

    ``tracker``/``offset`` locate the consumed record (an input or retry-topic
    partition) whose offset is finished when this work is; ``source`` is the
    original input record (for a retry, the one inside the retry record).
    """

    __slots__ = ("event", "first_attempt_ms", "kind", "offset", "source", "tracker")

    def __init__(
        self,
        tracker: PartitionTracker,
        offset: int,
        source: SourceRecord,
        kind: EventKind,
        event: Event | None,
        first_attempt_ms: int,
    ) -> None:
        self.tracker = tracker
        self.offset = offset
        self.source = source
        self.kind = kind
        self.event = event
        self.first_attempt_ms = first_attempt_ms
