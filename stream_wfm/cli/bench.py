"""``stream-wfm bench`` — measure the real service against its baselines, in one run."""

from __future__ import annotations

import argparse
import json
import sys

from stream_wfm.bench.harness import BenchOptions
from stream_wfm.bench.report import format_table
from stream_wfm.bench.runner import run_bench
from stream_wfm.cli.common import fail
from stream_wfm.terminal.progress import Phases


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = BenchOptions()
    parser = sub.add_parser(
        "bench",
        help="benchmark the real service against raw Kafka and HTTP baselines",
        description=(
            "Starts an embedded broker, a minimal receiver and `stream-wfm run`, measures "
            "throughput, CPU per event, latency, start-up and memory, and the raw baselines "
            "(POST loop of each HTTP client, confluent-kafka consume) in the same run."
        ),
    )
    parser.add_argument(
        "--events", type=_positive_int, default=defaults.events,
        help=f"events pre-produced for the delivery runs (default {defaults.events})",
    )  # fmt: skip
    parser.add_argument(
        "--filtered-events", type=_positive_int, default=None,
        help="custom-state events for the filter run (default 3 x --events)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=_positive_float, default=defaults.rate,
        help=f"events/s of the latency run (default {defaults.rate:g})",
    )  # fmt: skip
    parser.add_argument(
        "--duration", type=_positive_float, default=defaults.duration,
        help=f"seconds of each raw POST loop and of the rate run (default {defaults.duration:g})",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", type=_positive_int, default=defaults.concurrency,
        help=f"concurrent requests, service and raw loops (default {defaults.concurrency})",
    )  # fmt: skip
    parser.add_argument(
        "--selected-fraction",
        type=_fraction,
        default=defaults.selected_fraction,
        help="fraction of the delivery run's events in default (selected) states; the rest are "
        "custom states the integration filters out (default 1)",
    )
    parser.add_argument(
        "--format", choices=("json", "urlencoded"), default=defaults.format,
        help="webhook format of the main delivery run (the other is measured too)",
    )  # fmt: skip
    parser.add_argument(
        "--transport", default=None,
        help="the service's HTTP transport (STREAM_WFM_HTTP_TRANSPORT); default: its default",
    )  # fmt: skip
    parser.add_argument(
        "--integrations", type=int, default=defaults.integrations,
        help=f"integrations loaded for the RSS run; 0 skips it (default {defaults.integrations})",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    options = BenchOptions(
        events=args.events,
        filtered_events=args.filtered_events,
        rate=args.rate,
        duration=args.duration,
        concurrency=args.concurrency,
        selected_fraction=args.selected_fraction,
        format=args.format,
        transport=args.transport,
        integrations=max(0, args.integrations),
    )
    progress = Phases("bench", sys.stderr, enabled=not args.quiet)
    try:
        result = run_bench(options, progress)
    except (RuntimeError, OSError) as exc:
        progress.close()
        fail(f"bench failed: {exc}")
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_table(result))
    return 0
