"""``stream-wfm config put|get|list|delete|validate|enable`` — integrations on the config topic.

``enable`` re-enables an integration and redrives the dead letters of the failure period
when the service had disabled it (docs/contract.md §10; :mod:`stream_wfm.health.reenable`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from stream_wfm.cli.common import fail, require_bootstrap, settings_or_exit
from stream_wfm.cli.dlq import _positive_rate
from stream_wfm.health.exceptions import NoIntegrationError, ReenableError
from stream_wfm.health.records import iso_utc
from stream_wfm.health.reenable import ReenableResult, reenable
from stream_wfm.integrations.exceptions import ConfigValidationError, FieldError
from stream_wfm.integrations.model import (
    IntegrationConfig,
    config_to_public_dict,
    decode_config_json,
    validate_config,
)
from stream_wfm.integrations.store import ConfigStore, Entry
from stream_wfm.integrations.writer import ConfigWriteError, ConfigWriter
from stream_wfm.kafka.config import producer_config, reader_config
from stream_wfm.ops.logging import configure_logging
from stream_wfm.settings import Settings
from stream_wfm.terminal.progress import ProgressBar

READ_TIMEOUT = 30.0
REDRIVE_RATE = 50.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("config", help="manage integrations on the config topic")
    csub = parser.add_subparsers(dest="config_command", required=True)

    put = csub.add_parser("put", help="validate and write an integration")
    put.add_argument("account_id")
    put.add_argument("--file", required=True, help="JSON file; - reads standard input")
    put.set_defaults(func=cmd_put)

    get = csub.add_parser(
        "get", help="show an integration (header values and signing secrets masked)"
    )
    get.add_argument("account_id")
    get.add_argument(
        "--show-secrets", action="store_true", help="print header values and signing secrets"
    )
    get.set_defaults(func=cmd_get)

    lst = csub.add_parser("list", help="list integrations")
    lst.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    lst.set_defaults(func=cmd_list)

    delete = csub.add_parser("delete", help="delete an integration (writes a tombstone)")
    delete.add_argument("account_id")
    delete.set_defaults(func=cmd_delete)

    validate = csub.add_parser("validate", help="validate a config file without writing")
    validate.add_argument("--file", required=True, help="JSON file; - reads standard input")
    validate.set_defaults(func=cmd_validate)

    enable = csub.add_parser(
        "enable",
        help="enable an integration again; if the service disabled it, redrive the dead "
        "letters of its failure period",
    )
    enable.add_argument("account_id")
    enable.add_argument("--no-redrive", action="store_true", help="redrive no dead letters")
    enable.add_argument(
        "--rate", metavar="N", type=_positive_rate, default=REDRIVE_RATE,
        help=f"redrive at most N dead letters per second (default {REDRIVE_RATE:g})",
    )  # fmt: skip
    enable.set_defaults(func=cmd_enable)


def _read_json(path: str) -> tuple[Any, list[FieldError]]:
    """The decoded file and the errors of its duplicate keys."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    try:
        return decode_config_json(raw)
    except ValueError as exc:
        fail(f"{path} is not valid JSON: {exc}")


def _validated(decoded: tuple[Any, list[FieldError]], account_id: str | None) -> IntegrationConfig:
    data, duplicates = decoded
    if account_id is not None and isinstance(data, dict) and "account_id" not in data:
        data = {**data, "account_id": account_id}
    try:
        return validate_config(data, account_id, duplicates)
    except ConfigValidationError as exc:
        for problem in exc.field_errors:
            print(f"  {problem}", file=sys.stderr)
        fail(f"invalid config, nothing written: {exc}")


def cmd_validate(args: argparse.Namespace) -> int:
    config = _validated(_read_json(args.file), None)
    print(f"valid integration config for account {config.account_id}")
    return 0


def _writer(settings: Settings) -> ConfigWriter:
    writer = ConfigWriter(settings.config_topic, producer_config(settings, "stream-wfm-admin"))
    try:
        writer.check_topic()
    except ConfigWriteError as exc:
        fail(str(exc))
    return writer


