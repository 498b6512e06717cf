"""``stream-wfm run`` — the service."""

from __future__ import annotations

import argparse
import logging

from stream_wfm.cli.common import broker_for, run_async, settings_or_exit, stop_event_on_signals
from stream_wfm.kafka.admin import create_topics
from stream_wfm.ops.logging import configure_logging
from stream_wfm.service import Service
from stream_wfm.settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the service (settings from STREAM_WFM_* variables)")
    parser.set_defaults(func=cmd_run)


async def _serve(settings: Settings) -> None:
    stop = stop_event_on_signals()
    async with Service(settings) as service:
        await service.run(stop)


def cmd_run(_args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    embedded = not settings.bootstrap_servers
    with broker_for(settings) as settings:
        if embedded:
            for topic, status in create_topics(settings):
                log.info("topic ready", extra={"topic": topic, "status": status})
        run_async(_serve(settings))
    return 0
