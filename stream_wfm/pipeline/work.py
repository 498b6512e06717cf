"""The unit of work the pipeline tracks from intake to settle."""

from __future__ import annotations

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from stream_wfm.events import Event, EventKind
from stream_wfm.health.endpoints import Endpoint
from stream_wfm.pipeline.lanes import Job
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.retry.records import Headers, SourceRecord


class Work(Job):
    """One consumed record on its way, from intake to settle: where it came from, what it
    is, and its current delivery attempt. A selected event's work is queued in its lane
    as the :class:`~stream_wfm.pipeline.lanes.Job` itself (the submitter sets
    ``request``, ``order_key``, ``attempt`` and ``probe``; its ``context`` is itself):
    one object per event from decode to settle, beside its parsed fields, its
    :class:`~stream_wfm.events.Event` and its request.

    ``tracker``/``offset`` locate the consumed record (an input or retry-topic
    partition) whose offset is finished when this work is; ``source`` is the
    original input record (for a retry, the one inside the retry record). Given as the
    consumed :class:`~confluent_kafka.Message` (an input record), its
    :class:`~stream_wfm.retry.records.SourceRecord` is only made when something reads
    :attr:`source` (a retry or dead-letter record is written, order bookkeeping): a
    delivered event never makes one. What every attempt reads of it, its Kafka
    ``headers`` and ``timestamp_ms``, is kept here.
    ``kind`` is None only for a retry record that could not be decoded;
    ``event`` is None for a record that is not a valid event. ``endpoint``: the endpoint
    its attempt goes to, when the submitter found it closed (its success is then counted
    without a lookup), else None.
    """

    __slots__ = (
        "_source",
        "endpoint",
        "event",
        "first_attempt_ms",
        "headers",
        "kind",
        "offset",
        "timestamp_ms",
        "tracker",
    )

    def __init__(
        self,
        tracker: PartitionTracker,
        offset: int,
        source: SourceRecord | Message,
        kind: EventKind | None,
        event: Event | None,
        first_attempt_ms: int,
    ) -> None:
        self.tracker = tracker
        self.offset = offset
        self._source = source
        if isinstance(source, SourceRecord):
            self.headers: Headers | None = source.headers
            self.timestamp_ms: int | None = source.timestamp_ms
        else:
            # Consumed: a list of (str, bytes | None), or None.
            self.headers = source.headers()  # type: ignore[assignment]
            ts_type, ts = source.timestamp()
            self.timestamp_ms = None if ts_type == TIMESTAMP_NOT_AVAILABLE else ts
        self.kind = kind
        self.event = event
        self.first_attempt_ms = first_attempt_ms
        self.endpoint: Endpoint | None = None

    @property
    def context(self) -> Work:
        """As a queued job: the work is its own context."""
        return self

    @property
    def source(self) -> SourceRecord:
        """The input record as it was, its Kafka headers included (kept in retry and
        dead-letter records; a retry's trace context comes from them)."""
        source = self._source
        if isinstance(source, SourceRecord):
            return source
        tracker = self.tracker
        record = self._source = SourceRecord(
            tracker.topic, tracker.partition, self.offset, source.key(), source.value(),
            self.timestamp_ms, headers=self.headers,
        )  # fmt: skip
        return record

    @source.setter
    def source(self, source: SourceRecord) -> None:
        self._source = source
        self.headers = source.headers
        self.timestamp_ms = source.timestamp_ms

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
