"""Waiting for a topic to exist before reading it by assignment, without creating it.

The config store and the console's health feed read a whole topic from the beginning,
by assignment; until the topic exists they wait (and say so), and a plain
``list_topics()`` never auto-creates it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException

log = logging.getLogger(__name__)

__all__ = ["wait_for_partitions"]


def wait_for_partitions(
    consumer: Consumer,
    topic: str,
    stop: threading.Event,
    *,
    status: Callable[[str], None],
    missing: str,
    missing_log: str,
    list_timeout: float,
    recheck: float,
    after_error: float = 1.0,
) -> list[int] | None:
    """``topic``'s partitions once it exists; None when ``stop`` is set first.

    Meanwhile ``status`` is told why not (``missing``, or the broker's error), and
    ``missing_log`` is logged once as a warning. Checks every ``recheck`` seconds (every
    ``after_error`` seconds after a failed request), each within ``list_timeout``."""
    warned = False
    while not stop.is_set():
        try:
            topics = consumer.list_topics(timeout=list_timeout).topics
        except KafkaException as exc:
            status(f"broker not reachable: {exc.args[0]}")
            stop.wait(after_error)
            continue
        meta = topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return sorted(meta.partitions)
        status(missing)
        if not warned:
            log.warning(missing_log, extra={"topic": topic})
            warned = True
        stop.wait(recheck)
    return None
