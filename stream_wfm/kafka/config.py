"""librdkafka configuration for every client the service creates.

The service's own defaults come first; ``STREAM_WFM_KAFKA__*`` pass-through
properties are applied over them (docs/contract.md §8).
"""

from __future__ import annotations

import logging
from typing import Any

from stream_wfm.settings import Settings

# librdkafka's own log lines go through Python logging (and so the JSON formatter and its
# redaction) instead of raw "%4|...|CONFWARN|..." lines on stderr.
LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")


def _with_overrides(settings: Settings, defaults: dict[str, Any]) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers or "",
        "logger": LIBRDKAFKA_LOGGER,
        **defaults,
    }
    conf.update(settings.kafka)
    return conf


def common_config(settings: Settings) -> dict[str, Any]:
    return _with_overrides(settings, {"client.id": "stream-wfm"})


def group_consumer_config(settings: Settings) -> dict[str, Any]:
    """The consumer group member that reads input and retry topics."""
    return _with_overrides(
        settings,
        {
            "client.id": "stream-wfm",
            "group.id": settings.group_id,
            "enable.auto.commit": False,  # we commit the lowest unfinished offset ourselves
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # range balances every topic on its own (input and retry topics alike);
            # cooperative-sticky balances only the total count and can leave one member
            # with every input partition and another with only idle retry partitions.
            "partition.assignment.strategy": "range",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            "queued.max.messages.kbytes": 65536,
        },
    )


def reader_config(settings: Settings, client_id: str) -> dict[str, Any]:
    """A consumer that reads topics by assignment only: no group, never commits."""
    return _with_overrides(
        settings,
        {
            "client.id": client_id,
            # librdkafka wants a group id even for assign(); it is never joined or committed.
            "group.id": f"{settings.group_id}.{client_id}.unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        },
    )


def producer_config(settings: Settings, client_id: str = "stream-wfm") -> dict[str, Any]:
    return _with_overrides(
        settings,
        {
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        },
    )
