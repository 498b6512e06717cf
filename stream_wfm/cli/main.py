"""The ``stream-wfm`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from stream_wfm import __version__
from stream_wfm.cli import bench, config_cmd, console, demo, dlq, receiver, run, topics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-wfm",
        description="Kafka-native webhook delivery for contact-center workforce management.",
    )
    parser.add_argument("--version", action="version", version=f"stream-wfm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (run, topics, config_cmd, dlq, bench, console, demo, receiver):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
