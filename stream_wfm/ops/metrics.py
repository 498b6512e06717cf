"""Prometheus metrics of the service.

All metrics live on a :class:`~prometheus_client.CollectorRegistry` passed in
(no module-level globals). No label takes unbounded values: there is no
``account_id`` label. Hot-path children are bound once (``.labels()`` at start)
and kept on the object; the two histograms observed per delivered event are
:class:`~stream_wfm.ops.histogram.LoopHistogram` (same exposition, ~5x cheaper).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from stream_wfm import __version__
from stream_wfm.ops.histogram import LoopHistogram

PREFIX = "stream_wfm"

# Buckets for webhook request durations (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Buckets for produce → delivered latency (seconds); retries make it long-tailed.
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

EVENT_KINDS = ("agent", "call")
# Outcome of one delivery attempt.
OUTCOMES = ("delivered", "retryable", "permanent")
# Status class of one delivery attempt: HTTP class or the failure that had no status.
STATUS_CLASSES = (
    "2xx", "3xx", "4xx", "5xx", "1xx", "timeout", "connection_error", "destination_not_allowed",
)  # fmt: skip


class Metrics:
    """The service's metrics, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        p = PREFIX
        self.build_info = Info(f"{p}_build", "Version of stream-wfm.", registry=registry)
        self.build_info.info({"version": __version__})

        # --- pipeline --------------------------------------------------------
        self.events_consumed = Counter(
            f"{p}_events_consumed_total",
            "Records consumed from an input topic.",
            ["topic"],
            registry=registry,
        )
        self.events_filtered = Counter(
            f"{p}_events_filtered_total",
            "Events not sent because of the account's integration (by reason).",
            ["reason"],
            registry=registry,
        )
        self.events_invalid = Counter(
            f"{p}_events_invalid_total",
            "Input records that are not valid events (dead-lettered as invalid_event).",
            ["topic"],
            registry=registry,
        )
        self.deliveries = Counter(
            f"{p}_deliveries_total",
            "Webhook delivery attempts by event kind, outcome and status class.",
            ["kind", "outcome", "status_class"],
            registry=registry,
        )
        self.delivery_duration = LoopHistogram(
            f"{p}_delivery_duration_seconds",
            "Duration of one webhook request.",
            ["kind"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.end_to_end_latency = LoopHistogram(
            f"{p}_end_to_end_latency_seconds",
            "Time from the input record's timestamp to its successful delivery.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            f"{p}_requests_in_flight", "Webhook requests in flight.", registry=registry
        )
        self.pending_events = Gauge(
            f"{p}_pending_events",
            "Consumed events not yet finished (buffered or in flight).",
            registry=registry,
        )
        self.order_waiting_events = Gauge(
            f"{p}_order_waiting_events",
            "Events in retry tiers that their key's later events wait behind, by where "
            "this instance keeps them (memory, or disk once more keys wait than "
            "STREAM_WFM_ORDER_KEYS_IN_MEMORY).",
            ["place"],
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            f"{p}_assigned_partitions",
            "Partitions assigned to this instance, by topic.",
            ["topic"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            f"{p}_consumer_lag",
            "Records behind: end offset seen by the consumer minus committed offset.",
            ["topic", "partition"],
            registry=registry,
        )
        self.commits = Counter(
            f"{p}_offset_commits_total", "Offset commits by result.", ["result"], registry=registry
        )
        self.rebalances = Counter(
            f"{p}_rebalances_total", "Partition assignment changes.", ["kind"], registry=registry
        )

        # --- retries and dead letters ---------------------------------------
        self.retries_scheduled = Counter(
            f"{p}_retries_scheduled_total",
            "Events written to a retry tier.",
            ["tier"],
            registry=registry,
        )
        self.retries_dropped = Counter(
            f"{p}_retries_dropped_total",
            "Pending retries dropped because the current config no longer sends them.",
            ["reason"],
            registry=registry,
        )
        self.dead_letters = Counter(
            f"{p}_dead_letters_total",
            "Events written to the dead-letter topic.",
            ["reason"],
            registry=registry,
        )
        self.retry_lateness = Histogram(
            f"{p}_retry_lateness_seconds",
            "How late a retry attempt starts after its due time.",
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.paused_partitions = Gauge(
            f"{p}_paused_partitions",
            "Partitions not fetched: retry partitions waiting to be due, or input partitions "
            "held or paused by backpressure.",
            ["reason"],
            registry=registry,
        )

        # --- endpoint health (docs/contract.md §10) --------------------------------
        self.circuits_open = Gauge(
            f"{p}_circuits_open",
            "Endpoints whose circuit breaker is open (or half-open) on this instance.",
            registry=registry,
        )
        self.longest_open_circuit = Gauge(
            f"{p}_longest_open_circuit_seconds",
            "How long the breaker that has been open longest on this instance has been open "
            "(without a successful probe); 0 when none is open.",
            registry=registry,
        )
        self.circuit_transitions = Counter(
            f"{p}_circuit_transitions_total",
            "Circuit breaker state changes, by the state entered.",
            ["to"],
            registry=registry,
        )
        self.events_deferred = Counter(
            f"{p}_events_deferred_total",
            "Events moved to a retry tier without spending a retry, by reason.",
            ["reason"],
            registry=registry,
        )
        self.integrations_auto_disabled = Counter(
            f"{p}_integrations_auto_disabled_total",
            "Integrations this instance disabled because their endpoint kept failing.",
            registry=registry,
        )

        # --- config ------------------------------------------------------------
        self.config_accounts = Gauge(
            f"{p}_config_accounts", "Integrations loaded from the config topic.", registry=registry
        )
        self.config_invalid_records = Counter(
            f"{p}_config_invalid_records_total",
            "Config records rejected as invalid (the account keeps its last valid config).",
            registry=registry,
        )
        self.config_records = Counter(
            f"{p}_config_records_total",
            "Config records applied, by kind.",
            ["kind"],
            registry=registry,
        )

        # --- health ------------------------------------------------------------
        self.ready = Gauge(f"{p}_ready", "1 when the instance is ready.", registry=registry)
        self.last_progress = Gauge(
            f"{p}_last_progress_timestamp_seconds",
            "Unix time the consumer thread last returned from a poll.",
            registry=registry,
        )
