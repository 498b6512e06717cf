"""CPU per request of the h1 transport's send path: the real template, the real transport.

Builds the bench's agent-state webhook requests with the real request template (JSON or
URL-encoded, unsigned or signed with one secret) and sends them with the real
:class:`~stream_wfm.delivery.h1_transport.H1Transport` to the bench receiver (its own
process, :class:`~stream_wfm.bench.receiver.ReceiverProcess`), 64 at a time through a
loop of worker coroutines as the pipeline's lanes do (``outcome = await
transport.send(request)``). Events are decoded before the run (a fixed pool, cycled), so
what grows with ``--requests`` is building and sending only. Prints this process's CPU
per request (user + system, every thread).

Wall-clock and CPU time move with whatever else runs on the machine; count instructions
instead (the client process only: valgrind does not follow the receiver)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/h.5000.out \
        python benchmarks/h1_cpu.py --requests 5000
    # ... and --requests 15000; per request = (total(15000) - total(5000)) / 10000

    python benchmarks/h1_cpu.py --profile      # cProfile of the measured requests
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import resource
from typing import Any, Final

from stream_wfm.bench.receiver import ReceiverProcess
from stream_wfm.bench.workload import ACCOUNT_ID, SIGNING_SECRETS, agent_event, integration
from stream_wfm.delivery.h1_transport import H1Transport
from stream_wfm.delivery.outcome import OutcomeKind
from stream_wfm.delivery.request import RequestTemplate, compile_template
from stream_wfm.events import Event, EventKind, decode_event
from stream_wfm.integrations.model import validate_config
from stream_wfm.ops.runtime import run_on_loop

#: Events decoded before the run and cycled through (the bench's 2,000 agents).
EVENT_POOL: Final = 2000
#: Requests sent before the measured ones: connections opened, caches warm.
WARMUP: Final = 1000


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _send_all(
    transport: H1Transport,
    template: RequestTemplate,
    events: list[Event],
    count: int,
    concurrency: int,
) -> int:
    """Send ``count`` requests with ``concurrency`` workers; returns how many failed."""
    counter = iter(range(count))
    failed = 0
    delivered = OutcomeKind.DELIVERED
    pool = len(events)

    async def worker() -> None:
        nonlocal failed
        send = transport.send
        build = template.build
        for n in counter:
            request = build(events[n % pool], None)
            outcome = await send(request)
            if outcome.kind is not delivered:
                failed += 1

    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return failed


async def measure(
    url: str, requests: int, concurrency: int, fmt: str, signed: bool, profile: bool
) -> dict[str, Any]:
    secrets = SIGNING_SECRETS[:1] if signed else ()
    cfg = validate_config(integration(ACCOUNT_ID, url, fmt == "json", secrets))
    template = compile_template(cfg, EventKind.AGENT)
    assert template is not None
    events = [
        decode_event(agent_event(n, f"e-{n}", True), EventKind.AGENT, "t:0:0")
        for n in range(EVENT_POOL)
    ]
    transport = H1Transport(
        max_in_flight=concurrency, max_in_flight_per_host=concurrency,
        allow_private_destinations=True,
    )  # fmt: skip
    try:
        failed = await _send_all(transport, template, events, WARMUP, concurrency)
        gc.collect()
        profiler = cProfile.Profile() if profile else None
        cpu0 = _cpu_seconds()
        if profiler is not None:
            profiler.enable()
        failed += await _send_all(transport, template, events, requests, concurrency)
        if profiler is not None:
            profiler.disable()
        cpu = _cpu_seconds() - cpu0
    finally:
        await transport.close()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return {
        "requests": requests,
        "format": fmt,
        "signed": signed,
        "failed": failed,
        "cpu_us_per_request": cpu * 1e6 / requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--format", choices=("json", "urlencoded"), default="json")
    parser.add_argument("--signed", action="store_true", help="one signing secret")
    parser.add_argument("--profile", action="store_true", help="cProfile (inflates the CPU)")
    args = parser.parse_args()
    with ReceiverProcess() as receiver:
        coro = measure(
            receiver.url("/ringcx/agent"),
            args.requests,
            args.concurrency,
            args.format,
            args.signed,
            args.profile,
        )
        result = run_on_loop(coro)
    print(
        f"{result['format']}{', signed' if result['signed'] else ''}: "
        f"{result['requests']} requests, {result['failed']} failed, "
        f"{result['cpu_us_per_request']:.2f} us CPU per request (client process)"
    )
    if result["failed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
