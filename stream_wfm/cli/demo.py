"""``stream-wfm demo`` — the whole flow on this machine (see :mod:`stream_wfm.demo`)."""

from __future__ import annotations

import argparse
import sys

from stream_wfm.cli.common import fail, run_async, stop_event_on_signals
from stream_wfm.demo.runner import Demo, DemoOptions
from stream_wfm.errors import StreamWfmError
from stream_wfm.ops.logging import configure_logging


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("must be 0 (as fast as possible) or more")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="run everything locally: embedded broker, demo receiver, sample integrations, "
        "replayed events, summary",
    )
    parser.add_argument(
        "--keep-running", action="store_true",
        help="after the summary, keep broker, service and receiver running (Ctrl-C stops)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=_rate, default=DemoOptions.rate, metavar="N",
        help=f"replayed events per second (default {DemoOptions.rate:g}; 0: as fast as possible)",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="show the service's logs")
    parser.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    options = DemoOptions(rate=args.rate, keep_running=args.keep_running, verbose=args.verbose)
    configure_logging("text", "INFO" if options.verbose else "ERROR")
    result: list[int] = []

    async def main() -> None:
        result.append(await Demo(options, sys.stdout, sys.stderr).run(stop_event_on_signals()))

    try:
        run_async(main())
    except StreamWfmError as exc:
        fail(str(exc), code=1)
    return result[0] if result else 1
