"""Records/s through the real ConsumerThread when the loop spends CPU on each record.

Why filtered events stay under 0.25x raw consume (docs/performance.md): the consumer
thread builds each batch's ``Message`` objects with the GIL held, and the loop then
decodes and routes them, so the two take turns. This harness pre-produces the bench's
events to an embedded broker, runs :class:`~stream_wfm.pipeline.consumer.ConsumerThread`
with the service's consumer settings and a sink that burns ``--work-us`` of Python CPU
per record on the loop, and prints the rate (first batch excluded).

    python benchmarks/consumer_handoff.py --work-us 0
    python benchmarks/consumer_handoff.py --work-us 3.5 --batch 5000 --queued 4
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Message

from stream_wfm.bench.workload import isolated_settings, produce_events
from stream_wfm.kafka.admin import create_topics
from stream_wfm.kafka.config import group_consumer_config
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.pipeline.consumer import TP, ConsumerThread
from stream_wfm.settings import Settings


class BurningSink:
    """Counts records and burns CPU for each; resolves ``done`` after ``total``."""

    def __init__(self, total: int, work_us: float) -> None:
        self.total = total
        self.work = work_us / 1e6
        self.seen = 0
        self.first_batch = 0
        self.started = 0.0
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_batch(self, messages: list[Message]) -> None:
        if not self.started:
            self.started = time.perf_counter()
            self.first_batch = len(messages)
        self.seen += len(messages)
        end = time.perf_counter() + self.work * len(messages)
        while time.perf_counter() < end:
            pass
        if self.seen >= self.total and not self.done.done():
            self.done.set_result(time.perf_counter())

    def on_assigned(self, partitions: list[TP]) -> None:
        pass

    def on_revoked(self, partitions: list[TP]) -> concurrent.futures.Future[dict[TP, int]]:
        future: concurrent.futures.Future[dict[TP, int]] = concurrent.futures.Future()
        future.set_result({})
        return future


async def measure(settings: Settings, args: argparse.Namespace) -> float:
    sink = BurningSink(args.records, args.work_us)
    config: dict[str, Any] = group_consumer_config(settings)
    config["group.id"] = f"handoff-{uuid.uuid4().hex[:8]}"
    topics = [settings.agent_events_topic, settings.call_events_topic, *settings.retry_topics()]
    consumer = ConsumerThread(
        config, topics, asyncio.get_running_loop(), sink,
        batch_size=args.batch, max_queued_batches=args.queued,
    )  # fmt: skip
    consumer.start()
    try:
        finished = await asyncio.wait_for(sink.done, 120)
    finally:
        consumer.stop()
        await consumer.wait_closed(10)
    return (sink.seen - sink.first_batch) / (finished - sink.started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--work-us", type=float, default=3.5, help="loop CPU per record")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--queued", type=int, default=2, help="batches waiting for the loop")
    parser.add_argument("--switch-interval", type=float, default=None, help="seconds")
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    import uvloop

    with EmbeddedBroker() as broker:
        settings = isolated_settings(
            broker.bootstrap_servers,
            f"handoff-{uuid.uuid4().hex[:8]}",
            topic_partitions=6,
            kafka={"session.timeout.ms": "2000", "heartbeat.interval.ms": "300"},
        )
        create_topics(settings)
        produce_events(
            broker.bootstrap_servers, settings.agent_events_topic, args.records, 0.0, prefix="f"
        )
        rate = uvloop.run(measure(settings, args))
    print(
        f"{args.work_us:g} us per record, batch {args.batch}, {args.queued} queued, switch "
        f"interval {sys.getswitchinterval() * 1000:g} ms: {rate:,.0f} records/s"
    )


if __name__ == "__main__":
    main()
