"""Topic administration: ``stream-wfm topics create`` (docs/contract.md §1, §10)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream_wfm.kafka.config import common_config
from stream_wfm.settings import Settings

log = logging.getLogger(__name__)

_DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def planned_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic the service uses, with its settings."""
    n = settings.topic_partitions
    topics = [
        TopicSpec(settings.agent_events_topic, n, {}),
        TopicSpec(settings.call_events_topic, n, {}),
        # Compacted: the latest config per account is kept; tombstones delete.
        TopicSpec(
            settings.config_topic,
            1,
            {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": "0",
                "delete.retention.ms": str(_DAY_MS),
            },
        ),
    ]
    for topic in settings.retry_topics():
        topics.append(TopicSpec(topic, n, {"retention.ms": str(7 * _DAY_MS)}))
    topics.append(TopicSpec(settings.dlq_topic, n, {"retention.ms": str(30 * _DAY_MS)}))
    # Notices (an integration disabled, ...) are rare: one partition, one order.
    topics.append(TopicSpec(settings.notices_topic, 1, {"retention.ms": str(30 * _DAY_MS)}))
    # Health records: the latest per {account_id}/{instance_id} is kept, and deleted a day
    # after its last write, so instances that went away do not leave keys for ever.
    topics.append(
        TopicSpec(
            settings.health_topic,
            n,
            {"cleanup.policy": "compact,delete", "retention.ms": str(_DAY_MS)},
        )
    )
    return topics


def existing_topics(admin: AdminClient, timeout: float = 10.0) -> dict[str, int]:
    """Topic name → partition count. A plain ``list_topics()`` never auto-creates."""
    metadata = admin.list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}


def create_topics(settings: Settings, timeout: float = 30.0) -> list[tuple[str, str]]:
    """Create the missing topics; returns ``(topic, "created" | "exists")`` pairs."""
    admin = AdminClient(common_config(settings))
    have = existing_topics(admin, timeout)
    results: list[tuple[str, str]] = []
    wanted = [t for t in planned_topics(settings) if t.name not in have]
    results.extend((t.name, "exists") for t in planned_topics(settings) if t.name in have)
    if not wanted:
        return results
    new = [
        NewTopic(
            t.name,
            num_partitions=t.partitions,
            replication_factor=settings.topic_replication_factor,
            config=t.config,
        )
        for t in wanted
    ]
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            results.append((name, "created"))
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                results.append((name, "exists"))
            else:
                raise
    return results
