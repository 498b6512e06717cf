"""Raw confluent-kafka consume baselines.

* :func:`consume_rate`: a group consumer reads ``count`` pre-produced records
  with ``consume(num_messages=...)``; the rate is measured from the first
  record (the group has joined) to the last. The join time is reported too.
* Latency (``python -m stream_wfm.bench.rawconsume ...``, its own process): a
  group consumer with the service's consumer settings reads rate-mode events
  and reports, per event, the time from the producer's send (carried in the
  ``event_id``) to ``consume()`` returning it. It prints ``{"assigned": n}``
  once it has partitions, then ``{"latencies_ns": [[n, ns], ...]}`` at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition


@dataclass(frozen=True)
class ConsumeRate:
    records: int
    seconds: float
    per_second: float
    join_seconds: float


def consume_rate(
    config: dict[str, Any], topic: str, count: int, batch: int = 1000, timeout: float = 60.0
) -> ConsumeRate:
    assigned_at: list[float] = []

    def on_assign(_c: Consumer, _p: list[TopicPartition]) -> None:
        if not assigned_at:
            assigned_at.append(time.perf_counter())

    consumer = Consumer(config)
    try:
        started = time.perf_counter()
        consumer.subscribe([topic], on_assign=on_assign)
        deadline = time.monotonic() + timeout
        seen = 0
        first_at = 0.0
        first_batch = 0
        while seen < count and time.monotonic() < deadline:
            msgs = consumer.consume(num_messages=batch, timeout=0.1)
            if not msgs:
                continue
            if not seen:
                first_at = time.perf_counter()
                first_batch = len(msgs)
            seen += len(msgs)
        last_at = time.perf_counter()
    finally:
        consumer.close()
    if seen < count:
        raise RuntimeError(f"raw consumer read {seen} of {count} records within {timeout:g}s")
    measured = seen - first_batch
    seconds = last_at - first_at
    join = (assigned_at[0] if assigned_at else first_at) - started
    return ConsumeRate(measured, seconds, measured / seconds if seconds > 0 else 0.0, join)


def send_time(event_id: str) -> tuple[int, int] | None:
    """``(n, send time ns)`` of a rate-mode event id ``lat-{n}-{monotonic_ns}``."""
    parts = event_id.split("-")
    if len(parts) != 3 or parts[0] != "lat":
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


def consume_latencies(
    config: dict[str, Any], topic: str, count: int, batch: int, poll_timeout: float, timeout: float
) -> list[tuple[int, int]]:
    """``(n, latency ns)`` of ``count`` rate-mode events, in arrival order."""
    consumer = Consumer(config)
    latencies: list[tuple[int, int]] = []

    def on_assign(_c: Consumer, partitions: list[TopicPartition]) -> None:
        if partitions:
            sys.stdout.write(orjson.dumps({"assigned": len(partitions)}).decode() + "\n")
            sys.stdout.flush()

    try:
        consumer.subscribe([topic], on_assign=on_assign)
        deadline = time.monotonic() + timeout
        while len(latencies) < count and time.monotonic() < deadline:
            msgs = consumer.consume(num_messages=batch, timeout=poll_timeout)
            now = time.monotonic_ns()
            for msg in msgs:
                if msg.error() is not None:
                    continue
                sent = send_time(orjson.loads(msg.value() or b"{}").get("event_id", ""))
                if sent is not None:
                    latencies.append((sent[0], now - sent[1]))
    finally:
        consumer.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stream_wfm.bench.rawconsume")
    parser.add_argument("--config", required=True, help="consumer config as a JSON object")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--poll-timeout", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    config = orjson.loads(args.config)
    latencies = consume_latencies(
        config, args.topic, args.count, args.batch, args.poll_timeout, args.timeout
    )
    sys.stdout.write(orjson.dumps({"latencies_ns": latencies}).decode() + "\n")


if __name__ == "__main__":
    main()
