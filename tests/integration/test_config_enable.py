"""`stream-wfm config enable` (docs/contract.md §10) as a real process against the real
broker and the real service: the integration is enabled again and the dead letters of its
failure period are redriven once each, oldest first, and delivered."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_wfm.events import EventKind
from stream_wfm.health.records import Notice, encode_notice, iso_utc
from stream_wfm.retry.records import DlqRecord, SourceRecord, decode_retry_record, encode_dlq_record
from stream_wfm.settings import Settings
from tests.helpers.config import put_config
from tests.helpers.receiver import Receiver
from tests.helpers.service import ServiceUnderTest
from tests.helpers.settings import settings_env
from tests.helpers.topics import produce, read_topic
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

ACME = "15300002"
GLOBEX = "15300003"
AGENT = "1204571"
SECRET = "Basic c2VjcmV0LW9mLXRoZS1lbmFibGUtdGVzdA=="
HOUR = 3600.0
DAY = 24 * HOUR


def make_settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Test settings whose notices and health topics are the test's own too."""
    tag = uuid.uuid4().hex[:8]
    return settings_factory(notices_topic=f"t-{tag}-notices", health_topic=f"t-{tag}-health")


def integration(account_id: str, url: str, **changes: Any) -> dict[str, Any]:
    return {
        "account_id": account_id, "agent_event_url": url, "send_body_as_json": True,
        "agent_login_events": True, "headers": {"Authorization": SECRET}, "max_retries": 0,
        **changes,
    }  # fmt: skip


def disabled_by_service(account_id: str, url: str, disabled_at: float) -> dict[str, Any]:
    return integration(
        account_id, url, enabled=False, disabled_reason="endpoint_failing",
        disabled_at=iso_utc(disabled_at),
    )  # fmt: skip


def write_notice(settings: Settings, account_id: str, failing_since: float, at: float) -> None:
    notice = Notice(
        notice_id=str(uuid.uuid4()), account_id=account_id, kind="agent",
        url="https://wfm.example.com/agent", failing_since=iso_utc(failing_since),
        last_error="HTTP 503", at=iso_utc(at),
    )  # fmt: skip
    produce(settings, settings.notices_topic, [(account_id.encode(), encode_notice(notice))])


def write_dead_letters(
    settings: Settings, letters: list[tuple[str, str, str, float, float]]
) -> None:
    """``(account_id, event_id, reason, dead-lettered at, input record's time)`` each, in
    this order; the input records are agent logins of one agent, offsets in input order."""
    records: list[tuple[bytes | None, bytes | None]] = []
    for account_id, event_id, reason, at, source_at in letters:
        key = f"{account_id}:{AGENT}".encode()
        login = {
            "event_id": event_id, "account_id": account_id, "event_type": "LOGIN",
            "agent_id": AGENT, "date_time": "2026-12-07 09:00:00", "username": "jane.doe",
        }  # fmt: skip
        source = SourceRecord(
            settings.agent_events_topic, 0, int(source_at * 1000) % 1_000_000_000, key,
            orjson.dumps(login), int(source_at * 1000),
        )  # fmt: skip
        exhausted = reason == "retries_exhausted"
        record = DlqRecord(
            source=source, account_id=account_id, event_id=event_id, kind=EventKind.AGENT,
            attempts=1 if exhausted else 0, reason=reason, detail=None,
            last_error="HTTP 503" if exhausted else None, last_status=503 if exhausted else None,
            first_attempt_at_ms=int(at * 1000) if exhausted else None,
            dead_lettered_at_ms=int(at * 1000),
        )  # fmt: skip
        records.append((key, encode_dlq_record(record)))
    produce(settings, settings.dlq_topic, records)


async def enable(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``stream-wfm config enable ...`` as a process, with exactly the settings' environment
    (without blocking the event loop the receiver runs on)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("STREAM_WFM_")}
    env.update(settings_env(settings))
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "stream_wfm", "config", "enable", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def current_config(settings: Settings, account_id: str) -> dict[str, Any]:
    """The account's newest record on the config topic."""
    values = [
        msg.value() for msg in read_topic(settings, settings.config_topic)
        if msg.key() == account_id.encode()
    ]  # fmt: skip
    config: dict[str, Any] = orjson.loads(values[-1])
    return config


def redriven(settings: Settings) -> list[tuple[str | None, str]]:
    """``(account_id, event_id)`` of every record on the first retry tier, in the order
    written (all of one agent: one partition)."""
    records = sorted(
        read_topic(settings, settings.retry_topics()[0]), key=lambda m: (m.partition(), m.offset())
    )
    decoded = [decode_retry_record(msg.value()) for msg in records]
    assert all(r.attempt == 1 for r in decoded)
    return [(r.account_id, r.event_id) for r in decoded]


