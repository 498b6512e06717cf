"""``stream-wfm run`` — the service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from typing import NoReturn

from confluent_kafka import KafkaError, KafkaException

from stream_wfm.cli.common import (
    broker_for,
    fail,
    run_async,
    settings_or_exit,
    stop_event_on_signals,
)
from stream_wfm.kafka.admin import create_topics
from stream_wfm.ops.logging import configure_logging
from stream_wfm.ops.runtime import tune_gc
from stream_wfm.service import Service
from stream_wfm.settings import ENV_PREFIX, Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the service (settings from STREAM_WFM_* variables)")
    parser.set_defaults(func=cmd_run)


def _invalid_kafka_setting(exc: KafkaException, settings: Settings) -> NoReturn:
    """librdkafka refused a client property: one line naming the pass-through setting(s)."""
    text = exc.args[0].str() if isinstance(exc.args[0], KafkaError) else str(exc)
    named = [
        f"{ENV_PREFIX}KAFKA__{prop.replace('.', '_').upper()}"
        for prop in settings.kafka
        if re.search(rf"(?<![\w.]){re.escape(prop)}(?![\w.])", text)
    ]
    hint = f" (set by {', '.join(named)})" if named else ""
    fail(f"invalid Kafka setting: {text}{hint}")


def _is_config_error(exc: KafkaException) -> bool:
    err = exc.args[0] if exc.args else None
    return isinstance(err, KafkaError) and err.code() == KafkaError._INVALID_ARG


async def _serve(settings: Settings) -> None:
    stop = stop_event_on_signals()
    try:
        service = Service(settings)  # creates the producer: librdkafka checks the properties
    except KafkaException as exc:
        if _is_config_error(exc):
            _invalid_kafka_setting(exc, settings)
        raise
    async with service:
        tuner = asyncio.get_running_loop().create_task(_tune_gc_once_loaded(service))
        try:
            await service.run(stop)
        finally:
            tuner.cancel()


async def _tune_gc_once_loaded(service: Service) -> None:
    """Once the config is loaded: freeze it, collect rarely, trim (see ops/runtime.py)."""
    while not await asyncio.to_thread(service.store.wait_ready, 1.0):
        pass
    tune_gc()


def cmd_run(_args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    embedded = not settings.bootstrap_servers
    with broker_for(settings) as settings:
        if embedded:
            try:
                created = create_topics(settings)
            except KafkaException as exc:
                if _is_config_error(exc):
                    _invalid_kafka_setting(exc, settings)
                raise
            for topic, status in created:
                log.info("topic ready", extra={"topic": topic, "status": status})
        run_async(_serve(settings))
    return 0
