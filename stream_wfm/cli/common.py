"""Helpers shared by the CLI commands."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import NoReturn

from stream_wfm.delivery.transport_factory import TransportNotInstalledError
from stream_wfm.errors import StreamWfmError
from stream_wfm.kafka.embedded import NOT_INSTALLED, EmbeddedBroker, embedded_broker_installed
from stream_wfm.ops.runtime import run_on_loop
from stream_wfm.settings import Settings, load_settings

EMBEDDED_KAFKA_DEFAULTS = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"}


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except StreamWfmError as exc:
        fail(str(exc))


#: Without bootstrap servers and without the embedded broker (e.g. in the container image).
NO_BROKER = f"STREAM_WFM_BOOTSTRAP_SERVERS is not set, and {NOT_INSTALLED}"


def require_bootstrap(settings: Settings) -> Settings:
    if not settings.bootstrap_servers:
        if not embedded_broker_installed():
            fail(NO_BROKER)
        fail(
            "STREAM_WFM_BOOTSTRAP_SERVERS is not set: this command needs the Kafka cluster the "
            "service uses (the embedded broker lives only inside `stream-wfm run`/`demo`)"
        )
    return settings


@contextlib.contextmanager
def broker_for(settings: Settings, announce: bool = True) -> Iterator[Settings]:
    """Yield settings with bootstrap servers: the configured ones, or an embedded broker."""
    if settings.bootstrap_servers:
        yield settings
        return
    if not embedded_broker_installed():
        fail(NO_BROKER)
    with EmbeddedBroker() as broker:
        if announce:
            print(
                f"STREAM_WFM_BOOTSTRAP_SERVERS is not set: started the embedded development "
                f"broker (Tansu, in memory) on {broker.bootstrap_servers}. Not for production.",
                file=sys.stderr,
                flush=True,
            )
        # Tansu completes a group's first join after half of session.timeout.ms (45 s by
        # default): a shorter session makes a local run ready in seconds. Explicit
        # STREAM_WFM_KAFKA__* settings still win.
        kafka = {**EMBEDDED_KAFKA_DEFAULTS, **settings.kafka}
        yield settings.model_copy(
            update={"bootstrap_servers": broker.bootstrap_servers, "kafka": kafka}
        )


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (call inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_async(coro: object) -> None:
    """Run a coroutine on uvloop when installed, else asyncio's default loop.

    A webhook transport whose HTTP client is not installed (an extra left out) ends the
    command with one line naming the extra, as a bad setting does.
    """
    try:
        run_on_loop(coro)  # type: ignore[arg-type]
    except TransportNotInstalledError as exc:
        fail(str(exc))
