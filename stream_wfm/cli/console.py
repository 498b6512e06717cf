"""``stream-wfm console`` — the admin console (docs/contract.md §9)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from stream_wfm.cli.common import (
    fail,
    require_bootstrap,
    run_async,
    settings_or_exit,
    stop_event_on_signals,
)
from stream_wfm.console.app import create_app
from stream_wfm.console.changes import ConfigChanges
from stream_wfm.integrations.store import ConfigStore, Entry
from stream_wfm.integrations.writer import ConfigWriteError, ConfigWriter
from stream_wfm.kafka.config import producer_config, reader_config
from stream_wfm.ops.logging import configure_logging
from stream_wfm.service import make_transport
from stream_wfm.settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "console",
        help="serve the admin console (needs STREAM_WFM_CONSOLE_PASSWORD)",
        description=(
            "Serve the admin console on STREAM_WFM_CONSOLE_HOST:STREAM_WFM_CONSOLE_PORT "
            "(default 127.0.0.1:9109). Sign in as STREAM_WFM_CONSOLE_USERNAME (default admin) "
            "with STREAM_WFM_CONSOLE_PASSWORD; set STREAM_WFM_CONSOLE_SECRET_KEY (at least 32 "
            "characters) to keep sessions valid across restarts. Behind an HTTPS reverse "
            "proxy, list its address in STREAM_WFM_CONSOLE_TRUSTED_PROXIES."
        ),
    )
    parser.set_defaults(func=cmd_console)


def cmd_console(_args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    password = settings.console_password
    if password is None or not password.get_secret_value():
        fail(
            "STREAM_WFM_CONSOLE_PASSWORD is not set: the console refuses to start without a "
            "password (sign in as STREAM_WFM_CONSOLE_USERNAME, default admin)"
        )
    require_bootstrap(settings)
    configure_logging(settings.log_format, settings.log_level)
    writer = ConfigWriter(settings.config_topic, producer_config(settings, "stream-wfm-console"))
    try:
        writer.check_topic()
    except ConfigWriteError as exc:
        fail(str(exc))
    run_async(_serve(settings, writer))
    return 0


async def _serve(settings: Settings, writer: ConfigWriter) -> None:
    stop = stop_event_on_signals()
    changes = ConfigChanges()
    store = ConfigStore(
        settings.config_topic,
        reader_config(settings, "stream-wfm-console"),
        entry_type=Entry,
        on_change=changes.notify,
    )
    transport = make_transport(settings)  # test events go out as the service sends webhooks
    app = create_app(settings, store, writer, transport, changes=changes)
    runner = web.AppRunner(app, access_log=None)
    store.start()
    try:
        await runner.setup()
        await web.TCPSite(runner, settings.console_host, settings.console_port).start()
        port = next(iter(runner.addresses))[1]
        print(
            f"stream-wfm console on http://{settings.console_host}:{port}/ "
            f"(sign in as {settings.console_username})",
            file=sys.stderr,
            flush=True,
        )
        log.info(
            "console started",
            extra={
                "host": settings.console_host,
                "port": port,
                "config_topic": settings.config_topic,
            },
        )
        await stop.wait()
        log.info("console stopping")
    finally:
        await runner.cleanup()
        await transport.close()
        await asyncio.to_thread(store.stop)
        await asyncio.to_thread(writer.close)
