"""Dead-letter tools against the real broker and the real service: list with filters, the
CLI, dry run, and redrive through the normal pipeline with the current config."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from stream_wfm.cli.main import main
from stream_wfm.kafka.config import reader_config
from stream_wfm.retry.dead_letters import DlqEntry, DlqFilter, read_dead_letters
from stream_wfm.retry.records import decode_retry_record
from stream_wfm.retry.redrive import redrive
from stream_wfm.service import Service
from stream_wfm.settings import Settings
from tests.helpers.config import put_config
from tests.helpers.receiver import Received
from tests.helpers.topics import produce, produce_json
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

ACME = "15300002"
GLOBEX = "15300003"
SECRET_V1 = "tenant-secret-v1"
SECRET_V2 = "tenant-secret-v2"


def integration(account_id: str, url: str, secret: str = SECRET_V1) -> dict[str, Any]:
    return {
        "account_id": account_id, "agent_event_url": url, "send_body_as_json": True,
        "agent_login_events": True, "headers": {"X-Tenant": secret}, "max_retries": 0,
    }  # fmt: skip


def login(account_id: str, event_id: str, agent_id: str = "1204571") -> dict[str, Any]:
    return {
        "event_id": event_id, "account_id": account_id, "event_type": "LOGIN",
        "agent_id": agent_id, "date_time": "2026-11-25 09:00:00", "username": "jane.doe",
    }  # fmt: skip


def header(request: Received, name: str) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get(name.lower())


async def dead_letters(settings: Settings, flt: DlqFilter | None = None, **kw: Any) -> Any:
    return await asyncio.to_thread(read_dead_letters, settings, flt or DlqFilter(), **kw)


async def wait_dead_letters(settings: Settings, n: int, timeout: float = 20.0) -> Any:
    """Read the DLQ until it holds ``n`` dead letters (deadline ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        letters = await dead_letters(settings)
        if len(letters) >= n:
            return letters
        if time.monotonic() > deadline:
            raise AssertionError(f"{n} dead letters not seen within {timeout}s: {len(letters)}")
        await asyncio.sleep(0.05)


def topic_values(settings: Settings, topic: str, timeout: float = 10.0) -> list[bytes | None]:
    """Every record value of ``topic`` (read to partition EOF, no group)."""
    consumer = Consumer(reader_config(settings, "test-reader"))
    try:
        meta = consumer.list_topics(timeout=5).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        left, out = set(meta.partitions), []
        deadline = time.monotonic() + timeout
        while left:
            assert time.monotonic() < deadline, f"{topic} not read to the end"
            for msg in consumer.consume(500, 0.05):
                err = msg.error()
                if err is None:
                    out.append(msg.value())
                elif err.code() == KafkaError._PARTITION_EOF:
                    left.discard(msg.partition())
        return out
    finally:
        consumer.close()


def ids(letters: list[DlqEntry]) -> list[str]:
    return [dl.record.event_id for dl in letters]


def set_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """The test settings as STREAM_WFM_* variables, for the CLI."""
    for name in (
        "bootstrap_servers",
        "group_id",
        "agent_events_topic",
        "call_events_topic",
        "config_topic",
        "retry_topic_prefix",
        "dlq_topic",
        "retry_backoff",
    ):
        monkeypatch.setenv(f"STREAM_WFM_{name.upper()}", str(getattr(settings, name)))
    for key, value in settings.kafka.items():
        monkeypatch.setenv(f"STREAM_WFM_KAFKA__{key.replace('.', '_').upper()}", value)
    monkeypatch.setenv("STREAM_WFM_LOG_FORMAT", "json")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`dlq redrive` configures logging (its audit line goes to stderr): give the root
    logger back afterwards, or later tests log to this test's closed capture stream."""
    root, access = logging.getLogger(), logging.getLogger("aiohttp.access")
    handlers, level, access_level = root.handlers[:], root.level, access.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    access.setLevel(access_level)


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_list_filters_by_account_reason_time_and_limit(
    settings_factory: Any,
    receiver_factory: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_factory()
    rec = await receiver_factory(respond=lambda _r: (400, {}))
    put_config(settings, integration(ACME, rec.url("/acme")))
    put_config(settings, integration(GLOBEX, rec.url("/globex")))
    topic = settings.agent_events_topic
    async with Service(settings):
        produce_json(settings, topic, [login(ACME, "acme-1"), login(GLOBEX, "globex-1")])
        produce(settings, topic, [(b"15300002:1", b"{not json")])
        first = await wait_dead_letters(settings, 3)
        split_ms = max(dl.record.dead_lettered_at_ms for dl in first) + 1
        produce_json(settings, topic, [login(ACME, "acme-2", agent_id="1204572")])
        everything = await wait_dead_letters(settings, 4)
    # A record on the DLQ topic that is not a DLQ record is skipped and counted.
    produce(settings, settings.dlq_topic, [(None, b"garbage")])

    letters = await dead_letters(settings)
    assert len(letters) == 4
    assert letters.undecodable == 1
    assert ids(letters)[-1] == "acme-2"  # oldest first
    invalid = [dl for dl in everything if dl.record.reason == "invalid_event"]
    assert len(invalid) == 1
    assert invalid[0].record.account_id is None
    assert invalid[0].record.attempts == 0

    assert ids(await dead_letters(settings, DlqFilter(account_id=ACME))) == ["acme-1", "acme-2"]
    permanent = await dead_letters(settings, DlqFilter(reason="permanent_status"))
    assert sorted(ids(permanent)) == ["acme-1", "acme-2", "globex-1"]
    assert {(dl.record.attempts, dl.record.last_status) for dl in permanent} == {(1, 400)}
    globex = await dead_letters(settings, DlqFilter(account_id=GLOBEX, reason="permanent_status"))
    assert ids(globex) == ["globex-1"]
    assert await dead_letters(settings, DlqFilter(account_id=GLOBEX, reason="invalid_event")) == []
    assert ids(await dead_letters(settings, DlqFilter(since_ms=split_ms))) == ["acme-2"]
    before = await dead_letters(settings, DlqFilter(until_ms=split_ms))
    assert sorted(ids(before)) == sorted(ids(first))
    assert ids(await dead_letters(settings, DlqFilter(), limit=1)) == ["acme-2"]
    assert ids(await dead_letters(settings, DlqFilter(account_id=ACME), limit=1)) == ["acme-2"]

    # The CLI, configured through STREAM_WFM_* variables.
    set_env(monkeypatch, settings)
    code, out, _ = await cli(capsys, "dlq", "list", "--account", ACME, "--json")
    assert code == 0
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [row["event_id"] for row in rows] == ["acme-1", "acme-2"]
    assert rows[0]["reason"] == "permanent_status"
    assert rows[0]["last_error"] == "HTTP 400"
    assert rows[0]["dlq"]["topic"] == settings.dlq_topic
    assert rows[0]["event"]["topic"] == topic

    since = datetime.fromtimestamp(split_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    code, out, _ = await cli(capsys, "dlq", "list", "--since", since, "--json")
    assert [orjson.loads(line)["event_id"] for line in out.splitlines()] == ["acme-2"]
    code, out, _ = await cli(
        capsys, "dlq", "list", "--since", "1h", "--reason", "invalid_event", "--json"
    )
    assert [orjson.loads(line)["reason"] for line in out.splitlines()] == ["invalid_event"]

    code, out, err = await cli(capsys, "dlq", "list")
    assert code == 0
    assert out.splitlines()[0].split()[:4] == ["TIME", "ACCOUNT", "EVENT", "ID"]
    assert "globex-1" in out
    assert "HTTP 400" in out
    assert "4 dead letter(s)" in out
    assert "1 record(s)" in err  # the undecodable one
    assert SECRET_V1 not in out + err


async def test_redrive_delivers_with_current_config_and_keeps_the_dlq(
    settings_factory: Any,
    receiver_factory: Any,
) -> None:
    settings = settings_factory()
    state = {"healthy": False}
    rec = await receiver_factory(respond=lambda _r: (200 if state["healthy"] else 400, {}))
    put_config(settings, integration(ACME, rec.url("/acme")))
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [login(ACME, "evt-1")])
        produce(settings, settings.agent_events_topic, [(b"15300002:1", b"not json")])
        letters = await wait_dead_letters(settings, 2)

        dry = await asyncio.to_thread(redrive, settings, letters, dry_run=True)
        assert (dry.dry_run, dry.planned, dry.redriven, dry.skipped) == (True, 1, 0, 1)
        results = {item["event_id"]: item["result"] for item in dry.items}
        assert results["evt-1"] == "would redrive"
        assert next(r for i, r in results.items() if i != "evt-1").startswith("skipped: invalid")
        assert await asyncio.to_thread(topic_values, settings, settings.retry_topics()[0]) == []

        # The endpoint is fixed and the credential rotated before the redrive.
        state["healthy"] = True
        put_config(settings, integration(ACME, rec.url("/acme"), secret=SECRET_V2))

        def rotated() -> bool:
            entry = service.store.get(ACME)
            return entry is not None and entry.config.headers["X-Tenant"].get_secret_value() == (
                SECRET_V2
            )

        await wait_until(rotated, what="the service sees the rotated header")
        seen: list[tuple[int, int]] = []
        report = await asyncio.to_thread(
            redrive, settings, letters, rate=50, progress=lambda d, t: seen.append((d, t))
        )
        assert (report.dry_run, report.planned, report.redriven, report.skipped) == (
            False, 1, 1, 1)  # fmt: skip
        assert seen[-1] == (2, 2)
        item = next(i for i in report.items if i["event_id"] == "evt-1")
        assert item["result"] == "redriven"
        assert item["account_id"] == ACME
        assert item["dlq"] == letters[[d.record.event_id for d in letters].index("evt-1")].position

        def redelivered(reqs: list[Received]) -> bool:
            return any(header(r, "X-Tenant") == SECRET_V2 for r in reqs)

        reqs = await rec.wait_for(redelivered)
        await wait_until(
            lambda: (
                service.registry.get_sample_value(
                    "stream_wfm_deliveries_total",
                    {"kind": "agent", "outcome": "delivered", "status_class": "2xx"},
                )
                == 1.0
            ),
            what="the delivery is counted",
        )
    attempts = [r for r in reqs if header(r, "X-WFM-Event-Id") == "evt-1"]
    assert [header(r, "X-Tenant") for r in attempts] == [SECRET_V1, SECRET_V2]
    assert attempts[0].body == attempts[1].body

    # Nothing was deleted from the DLQ and nothing new was dead-lettered.
    dlq_values = await asyncio.to_thread(topic_values, settings, settings.dlq_topic)
    assert len(dlq_values) == 2
    retries = await asyncio.to_thread(topic_values, settings, settings.retry_topics()[0])
    assert len(retries) == 1
    record = decode_retry_record(retries[0] or b"")
    assert (record.event_id, record.account_id, record.attempt) == ("evt-1", ACME, 1)
    assert record.last_error == f"redrive of dlq {item['dlq']}"
    for raw in retries + dlq_values:
        assert raw is not None
        assert SECRET_V1.encode() not in raw
        assert SECRET_V2.encode() not in raw


@pytest.mark.usefixtures("restore_logging")
async def test_cli_redrive_dry_run_then_redrive(
    settings_factory: Any,
    receiver_factory: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_factory()
    state = {"healthy": False}
    rec = await receiver_factory(respond=lambda _r: (200 if state["healthy"] else 400, {}))
    put_config(settings, integration(ACME, rec.url("/acme")))
    put_config(settings, integration(GLOBEX, rec.url("/globex")))
    set_env(monkeypatch, settings)
    async with Service(settings):
        produce_json(
            settings, settings.agent_events_topic, [login(ACME, "a-1"), login(GLOBEX, "g-1")]
        )
        await wait_dead_letters(settings, 2)

        code, out, _ = await cli(capsys, "dlq", "redrive", "--account", ACME, "--dry-run")
        assert code == 0
        assert "a-1" in out
        assert "would redrive" in out
        assert "g-1" not in out
        assert "dry run: 1 dead letter(s) would be redriven" in out
        assert await asyncio.to_thread(topic_values, settings, settings.retry_topics()[0]) == []

        state["healthy"] = True
        code, out, err = await cli(capsys, "dlq", "redrive", "--account", ACME, "--rate", "20")
        assert code == 0
        assert "redriven 1, skipped 0" in out
        audit = [orjson.loads(line) for line in err.splitlines() if '"dlq redrive"' in line]
        assert len(audit) == 1
        assert (audit[0]["audit"], audit[0]["redriven"], audit[0]["event_ids"]) == (
            "dlq_redrive", 1, "a-1")  # fmt: skip
        reqs = await rec.wait_for(
            lambda rs: any(
                r.path == "/acme"
                and len([x for x in rs if header(x, "X-WFM-Event-Id") == "a-1"]) == 2
                for r in rs
            )
        )
    assert [header(r, "X-WFM-Event-Id") for r in reqs if r.path == "/globex"] == ["g-1"]
    assert SECRET_V1 not in out + err
