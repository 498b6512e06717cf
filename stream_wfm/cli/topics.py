"""``stream-wfm topics create`` — create every topic the service uses (idempotent)."""

from __future__ import annotations

import argparse

from confluent_kafka import KafkaException

from stream_wfm.cli.common import fail, require_bootstrap, settings_or_exit
from stream_wfm.kafka.admin import create_topics


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("topics", help="manage the service's topics")
    topics_sub = parser.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser("create", help="create all topics (safe to run again)")
    create.set_defaults(func=cmd_create)


def cmd_create(_args: argparse.Namespace) -> int:
    settings = require_bootstrap(settings_or_exit())
    try:
        results = create_topics(settings)
    except KafkaException as exc:
        fail(f"could not create topics: {exc.args[0]}")
    for topic, status in results:
        print(f"{status:8} {topic}")
    return 0
