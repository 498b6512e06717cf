"""How late do retries fire compared to their due time? (timing accuracy)

Runs the real service in-process against the embedded broker and a real HTTP receiver on
127.0.0.1 that answers 503 to every event's first attempt and 200 afterwards. Every
event therefore waits in the first retry tier. Lateness of an event = arrival time of
its second attempt at the receiver - the due time written in its retry record.

    python benchmarks/retry_lateness.py --events 1000 --backoff 3s,6s

Prints p50 / p90 / p99 / max lateness in milliseconds (and --json for machines).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections import Counter
from typing import Any

import orjson
from aiohttp import web
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from stream_wfm.bench.workload import isolated_settings
from stream_wfm.integrations.model import validate_config
from stream_wfm.integrations.writer import ConfigWriter
from stream_wfm.kafka.admin import create_topics
from stream_wfm.kafka.config import producer_config
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.retry.records import decode_retry_record
from stream_wfm.service import Service


def read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    parts = sorted(consumer.list_topics(timeout=5).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    left, out = set(parts), []
    while left:
        for msg in consumer.consume(1000, 0.5):
            err = msg.error()
            if err is None:
                out.append(msg)
            elif err.code() == KafkaError._PARTITION_EOF:
                left.discard(msg.partition())
    consumer.close()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(events: int, backoff: str, agents: int) -> dict[str, Any]:
    seen: Counter[str] = Counter()
    second: dict[str, float] = {}
    done = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        event_id = request.headers["X-WFM-Event-Id"]
        seen[event_id] += 1
        if seen[event_id] == 1:
            return web.Response(status=503)
        second.setdefault(event_id, time.time())
        if len(second) == events:
            done.set()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]

    with EmbeddedBroker() as broker:
        settings = isolated_settings(
            broker.bootstrap_servers,
            f"lateness-{uuid.uuid4().hex[:8]}",
            retry_backoff=backoff,
            topic_partitions=6,
            allow_private_destinations=True,
            http_port=0,
            log_level="WARNING",
            kafka={"session_timeout_ms": "2000", "heartbeat_interval_ms": "300"},
        )
        create_topics(settings)
        ConfigWriter(settings.config_topic, producer_config(settings)).put(
            validate_config(
                {
                    "account_id": "1",
                    "agent_states": True,
                    "send_body_as_json": True,
                    "agent_event_url": f"http://127.0.0.1:{port}/hook",
                }
            )
        )
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5})
        for i in range(events):
            event = {
                "account_id": "1",
                "agent_id": f"a{i % agents}",
                "event_type": "AVAILABLE",
                "event_id": f"late-{i}",
            }
            producer.produce(
                settings.agent_events_topic,
                key=f"1:a{i % agents}".encode(),
                value=orjson.dumps(event),
            )
        producer.flush(10)
        async with Service(settings) as service:
            await asyncio.wait_for(done.wait(), timeout=300)
            hist = {
                "p_le_0_1": service.registry.get_sample_value(
                    "stream_wfm_retry_lateness_seconds_bucket", {"le": "0.1"}
                ),
                "count": service.registry.get_sample_value(
                    "stream_wfm_retry_lateness_seconds_count"
                ),
            }
        due = {}
        for msg in read_all(broker.bootstrap_servers, settings.retry_topics()[0]):
            record = decode_retry_record(msg.value())
            due[record.event_id] = record.due_at_ms / 1000
    await runner.cleanup()
    lateness_ms = [(second[e] - due[e]) * 1000 for e in second]
    return {
        "events": events,
        "backoff": backoff,
        "in_retry": len(due),
        "lateness_ms": {
            "min": round(min(lateness_ms), 1),
            "p50": round(statistics.median(lateness_ms), 1),
            "p90": round(pct(lateness_ms, 0.90), 1),
            "p99": round(pct(lateness_ms, 0.99), 1),
            "max": round(max(lateness_ms), 1),
        },
        "service_histogram": hist,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--backoff", default="3s,6s")
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.events, args.backoff, args.agents))
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        lat = result["lateness_ms"]
        print(
            f"{result['in_retry']} events in retry tier {args.backoff.split(',')[0]}; "
            f"lateness ms: min {lat['min']} p50 {lat['p50']} p90 {lat['p90']} "
            f"p99 {lat['p99']} max {lat['max']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
