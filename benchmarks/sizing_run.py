"""Two instances of the real service in one consumer group: total throughput and each
process's CPU per delivered event, to compare with ``benchmarks/sizing_sim.py``.

One embedded broker and the bench's receiver (its own process); the input topic (6
partitions) is created, ``--instances`` ``stream-wfm run`` processes join one group and
are waited for until the partitions are split between them; then ``--events`` JSON
agent events are produced as fast as the producer goes and delivered. Figures over the
window between 10 % and 90 % of the arrivals at the receiver (as ``stream-wfm bench``):
total events/s, each process's CPU per delivered event and its loop thread's share of a
core, and how busy the machine's cores were meanwhile (``/proc/stat``: other work on a
shared machine shows there).

    python benchmarks/sizing_run.py --events 100000 --instances 2
    python benchmarks/sizing_run.py --events 30000 --latency-ms 100 --concurrency 64

With ``--latency-ms`` the receiver (the bench's, in its own process) answers each
request that many milliseconds after it arrived: the endpoint latency the service has to
cover with requests in flight (at most ``--concurrency`` per instance).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

from stream_wfm.bench import receiver as bench_receiver
from stream_wfm.bench.harness import BenchOptions, Harness
from stream_wfm.bench.service_proc import CpuSampler, ServiceProcess, thread_cpu_seconds
from stream_wfm.bench.workload import (
    ACCOUNT_ID,
    RateProducer,
    integration,
    produce_events,
    write_integrations,
)
from stream_wfm.kafka.admin import create_topics
from stream_wfm.ops.runtime import run_on_loop
from stream_wfm.settings import Settings
from stream_wfm.terminal.progress import Phases

PARTITIONS_PER_TOPIC_SUM = "stream_wfm_assigned_partitions"


class _Later:
    """A transport whose writes go out ``delay`` seconds later (the endpoint's latency)."""

    def __init__(self, transport: asyncio.BaseTransport, delay: float) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._delay = delay
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        self._loop.call_later(self._delay, self._write, data)

    def _write(self, data: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(data)


def serve_delayed(delay: float) -> None:
    """The bench receiver (same control protocol on stdin/stdout), answering after ``delay``."""

    class Delayed(bench_receiver._Http):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._transport = cast(asyncio.Transport, _Later(transport, delay))

    async def serve() -> None:
        recorder = bench_receiver.Recorder()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Delayed(recorder), "127.0.0.1", 0, backlog=4096)
        bound = server.sockets[0].getsockname()[1]
        sys.stdout.buffer.write(json.dumps({"port": bound}).encode() + b"\n")
        sys.stdout.buffer.flush()
        async with server:
            await bench_receiver._control(recorder)

    run_on_loop(serve())


class DelayedReceiver(bench_receiver.ReceiverProcess):
    """:class:`ReceiverProcess` running :func:`serve_delayed` (this script) instead."""

    def __init__(self, delay: float) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-delay", str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.port = int(self._read()["port"])
        self.pid = self._proc.pid


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from the first line of ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return float(sum(fields) - idle), float(sum(fields))


def loop_thread_seconds(pid: int) -> float:
    """CPU seconds of the process's main thread (the event loop): its tid is the pid."""
    for name, seconds in thread_cpu_seconds(pid).items():
        if name.split(" ", 1)[0] == str(pid):
            return seconds
    return 0.0


def wait_split(services: list[ServiceProcess], timeout: float = 60.0) -> list[float]:
    """Wait until every instance has the same (non-zero) number of partitions, twice in a
    row 0.5 s apart (the group has settled); their counts."""
    deadline = time.monotonic() + timeout
    previous: list[float] | None = None
    while time.monotonic() < deadline:
        counts = [svc.metrics().get(PARTITIONS_PER_TOPIC_SUM, 0.0) for svc in services]
        if all(c > 0 for c in counts) and len(set(counts)) == 1 and counts == previous:
            return counts
        previous = counts
        time.sleep(0.5)  # polling the group's assignment with a deadline
    raise RuntimeError(f"the partitions were not split evenly within {timeout:g}s: {previous}")


def prepare(h: Harness, topic: str) -> Settings:
    """As :meth:`Harness.prepare` for JSON, to whichever receiver ``h`` has now."""
    s = h.settings("group", topic)
    create_topics(s)
    cfg = integration(ACCOUNT_ID, h.receiver.url("/agent"), True)
    write_integrations(h.bootstrap, s.config_topic, [cfg])
    return s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="STREAM_WFM_MAX_IN_FLIGHT and _PER_HOST of each instance",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="endpoint latency")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="produce at this many events/s (for --events / rate seconds) instead of a backlog",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--serve-delay", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_delay is not None:
        serve_delayed(args.serve_delay)
        return 0
    options = BenchOptions(events=args.events, concurrency=args.concurrency)
    progress = Phases("sizing", enabled=False)
    with Harness.started(options, progress) as h:
        topic = h.name("events")
        with ExitStack() as stack:
            if args.latency_ms > 0:
                h.receiver = stack.enter_context(DelayedReceiver(args.latency_ms / 1e3))
            s = prepare(h, topic)
            services = [
                stack.enter_context(ServiceProcess(h.env(s))) for _ in range(args.instances)
            ]
            for svc in services:
                svc.block_until_ready(120.0)
            split = wait_split(services)
            rss_ready = [svc.rss_bytes() / 1e6 for svc in services]
            h.receiver.reset()
            cpu0 = [svc.cpu_seconds() for svc in services]
            loop0 = [loop_thread_seconds(svc.pid) for svc in services]
            samplers = [CpuSampler(svc.pid).start() for svc in services]
            loop_samples: list[tuple[int, list[float]]] = []
            busy0 = machine_busy()
            t0 = time.monotonic_ns()
            in_flight: list[list[float]] = []
            if args.rate > 0:
                producer = RateProducer(h.bootstrap, topic, args.rate, args.events / args.rate)
                producer.start()
                selected = producer.total
            else:
                selected = produce_events(h.bootstrap, topic, args.events, 1.0, prefix="s")

            def received() -> int:
                loop_samples.append(
                    (time.monotonic_ns(), [loop_thread_seconds(svc.pid) for svc in services])
                )
                count = h.receiver.count()
                if len(loop_samples) % 4 == 0 and selected // 10 < count < selected * 9 // 10:
                    in_flight.append(
                        [
                            svc.metrics().get("stream_wfm_requests_in_flight", 0.0)
                            for svc in services
                        ]
                    )
                return count

            try:
                h.wait(received, selected)
            finally:
                for sampler in samplers:
                    sampler.stop()
            busy1 = machine_busy()
            t1 = time.monotonic_ns()
            cpu = [svc.cpu_seconds() - c for svc, c in zip(services, cpu0, strict=True)]
            loop = [
                loop_thread_seconds(svc.pid) - c for svc, c in zip(services, loop0, strict=True)
            ]
            metrics = [svc.metrics() for svc in services]
            delivered = [m.get("stream_wfm_deliveries_total", 0.0) for m in metrics]
            dump = h.receiver.dump()
            rss = [svc.rss_bytes() / 1e6 for svc in services]
    times: list[int] = sorted(dump["times"])
    n = len(times)
    i10, i90 = n // 10, (n * 9) // 10
    t10, t90 = times[i10], times[i90]
    window = (t90 - t10) / 1e9
    in_window = i90 - i10
    window_cpu = [sp.at(t90) - sp.at(t10) for sp in samplers]
    share = [d / max(1.0, sum(delivered)) for d in delivered]
    per_process = []
    for k in range(args.instances):
        events_k = in_window * share[k]
        per_process.append(
            {
                "delivered": int(delivered[k]),
                "cpu_us_per_event_window": window_cpu[k] * 1e6 / events_k if events_k else 0.0,
                "cpu_us_per_event_run": cpu[k] * 1e6 / delivered[k] if delivered[k] else 0.0,
                "loop_share_of_core_run": loop[k] / ((t1 - t0) / 1e9),
                "cpu_cores_window": window_cpu[k] / window if window else 0.0,
                "in_flight_mean": sum(x[k] for x in in_flight) / len(in_flight)
                if in_flight
                else 0.0,
                "deferred": int(metrics[k].get("stream_wfm_events_deferred_total", 0.0)),
                "retries": int(metrics[k].get("stream_wfm_retries_scheduled_total", 0.0)),
                "rss_ready_mb": rss_ready[k],
                "rss_mb": rss[k],
            }
        )
    busy = (busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
    result: dict[str, Any] = {
        "events": args.events,
        "instances": args.instances,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "rate": args.rate,
        "partitions_each": split,
        "received": n,
        "distinct": len(set(dump["ids"])),
        "window_seconds": window,
        "throughput_eps": in_window / window if window else 0.0,
        "first_to_last_eps": (n - 1) / ((times[-1] - times[0]) / 1e9),
        "processes": per_process,
        "machine_cores": os.cpu_count(),
        "machine_busy_share_run": busy,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{args.instances} instances, {args.events} events, endpoint latency "
        f"{args.latency_ms:g} ms, {args.concurrency} in flight each: "
        f"{result['throughput_eps']:,.0f} "
        f"events/s (10-90 % window, {window:.2f} s), first to last "
        f"{result['first_to_last_eps']:,.0f}/s; {result['distinct']}/{selected} received; "
        f"machine busy {busy:.0%} of {os.cpu_count()} cores; load {result['loadavg']}"
    )
    for k, p in enumerate(per_process):
        print(
            f"  instance {k}: {p['delivered']} delivered, {p['cpu_us_per_event_window']:.1f} us "
            f"CPU/event (window), {p['cpu_us_per_event_run']:.1f} us (whole run), "
            f"{p['cpu_cores_window']:.2f} cores, loop thread {p['loop_share_of_core_run']:.0%} "
            f"of a core, {p['in_flight_mean']:.0f} in flight (mean), {p['deferred']} deferred, "
            f"RSS {p['rss_ready_mb']:.0f} MB ready, {p['rss_mb']:.0f} MB after"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
