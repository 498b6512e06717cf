"""Delivery rate of the real Dispatcher and transport with a fixed CPU cost per event.

Why the default transport is h1 (docs/performance.md): with pyreqwest the service's
rate did not depend on concurrency, and its Tokio thread waited for the GIL while the
loop ran the pipeline. This harness reproduces that without Kafka: the bench's receiver
in its own process, the real :class:`~stream_wfm.pipeline.lanes.Dispatcher` and
transport, and a feeder that queues 1,000 events at a time, spending ``--work-us`` of
CPU per event on the loop (``spin``: Python holding the GIL; ``sha``: hashlib with the
GIL released), as the pipeline does. It prints requests/s and CPU per request (the whole
process), and the CPU share of each thread.

    python benchmarks/delivery_threads.py --transport pyreqwest --work-us 20 --concurrency 16
    python benchmarks/delivery_threads.py --transport h1 --work-us 20 --work-kind sha
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import time
from typing import Any

from stream_wfm.bench.rawpost import process_cpu_seconds
from stream_wfm.bench.receiver import ReceiverProcess
from stream_wfm.bench.service_proc import thread_cpu_seconds
from stream_wfm.bench.workload import ACCOUNT_ID, agent_event, integration
from stream_wfm.delivery.outcome import Outcome
from stream_wfm.delivery.request import compile_template
from stream_wfm.delivery.transport_factory import TRANSPORT_NAMES, create_transport
from stream_wfm.events import EventKind, decode_event
from stream_wfm.integrations.model import validate_config
from stream_wfm.pipeline.lanes import Dispatcher, Job

BATCH = 1_000
QUEUED_LIMIT = 16_000  # the service keeps about this many events in its lanes under load
SHA_BYTES_PER_US = 1_750  # hashlib.sha256 on these machines: ~20 us for 35 kB


def _burner(kind: str, micros: float) -> Any:
    if kind == "sha":
        data = b"x" * int(micros * SHA_BYTES_PER_US)
        return lambda: hashlib.sha256(data).digest()  # releases the GIL (> 2 kB)

    def spin() -> None:
        end = time.perf_counter() + micros / 1e6
        while time.perf_counter() < end:
            pass

    return spin


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    transport = create_transport(
        args.transport,
        max_in_flight=args.concurrency,
        max_in_flight_per_host=args.concurrency,
        allow_private_destinations=True,
    )
    cfg = validate_config(integration(ACCOUNT_ID, url, True))
    template = compile_template(cfg, EventKind.AGENT)
    assert template is not None
    events = [
        decode_event(agent_event(n, f"e-{n}", True), EventKind.AGENT, f"t:0:{n}")
        for n in range(2_000)
    ]
    await transport.send(template.build(events[0]))  # connect before measuring
    done = 0

    def on_outcome(_job: Job, _outcome: Outcome, _elapsed: float) -> None:
        nonlocal done
        done += 1

    dispatcher = Dispatcher(
        transport, on_outcome, lanes_per_host=512, max_in_flight=args.concurrency,
        clock=time.monotonic,
    )  # fmt: skip
    pid = os.getpid()
    burn = _burner(args.work_kind, args.work_us) if args.work_us > 0 else None
    stop = asyncio.Event()
    fed = 0

    def feed() -> None:
        nonlocal fed
        if stop.is_set():
            return
        if dispatcher.queued < QUEUED_LIMIT:
            for _ in range(BATCH):
                if burn is not None:
                    burn()
                event = events[fed % len(events)]
                dispatcher.submit(Job(template.build(event), event.order_key, 1, None))
                fed += 1
        loop.call_later(0.001, feed)

    feed()
    await asyncio.sleep(args.warmup)
    n0, cpu0, threads0, t0 = (
        done,
        process_cpu_seconds(),
        thread_cpu_seconds(pid),
        time.perf_counter(),
    )
    await asyncio.sleep(args.duration)
    n1, cpu1, threads1, t1 = (
        done,
        process_cpu_seconds(),
        thread_cpu_seconds(pid),
        time.perf_counter(),
    )
    stop.set()
    await dispatcher.cancel()
    await transport.close()
    seconds = t1 - t0
    requests = n1 - n0
    shares = {
        name: (threads1[name] - threads0.get(name, 0.0)) / seconds
        for name in threads1
        if threads1[name] - threads0.get(name, 0.0) > 0.01 * seconds
    }
    return {
        "requests_per_second": requests / seconds,
        "cpu_us_per_request": (cpu1 - cpu0) * 1e6 / max(1, requests),
        "thread_cpu_share": shares,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transport", choices=TRANSPORT_NAMES, default="h1")
    parser.add_argument("--work-us", type=float, default=20.0, help="CPU per event on the loop")
    parser.add_argument("--work-kind", choices=("spin", "sha"), default="spin")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args()
    import uvloop

    with ReceiverProcess() as receiver:
        result = uvloop.run(measure(args, receiver.url("/agent")))
    shares = ", ".join(f"{name} {share:.0%}" for name, share in result["thread_cpu_share"].items())
    print(
        f"{args.transport}, {args.work_us:g} us {args.work_kind} per event, "
        f"{args.concurrency} in flight: {result['requests_per_second']:,.0f} requests/s, "
        f"{result['cpu_us_per_request']:.1f} us CPU per request ({shares})"
    )


if __name__ == "__main__":
    main()
