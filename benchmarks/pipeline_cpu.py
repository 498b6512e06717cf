"""CPU per event of the pipeline alone: no Kafka, no HTTP.

Feeds real confluent-kafka ``Message`` objects (the bench's ~430-byte agent-state
events of 6 partitions) in batches of 1,000, each in runs of one partition as
``consume()`` returns them, to the real :class:`~stream_wfm.pipeline.pipeline.Pipeline`
and :class:`~stream_wfm.pipeline.lanes.Dispatcher`, with a transport that answers 200
after one loop turn, and reports the loop thread's CPU per event. GC is tuned as
``stream-wfm run`` tunes it (``stream_wfm.ops.runtime``). Stable enough for A/B
comparisons on a busy 2-core machine, where ``stream-wfm bench`` moves by ±15 %.

    python benchmarks/pipeline_cpu.py                          # 100,000 delivered events
    python benchmarks/pipeline_cpu.py --selected-fraction 0 --events 300000   # filtered
    python benchmarks/pipeline_cpu.py --profile                # cProfile, top 25
    python benchmarks/pipeline_cpu.py --setup-only             # builds the messages, no run
    python benchmarks/pipeline_cpu.py --bytecodes --events 2000  # bytecodes per function

``--setup-only`` is for instruction counts: callgrind's count of the pipeline alone is a
full run's minus a set-up-only run's of the same events. ``--bytecodes`` is the profile
callgrind cannot give (it sees CPython's C functions, not the Python ones): how many
bytecodes each Python function runs per event, counted with ``sys.settrace`` opcode
events over ``--events`` and three times as many, minus set-up-only runs of the same;
deterministic, and slow (use a few thousand events).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import resource
import sys
import time
from collections import Counter
from types import FrameType
from typing import Any

from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from stream_wfm.bench.workload import ACCOUNT_ID, agent_event, event_key, integration, is_selected
from stream_wfm.delivery.outcome import Outcome, classify_status
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.delivery.templates import TemplatedEntry as Entry
from stream_wfm.delivery.transport import Response
from stream_wfm.events import EventKind
from stream_wfm.integrations.model import validate_config
from stream_wfm.ops.metrics import Metrics
from stream_wfm.ops.runtime import run_on_loop, tune_gc
from stream_wfm.pipeline.lanes import Dispatcher
from stream_wfm.pipeline.pipeline import Pipeline

OK = classify_status(200)


class OneTurnTransport:
    async def send(self, request: WebhookRequest) -> Outcome:
        await asyncio.sleep(0)
        return OK

    async def send_with_response(self, request: WebhookRequest, preview: int = 512) -> Response:
        return Response(await self.send(request), 0.0, b"")

    async def close(self) -> None:
        return None


class OneAccountStore:
    def __init__(self, entry: Entry) -> None:
        # A dict's get, as the service's ConfigStore.get is.
        self.get = {ACCOUNT_ID: entry}.get


def _thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


async def measure(
    events: int, fraction: float, fmt: str, profile: bool, setup_only: bool = False
) -> dict[str, Any] | None:
    entry = Entry.compile(
        validate_config(integration(ACCOUNT_ID, "http://127.0.0.1:9/agent", fmt == "json"))
    )
    messages = [
        Message(
            topic="agent",
            partition=n % 6,
            offset=n // 6,
            key=event_key(n),
            value=agent_event(n, f"e-{n}", is_selected(n, fraction)),
            timestamp=(1, 1_795_599_000_000),
        )
        for n in range(events)
    ]
    # Each batch in runs of one partition, as consume() hands them over.
    batches = [
        sorted(messages[i : i + 1000], key=Message.partition)  # type: ignore[arg-type]
        for i in range(0, events, 1000)
    ]
    del messages
    tune_gc()
    if setup_only:
        return None

    def dispatcher(on_outcome: Any) -> Dispatcher:
        return Dispatcher(
            OneTurnTransport(), on_outcome, lanes_per_host=64, max_in_flight=64,
            clock=time.perf_counter,
        )  # fmt: skip

    pipeline = Pipeline(
        store=OneAccountStore(entry),  # type: ignore[arg-type]
        dispatcher_factory=dispatcher,
        writer=None,  # type: ignore[arg-type]  # every delivery succeeds
        metrics=Metrics(CollectorRegistry()),
        topic_kinds={"agent": EventKind.AGENT, "call": EventKind.CALL},
        retry_topics=set(),
        max_buffered=10**9,
    )
    pipeline.on_assigned([("agent", p) for p in range(6)])
    profiler = cProfile.Profile() if profile else None
    cpu0, wall0 = _thread_cpu(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for batch in batches:
        pipeline.on_batch(batch)
        while pipeline.pending > 20_000:  # noqa: ASYNC110  # the service's max_buffered_events
            await asyncio.sleep(0)  # one loop turn: lets the lanes run, costs no timer
    while pipeline.pending:  # noqa: ASYNC110
        await asyncio.sleep(0)
    if profiler is not None:
        profiler.disable()
    cpu, wall = _thread_cpu() - cpu0, time.perf_counter() - wall0
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return {
        "events": events,
        "selected_fraction": fraction,
        "format": fmt,
        "cpu_us_per_event": cpu * 1e6 / events,
        "events_per_second": events / wall,
    }


def bytecodes_per_event(events: int, fraction: float, fmt: str) -> dict[str, float]:
    """Bytecodes run per event, by function (``path:name``), pipeline alone: the
    differential of traced runs of ``events`` and ``3 * events`` events, minus that of
    set-up-only runs (see the module's docstring)."""
    counts: Counter[str] = Counter()
    names: dict[object, str] = {}

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "opcode":
            code = frame.f_code
            name = names.get(code)
            if name is None:
                parts = code.co_filename.rsplit("/stream_wfm/", 1)
                path = "stream_wfm/" + parts[1] if len(parts) == 2 else code.co_filename
                name = names[code] = f"{path}:{code.co_name}"
            counts[name] += 1
        return local

    def start(frame: FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        return local

    def traced(n: int, setup_only: bool) -> Counter[str]:
        counts.clear()
        sys.settrace(start)
        try:
            run_on_loop(measure(n, fraction, fmt, False, setup_only))
        finally:
            sys.settrace(None)
        return Counter(counts)

    small, large = traced(events, False), traced(3 * events, False)
    setup_small, setup_large = traced(events, True), traced(3 * events, True)
    per_event = {
        name: ((large[name] - small[name]) - (setup_large[name] - setup_small[name])) / (2 * events)
        for name in large.keys() | small.keys()
    }
    return {name: n for name, n in per_event.items() if n >= 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--selected-fraction", type=float, default=1.0)
    parser.add_argument("--format", choices=("json", "urlencoded"), default="json")
    parser.add_argument("--profile", action="store_true", help="cProfile (inflates the CPU)")
    parser.add_argument("--setup-only", action="store_true", help="build the messages, no run")
    parser.add_argument("--bytecodes", action="store_true", help="bytecodes per function")
    args = parser.parse_args()
    if args.bytecodes:
        table = bytecodes_per_event(args.events, args.selected_fraction, args.format)
        print(f"{sum(table.values()):.0f} bytecodes per event (pipeline alone), by function:")
        for name, n in sorted(table.items(), key=lambda item: -item[1]):
            print(f"{n:8.1f}  {name}")
        return
    coro = measure(args.events, args.selected_fraction, args.format, args.profile, args.setup_only)
    result = run_on_loop(coro)
    if result is None:
        return
    print(
        f"{result['format']}, selected fraction {result['selected_fraction']:g}: "
        f"{result['cpu_us_per_event']:.2f} us CPU per event, "
        f"{result['events_per_second']:,.0f} events/s (loop thread, no I/O)"
    )


if __name__ == "__main__":
    gc.collect()
    main()
