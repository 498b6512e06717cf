"""``stream-wfm dlq list|redrive`` — inspect and re-deliver dead letters.

Both commands take the same filters: ``--account``, ``--reason``, ``--since``,
``--until`` (on the time the event was dead-lettered; ISO-8601 such as
``2026-11-25T10:00:00Z``, a time without offset is UTC, or ``30m``/``2h``/``7d``
ago) and ``--limit`` (the newest N matches). ``redrive`` writes retry records
that the running service delivers with the account's current config; see
:mod:`stream_wfm.retry.redrive`.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import orjson

from stream_wfm.cli.common import fail, require_bootstrap, settings_or_exit
from stream_wfm.ops.logging import configure_logging
from stream_wfm.retry.dead_letters import (
    DlqEntries,
    DlqEntry,
    DlqFilter,
    dead_letter_to_dict,
    read_dead_letters,
)
from stream_wfm.retry.exceptions import DlqError, RedriveError
from stream_wfm.retry.redrive import RedriveReport, redrive
from stream_wfm.settings import Settings
from stream_wfm.terminal.progress import ProgressBar

_RELATIVE = re.compile(r"^([0-9]+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TIME_HELP = "ISO-8601 (2026-11-25T10:00:00Z; no offset means UTC) or an age: 30m, 2h, 7d"


def parse_time(text: str, now: Callable[[], float] = time.time) -> int:
    """``text`` as unix milliseconds: ISO-8601 or a relative age (``90s``, ``30m``, ``2h``,
    ``7d`` ago). Raises :class:`argparse.ArgumentTypeError`."""
    value = text.strip()
    relative = _RELATIVE.match(value)
    if relative is not None:
        seconds = int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
        return int((now() - seconds) * 1000)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: {TIME_HELP}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of records per second")
    return value


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account", metavar="ID", help="only this account")
    parser.add_argument("--reason", metavar="R", help="only this reason (e.g. permanent_status)")
    parser.add_argument(
        "--since", metavar="T", type=parse_time, help=f"dead-lettered at or after T: {TIME_HELP}"
    )
    parser.add_argument("--until", metavar="T", type=parse_time, help="dead-lettered before T")
    parser.add_argument(
        "--limit", metavar="N", type=_positive_int, help="only the newest N matches"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("dlq", help="inspect and re-deliver dead letters")
    dsub = parser.add_subparsers(dest="dlq_command", required=True)

    lst = dsub.add_parser("list", help="list dead letters (oldest first)")
    _add_filters(lst)
    lst.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    lst.set_defaults(func=cmd_list)

    red = dsub.add_parser(
        "redrive",
        help="re-deliver dead letters through the service (current config; DLQ unchanged)",
    )
    _add_filters(red)
    red.add_argument(
        "--rate", metavar="N", type=_positive_rate, help="at most N records per second"
    )
    red.add_argument(
        "--dry-run", action="store_true", help="show what would be redriven; write nothing"
    )
    red.set_defaults(func=cmd_redrive)


def _filter(args: argparse.Namespace) -> DlqFilter:
    return DlqFilter(
        account_id=args.account, reason=args.reason, since_ms=args.since, until_ms=args.until
    )


def _read(settings: Settings, args: argparse.Namespace) -> list[DlqEntry]:
    try:
        letters = read_dead_letters(settings, _filter(args), limit=args.limit)
    except DlqError as exc:
        fail(str(exc))
    if isinstance(letters, DlqEntries) and letters.undecodable:
        print(
            f"note: {letters.undecodable} record(s) of {settings.dlq_topic} are not DLQ records "
            "and were skipped",
            file=sys.stderr,
        )
    return letters


def format_time(ms: int) -> str:
    """Unix milliseconds as ``2026-11-25T10:00:00Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _one_line(text: str | None, limit: int = 60) -> str:
    if not text:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def cmd_list(args: argparse.Namespace) -> int:
    settings = require_bootstrap(settings_or_exit())
    letters = _read(settings, args)
    if args.json:
        for dead_letter in letters:
            print(orjson.dumps(dead_letter_to_dict(dead_letter)).decode())
        return 0
    rows = [("TIME", "ACCOUNT", "EVENT ID", "KIND", "REASON", "ATTEMPTS", "LAST ERROR")]
    for dl in letters:
        r = dl.record
        rows.append((
            format_time(r.dead_lettered_at_ms), r.account_id or "-", r.event_id, r.kind or "-",
            r.reason, str(r.attempts), _one_line(r.last_error or r.detail),
        ))  # fmt: skip
    _table(rows)
    print(f"{len(letters)} dead letter(s) in {settings.dlq_topic}")
    return 0


def _print_plan(report: RedriveReport) -> None:
    rows = [("DLQ POSITION", "ACCOUNT", "EVENT ID", "REASON", "RESULT")]
    for item in report.items:
        rows.append((
            item["dlq"], item["account_id"] or "-", item["event_id"], item["reason"],
            item["result"],
        ))  # fmt: skip
    _table(rows)


def cmd_redrive(args: argparse.Namespace) -> int:
    settings = require_bootstrap(settings_or_exit())
    configure_logging(settings.log_format, settings.log_level)  # the audit line goes to stderr
    letters = _read(settings, args)
    retry_topic = settings.retry_topics()[0]
    if args.dry_run:
        report = redrive(settings, letters, dry_run=True)
        if report.items:
            _print_plan(report)
        print(
            f"dry run: {report.planned} dead letter(s) would be redriven to {retry_topic}, "
            f"{report.skipped} skipped; nothing written"
        )
        return 0
    print(f"redriving {len(letters)} dead letter(s) from {settings.dlq_topic} to {retry_topic}")
    bar = ProgressBar("redrive")
    try:
        report = redrive(
            settings, letters, rate=args.rate, progress=lambda done, total: bar.update(done, total)
        )
    except RedriveError as exc:
        bar.close()
        fail(str(exc), code=1)
    except DlqError as exc:
        bar.close()
        fail(str(exc))
    bar.close()
    print(
        f"redriven {report.redriven}, skipped {report.skipped} (invalid events); "
        f"the running service delivers them with the current config. "
        f"{settings.dlq_topic} is unchanged."
    )
    return 0