def cmd_put(args: argparse.Namespace) -> int:
    config = _validated(_read_json(args.file), args.account_id)
    settings = require_bootstrap(settings_or_exit())
    try:
        with _writer(settings) as writer:
            writer.put(config)
    except ConfigWriteError as exc:
        fail(str(exc))
    print(f"saved integration for account {config.account_id} to {settings.config_topic}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    settings = require_bootstrap(settings_or_exit())
    try:
        with _writer(settings) as writer:
            writer.delete(args.account_id)
    except ConfigWriteError as exc:
        fail(str(exc))
    print(f"deleted integration for account {args.account_id} (tombstone written)")
    return 0


def _load_store(settings: Settings) -> ConfigStore[Entry]:
    store = ConfigStore(
        settings.config_topic, reader_config(settings, "stream-wfm-admin"), entry_type=Entry
    )
    store.start()
    if not store.wait_ready(READ_TIMEOUT):
        store.stop()
        fail(f"could not read the config topic: {store.status}")
    store.stop()
    return store


def cmd_get(args: argparse.Namespace) -> int:
    settings = require_bootstrap(settings_or_exit())
    entry = _load_store(settings).get(args.account_id)
    if entry is None:
        fail(f"no integration for account {args.account_id}", code=1)
    public = config_to_public_dict(entry.config, show_secrets=args.show_secrets)
    print(orjson.dumps(public, option=orjson.OPT_INDENT_2).decode())
    return 0


def _selection(config: IntegrationConfig) -> str:
    names = [
        ("agent_states", "states"), ("send_all_agent_states", "all-states"),
        ("agent_login_events", "login"), ("agent_logout_events", "logout"),
        ("end_call_events", "end-call"),
    ]  # fmt: skip
    picked = [label for field, label in names if getattr(config, field)]
    return ",".join(picked) or "-"


def cmd_list(args: argparse.Namespace) -> int:
    settings = require_bootstrap(settings_or_exit())
    entries = _load_store(settings).accounts()
    if args.json:
        for account_id in sorted(entries):
            print(orjson.dumps(config_to_public_dict(entries[account_id].config)).decode())
        return 0
    rows = [("ACCOUNT", "ENABLED", "FORMAT", "EVENTS", "AGENT URL", "CALL URL")]
    for account_id in sorted(entries):
        c = entries[account_id].config
        rows.append((
            account_id, "yes" if c.enabled else "no", "json" if c.send_body_as_json else "url",
            _selection(c), c.agent_event_url or "-", c.call_event_url or "-",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(entries)} integration(s)")
    return 0


def _enabled_summary(result: ReenableResult, redrive: bool) -> str:
    account = result.account_id
    if result.already_enabled:
        return f"integration for account {account} is already enabled: nothing written or redriven"
    done = f"enabled integration for account {account}"
    if not result.was_disabled_by_service:
        return f"{done} (disabled by an operator: nothing to redrive)"
    if not redrive:
        return (
            f"{done} (disabled by the service: endpoint failing); nothing redriven (--no-redrive)"
        )
    if result.failing_since is None:
        return (
            f"{done}; its failure period is unknown (no notice, no disabled_at): nothing redriven"
        )
    return (
        f"{done}; redriven {result.redriven} dead letter(s) of its failure period since "
        f"{iso_utc(result.failing_since)}, skipped {result.skipped}; the running service "
        "delivers them with the current config"
    )


def cmd_enable(args: argparse.Namespace) -> int:
    settings = require_bootstrap(settings_or_exit())
    configure_logging(settings.log_format, settings.log_level)  # the audit lines go to stderr
    bar = ProgressBar("redrive")
    try:
        result = reenable(
            settings, args.account_id, redrive=not args.no_redrive, rate=args.rate,
            progress=bar.update,
        )  # fmt: skip
    except NoIntegrationError as exc:
        bar.close()
        fail(str(exc), code=1)
    except ReenableError as exc:
        bar.close()
        fail(str(exc), code=1 if exc.enabled else 2)
    bar.close()
    print(_enabled_summary(result, redrive=not args.no_redrive))
    return 0
