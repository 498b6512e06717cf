"""The unit of work the pipeline tracks from intake to settle."""

from __future__ import annotations

from stream_wfm.events import Event, EventKind
from stream_wfm.health.endpoints import Endpoint
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.retry.records import SourceRecord


class Work:
    """One consumed record on its way: where it came from and what it is.

    ``tracker``/``offset`` locate the consumed record (an input or retry-topic
    partition) whose offset is finished when this work is; ``source`` is the
    original input record (for a retry, the one inside the retry record).
    ``kind`` is None only for a retry record that could not be decoded;
    ``event`` is None for a record that is not a valid event. ``endpoint``: the endpoint
    its attempt goes to, when the submitter found it closed (its success is then counted
    without a lookup), else None.
    """

    __slots__ = ("endpoint", "event", "first_attempt_ms", "kind", "offset", "source", "tracker")

    def __init__(
        self,
        tracker: PartitionTracker,
        offset: int,
        source: SourceRecord,
        kind: EventKind | None,
        event: Event | None,
        first_attempt_ms: int,
    ) -> None:
        self.tracker = tracker
        self.offset = offset
        self.source = source
        self.kind = kind
        self.event = event
        self.first_attempt_ms = first_attempt_ms
        self.endpoint: Endpoint | None = None

    @property
    def account_id(self) -> str | None:
        return None if self.event is None else self.event.account_id

    @property
    def event_id(self) -> str:
        """The event's id; for a record that is not an event, its source coordinates."""
        if self.event is not None:
            return self.event.event_id
        source = self.source
        return f"{source.topic}:{source.partition}:{source.offset}"