async def test_enable_redrives_the_failure_period_once_each_oldest_first(
    settings_factory: Callable[..., Settings],
    receiver_factory: Callable[..., Any],
    service_process: Callable[..., ServiceUnderTest],
    tmp_path: Path,
) -> None:
    settings = make_settings(settings_factory)
    receiver: Receiver = await receiver_factory()
    now = time.time()
    failing_since, disabled_at = now - 2 * HOUR, now - HOUR
    put_config(settings, disabled_by_service(ACME, receiver.url("/acme"), disabled_at))
    put_config(settings, integration(GLOBEX, receiver.url("/globex")))
    write_notice(settings, ACME, failing_since=now - 10 * DAY, at=now - 7 * DAY)  # an older period
    write_notice(settings, ACME, failing_since=failing_since, at=disabled_at)
    source = now - 3 * HOUR  # the input records' times: e-1, e-2, e-3 in that order
    write_dead_letters(settings, [
        (ACME, "e-2", "endpoint_disabled", now - 30 * 60, source + 2),
        (ACME, "e-old", "endpoint_disabled", now - 5 * HOUR, source - HOUR),  # before the period
        (ACME, "e-3", "endpoint_disabled", now - 20 * 60, source + 3),
        (ACME, "e-perm", "permanent_status", now - 25 * 60, source),  # not a redriven reason
        (GLOBEX, "e-globex", "endpoint_disabled", now - 25 * 60, source),  # another account
        (ACME, "e-1", "retries_exhausted", now - 90 * 60, source + 1),
        (ACME, "e-2", "endpoint_disabled", now - 10 * 60, source + 2),  # e-2 once more
        (ACME, "e-later", "endpoint_disabled", now + HOUR, source + 4),  # after the re-enable
    ])  # fmt: skip
    service = await service_process(settings).wait_ready()

    done = await enable(settings, tmp_path, ACME)
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()
    assert len(summary) == 1, done.stdout
    assert f"enabled integration for account {ACME}" in summary[0]
    assert "redriven 3" in summary[0]
    assert "skipped 1" in summary[0]
    assert iso_utc(failing_since) in summary[0]
    assert SECRET not in done.stdout + done.stderr

    config = current_config(settings, ACME)
    assert (config["enabled"], config["disabled_reason"], config["disabled_at"]) == (
        True, None, None,
    )  # fmt: skip
    assert config["agent_event_url"] == receiver.url("/acme")
    assert config["headers"] == {"Authorization": SECRET}
    assert redriven(settings) == [(ACME, "e-1"), (ACME, "e-2"), (ACME, "e-3")]

    requests = await receiver.wait_count(3)
    retry_topic = settings.retry_topics()[0]
    await wait_until(
        lambda: service.metric("stream_wfm_events_consumed_total", topic=retry_topic) >= 3,
        20, "the service consumed the redriven records",
    )  # fmt: skip
    assert [(r.path, r.headers.get("X-WFM-Event-Id")) for r in receiver.requests] == [
        ("/acme", "e-1"), ("/acme", "e-2"), ("/acme", "e-3"),
    ]  # fmt: skip
    assert [r.json()["event_type"] for r in requests] == ["LOGIN"] * 3
    assert service.metric("stream_wfm_dead_letters_total") == 0

    # Once more: already enabled, nothing written, nothing redriven.
    again = await enable(settings, tmp_path, ACME)
    assert again.returncode == 0, again.stderr
    assert "already enabled" in again.stdout
    assert len(again.stdout.strip().splitlines()) == 1
    assert redriven(settings) == [(ACME, "e-1"), (ACME, "e-2"), (ACME, "e-3")]
    assert [m.value() for m in read_topic(settings, settings.config_topic)].count(None) == 0
    assert len(read_topic(settings, settings.config_topic)) == 3  # ACME twice, GLOBEX once


async def test_no_redrive_and_operator_disabled_only_enable(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(settings_factory)
    now = time.time()
    url = "https://wfm.example.com/agent"
    put_config(settings, disabled_by_service(ACME, url, now - HOUR))
    put_config(settings, integration(GLOBEX, url, enabled=False))  # disabled by an operator
    write_notice(settings, ACME, failing_since=now - 2 * HOUR, at=now - HOUR)
    write_dead_letters(settings, [
        (ACME, "acme-1", "endpoint_disabled", now - 30 * 60, now - 40 * 60),
        (GLOBEX, "globex-1", "retries_exhausted", now - 30 * 60, now - 40 * 60),
    ])  # fmt: skip

    done = await enable(settings, tmp_path, ACME, "--no-redrive")
    assert done.returncode == 0, done.stderr
    assert "--no-redrive" in done.stdout
    done = await enable(settings, tmp_path, GLOBEX, "--rate", "5")
    assert done.returncode == 0, done.stderr
    assert "disabled by an operator" in done.stdout

    for account_id in (ACME, GLOBEX):
        config = current_config(settings, account_id)
        assert (config["enabled"], config["disabled_reason"], config["disabled_at"]) == (
            True, None, None,
        )  # fmt: skip
    assert redriven(settings) == []


async def test_enable_without_an_integration_is_a_one_line_error(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(settings_factory)
    done = await enable(settings, tmp_path, ACME)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == f"error: no integration for account {ACME}"
    assert read_topic(settings, settings.config_topic) == []
