"""Producing records to a topic, and reading a whole topic back."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from stream_wfm.settings import Settings


def produce(
    settings: Settings, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> None:
    # Idempotent: a retried produce request can never reorder a partition's records (tests
    # of per-key order depend on the input order being the order given here).
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "linger.ms": 5,
            "enable.idempotence": True,
        }
    )
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0


def produce_json(settings: Settings, topic: str, events: list[dict[str, Any]]) -> None:
    produce(
        settings, topic,
        [(f"{e.get('account_id')}:{e.get('agent_id') or e.get('call_id')}".encode(),
          orjson.dumps(e)) for e in events],
    )  # fmt: skip


def read_topic(settings: Settings, topic: str, timeout: float = 10.0) -> list[Any]:
    """Every record of ``topic``, read to partition EOF of every partition."""
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers, "group.id": f"read-{uuid.uuid4().hex}",
        "enable.partition.eof": True, "enable.auto.commit": False,
    })  # fmt: skip
    try:
        meta = consumer.list_topics(timeout=5).topics.get(topic)
        assert meta is not None, f"topic {topic} does not exist"
        parts = sorted(meta.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        left = set(parts)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                err = msg.error()
                if err is None:
                    out.append(msg)
                elif err.code() == KafkaError._PARTITION_EOF:
                    left.discard(msg.partition())
        assert not left, f"partitions {left} of {topic} not read to the end"
        return out
    finally:
        consumer.close()
