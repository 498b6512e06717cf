"""``stream-wfm receiver`` — the demo webhook receiver on its own (docker-compose uses it).

It answers like the demo's receiver (see :mod:`stream_wfm.demo.receiver`: ``/flaky/...``
fails now and then with 503, ``/strict/...`` rejects events without an
``external_agent_id`` with 400, anything else gets 200), logs one line per request
and serves the counts per endpoint on ``GET /``.
"""

from __future__ import annotations

import argparse
import logging

from stream_wfm.cli.common import run_async, settings_or_exit, stop_event_on_signals
from stream_wfm.demo.receiver import DemoReceiver
from stream_wfm.ops.logging import configure_logging

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("receiver", help="serve the demo webhook receiver")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.set_defaults(func=cmd_receiver)


async def _serve(host: str, port: int) -> None:
    stop = stop_event_on_signals()
    receiver = DemoReceiver()
    bound = await receiver.start(host, port)
    log.info("demo receiver listening", extra={"host": host, "port": bound})
    try:
        await stop.wait()
    finally:
        await receiver.close()


def cmd_receiver(args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    run_async(_serve(args.host, args.port))
    return 0
