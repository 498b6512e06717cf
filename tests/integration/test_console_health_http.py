"""Endpoint health in the admin console over HTTP, against the real broker
(docs/contract.md §10, §9): health records on the health topic become each account's
label and the integration page's details; a form save keeps or clears the service's
``disabled_reason``; ``Re-enable`` is CSRF-protected, runs once per account in the
background, shows its progress and its result."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from stream_wfm.console.jobs import ReenableFn
from stream_wfm.console.state import CONSOLE
from stream_wfm.console.state import Console as ConsoleState
from stream_wfm.events import EventKind
from stream_wfm.health.records import (
    EndpointReport,
    HealthRecord,
    encode_health_record,
    iso_utc,
)
from stream_wfm.health.reenable import ReenableResult
from stream_wfm.retry.records import (
    DlqRecord,
    SourceRecord,
    decode_retry_record,
    encode_dlq_record,
)
from stream_wfm.settings import Settings
from tests.helpers.config import put_config
from tests.helpers.topics import produce, read_topic
from tests.helpers.waiting import wait_until
from tests.integration.test_console_http import PASSWORD, Console, Stop, start_console

pytestmark = pytest.mark.integration

SECRET = "Basic aGVhbHRoOnNlY3JldC12YWx1ZQ=="  # a saved header value: never on a page
DISABLED_AT = "2026-12-07T10:00:00Z"
Factory = Callable[..., Any]


@pytest.fixture
async def health_console(settings_factory: Callable[..., Settings]) -> AsyncIterator[Factory]:
    """Consoles on settings with their own health and notices topics; keyword arguments
    go to ``create_app`` (e.g. ``reenable``)."""
    stops: list[Stop] = []

    async def make(**app_options: Any) -> Console:
        name = f"h-{uuid.uuid4().hex[:8]}"
        settings = settings_factory(
            console_password=PASSWORD,
            health_topic=f"{name}-health",
            notices_topic=f"{name}-notices",
        )
        console, stop = await start_console(settings, **app_options)
        stops.append(stop)
        return console

    yield make
    for stop in reversed(stops):
        await stop()


def report(
    state: str = "closed",
    *,
    attempts: int = 0,
    failures: int = 0,
    deferred: int = 0,
    success_ago: float | None = None,
    failure_ago: float | None = None,
    error: str | None = None,
    failing_for: float | None = None,
) -> EndpointReport:
    now = time.time()
    return EndpointReport(
        state=state,  # type: ignore[arg-type]
        attempts_5m=attempts,
        failures_5m=failures,
        deferred_5m=deferred,
        last_success_at=None if success_ago is None else iso_utc(now - success_ago),
        last_failure_at=None if failure_ago is None else iso_utc(now - failure_ago),
        last_error=error,
        failing_since=None if failing_for is None else iso_utc(now - failing_for),
    )


def publish(
    console: Console, account_id: str, instance: str, age: float = 2, **endpoints: EndpointReport
) -> HealthRecord:
    """One instance's health record, written ``age`` seconds ago, on the health topic."""
    record = HealthRecord(account_id, instance, iso_utc(time.time() - age), dict(endpoints))
    settings = console.settings
    produce(settings, settings.health_topic, [(record.key.encode(), encode_health_record(record))])
    return record


def state_of(console: Console) -> ConsoleState:
    """The console application's own state (its health feed and re-enable jobs)."""
    app = console.client.app
    assert app is not None
    return app[CONSOLE]


async def seen(console: Console, *records: HealthRecord) -> None:
    """Wait until the console's health feed holds ``records``."""
    feed = state_of(console).health
    for record in records:
        await wait_until(
            lambda r=record: r in feed.records_of(r.account_id),  # type: ignore[misc]
            15,
            f"health record {record.key}",
        )


def health_cells(html: str) -> dict[str, str]:
    """Account id → the text of its Health cell in the accounts list."""
    cells: dict[str, str] = {}
    for row in re.findall(r"<tr>(.*?)</tr>", html, re.S):
        account = re.search(r'<th scope="row"><a href="[^"]+">([^<]+)</a>', row)
        cell = re.search(r'<td class="health-cell">(.*?)</td>', row, re.S)
        if account and cell:
            cells[account.group(1)] = cell.group(1)
    return cells


def label_of(cell: str) -> tuple[str, str]:
    """(css class, visible text) of a health cell."""
    match = re.search(r'<span class="health ([a-z-]+)" title="([^"]*)">', cell)
    assert match is not None, cell
    visible = re.sub(r'<span class="visually-hidden">.*?</span>', "", cell, flags=re.S)
    return match.group(1), re.sub(r"<[^>]+>", "", visible).strip()


def disabled_config(account_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "enabled": False,
        "disabled_reason": "endpoint_failing",
        "disabled_at": DISABLED_AT,
        "agent_event_url": "https://wfm.example.com/agent",
        "agent_login_events": True,
        "headers": {"Authorization": SECRET},
        **overrides,
    }


async def test_health_records_show_up_as_each_accounts_label(health_console: Factory) -> None:
    console: Console = await health_console()
    for account_id in ("hl-ok", "hl-failing", "hl-open", "hl-quiet", "hl-stale"):
        put_config(console.settings, {"account_id": account_id})
    put_config(console.settings, disabled_config("hl-disabled"))
    records = [
        publish(console, "hl-ok", "i-1", agent=report(attempts=40, success_ago=1)),
        publish(console, "hl-failing", "i-1", agent=report(attempts=9, failures=4,
                success_ago=60, failure_ago=2, error="HTTP 503")),
        publish(console, "hl-open", "i-1", call=report(attempts=30, success_ago=3)),
        publish(console, "hl-open", "i-2", call=report("open", attempts=12, failures=12,
                failure_ago=5, error="timeout after 10s", failing_for=90)),
        publish(console, "hl-stale", "i-1", age=300, agent=report("open", failures=5,
                failure_ago=300)),
        publish(console, "hl-disabled", "i-1", agent=report("open", failures=3, failure_ago=4)),
    ]  # fmt: skip
    await seen(console, *records)
    await console.loaded("hl-disabled")
    await console.sign_in()
    status, html = await console.get("/accounts")
    assert status == 200
    assert '<th scope="col">Health</th>' in html
    cells = {account: label_of(cell) for account, cell in health_cells(html).items()}
    assert cells == {
        "hl-ok": ("health-ok", "Healthy"),
        "hl-failing": ("health-failing", "Failing"),
        "hl-open": ("health-open", "Circuit open"),
        "hl-disabled": ("health-disabled", "Disabled: endpoint failing"),
        "hl-quiet": ("health-none", "—"),
        "hl-stale": ("health-none", "—"),  # a 5-minute-old record does not count
    }
    quiet = health_cells(html)["hl-quiet"]
    assert 'title="no deliveries reported in the last 2 minutes"' in quiet
    assert "No data: no deliveries reported in the last 2 minutes" in quiet  # not colour only


async def test_stale_records_are_ignored_and_tombstones_delete(health_console: Factory) -> None:
    console: Console = await health_console()
    put_config(console.settings, {"account_id": "hs-1"})
    stale = publish(console, "hs-1", "i-old", age=121, agent=report("open", failures=9,
                    failure_ago=121, error="HTTP 500"))  # fmt: skip
    fresh = publish(console, "hs-1", "i-new", agent=report(attempts=5, success_ago=1))
    await seen(console, stale, fresh)
    await console.loaded("hs-1")
    await console.sign_in()
    _status, html = await console.get("/accounts")
    assert label_of(health_cells(html)["hs-1"]) == ("health-ok", "Healthy")
    _status, page = await console.get("/accounts/hs-1")
    assert "HTTP 500" not in page  # the stale instance's error is not shown either
    assert "5 attempts" in page
    # The fresh instance's record deleted: no data left.
    settings = console.settings
    produce(settings, settings.health_topic, [(fresh.key.encode(), None)])
    feed = state_of(console).health
    await wait_until(lambda: fresh not in feed.records_of("hs-1"), 15, "tombstone applied")
    _status, html = await console.get("/accounts")
    assert label_of(health_cells(html)["hs-1"]) == ("health-none", "—")


async def test_the_integration_page_shows_each_endpoints_health(health_console: Factory) -> None:
    console: Console = await health_console()
    put_config(
        console.settings,
        {
            "account_id": "hp-1",
            "agent_event_url": "https://wfm.example.com/agent",
            "call_event_url": "https://wfm.example.com/call",
            "headers": {"Authorization": SECRET},
        },
    )
    records = [
        publish(console, "hp-1", "i-1", agent=report("open", attempts=7, failures=5, deferred=31,
                success_ago=200, failure_ago=3, error="HTTP 503", failing_for=600),
                call=report(attempts=4, success_ago=2)),
        publish(console, "hp-1", "i-2", agent=report("closed", attempts=3, failures=1, deferred=2,
                success_ago=100, failure_ago=50, error="ConnectError")),
    ]  # fmt: skip
    await seen(console, *records)
    await console.loaded("hp-1")
    await console.sign_in()
    status, html = await console.get("/accounts/hp-1")
    assert status == 200
    assert "Endpoint health" in html
    agent = re.search(r'<th scope="row">Agent events</th>(.*?)</tr>', html, re.S)
    call = re.search(r'<th scope="row">Call events</th>(.*?)</tr>', html, re.S)
    assert agent is not None
    assert call is not None
    assert ">Open</span>" in agent.group(1)
    assert "failing since" in agent.group(1)
    assert "6 of 10 attempts" in agent.group(1)  # failures of attempts, summed
    assert "<td>HTTP 503</td>" in agent.group(1)  # the latest failure's error
    assert "<td>33</td>" in agent.group(1)  # events deferred, summed
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ min ago\)</td>", agent.group(1))
    assert ">Closed</span>" in call.group(1)
    assert "0 of 4 attempts" in call.group(1)
    assert 'class="health health-open"' in html  # the label at the top
    assert "Re-enable" not in html  # not disabled by the service
    assert SECRET not in html


async def test_a_service_disabled_integration_says_so_and_offers_re_enable(
    health_console: Factory,
) -> None:
    console: Console = await health_console()
    put_config(console.settings, disabled_config("hd-1"))
    await console.loaded("hd-1")
    await console.sign_in()
    status, html = await console.get("/accounts/hd-1")
    assert status == 200
    assert "Disabled by the service: endpoint failing" in html
    assert "because its endpoint kept failing" in html
    assert "on 2026-12-07 10:00:00 UTC" in html  # since disabled_at
    form = re.search(r'<form method="post" action="/accounts/hd-1/reenable">(.*?)</form>', html,
                     re.S)  # fmt: skip
    assert form is not None
    assert 'name="csrf_token"' in form.group(1)
    assert '<button type="submit" class="button primary">Re-enable</button>' in form.group(1)
    assert "No deliveries reported in the last 2 minutes." in html
    assert "Re-enable (above) does both" in html  # the Enabled box says what saving does
    assert SECRET not in html


def _form(**fields: str) -> dict[str, str]:
    return {
        "agent_event_url": "https://wfm.example.com/agent",
        "agent_login_events": "on",
        "header_name_0": "Authorization",
        "header_saved_0": "Authorization",
        "max_retries": "3",
        "timeout_seconds": "10",
        "action": "save",
        **fields,
    }


async def test_saving_keeps_the_services_disabling_until_enabled_is_ticked(
    health_console: Factory,
) -> None:
    console: Console = await health_console()
    put_config(console.settings, disabled_config("hf-1"))
    await console.loaded("hf-1")
    await console.sign_in()
    # Enabled stays unticked, another field changes: still disabled by the service.
    token = await console.csrf("/accounts/hf-1")
    status, _html, resp = await console.post(
        "/accounts/hf-1", {**_form(max_retries="5"), "csrf_token": token}
    )
    assert status == 303, _html
    assert resp.headers["Location"] == "/accounts/hf-1?saved=1"
    saved = orjson.loads(console.config_records()[-1].value())
    assert saved["max_retries"] == 5
    assert saved["enabled"] is False
    assert saved["disabled_reason"] == "endpoint_failing"
    assert saved["disabled_at"] == DISABLED_AT
    assert saved["headers"] == {"Authorization": SECRET}
    # Enabled ticked: enabled, the reason cleared, and the page says nothing was redriven.
    token = await console.csrf("/accounts/hf-1")
    status, _html, resp = await console.post(
        "/accounts/hf-1", {**_form(enabled="on"), "csrf_token": token}
    )
    assert status == 303
    assert resp.headers["Location"] == "/accounts/hf-1?saved=1&redriven=0"
    saved = orjson.loads(console.config_records()[-1].value())
    assert saved["enabled"] is True
    assert saved["disabled_reason"] is None
    assert saved["disabled_at"] is None
    _status, html = await console.get(resp.headers["Location"])
    assert "dead letters of its failure period were not redriven" in html
    assert "Disabled by the service" not in html
    # An operator's disabling stays an operator's: no reason appears.
    token = await console.csrf("/accounts/hf-1")
    status, _html, _ = await console.post("/accounts/hf-1", {**_form(), "csrf_token": token})
    assert status == 303
    saved = orjson.loads(console.config_records()[-1].value())
    assert saved["enabled"] is False
    assert saved["disabled_reason"] is None


class BlockingReenable:
    """A stand-in for ``reenable`` that reports progress and waits to be released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        self.reported = threading.Event()

    def __call__(
        self,
        settings: Settings,
        account_id: str,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReenableResult:
        self.calls.append(account_id)
        assert progress is not None
        progress(3, 10)
        self.reported.set()
        assert self.release.wait(30), "never released"
        progress(10, 10)
        return ReenableResult(account_id, True, time.time() - 7200, 9, 1)


async def test_re_enable_without_the_csrf_token_is_refused(health_console: Factory) -> None:
    fake = BlockingReenable()
    fake.release.set()
    runner: ReenableFn = fake
    console: Console = await health_console(reenable=runner)
    put_config(console.settings, disabled_config("hc-1"))
    await console.loaded("hc-1")
    await console.sign_in()
    before = len(console.config_records())
    status, html, _ = await console.post("/accounts/hc-1/reenable", {})
    assert status == 403
    assert "Form refused" in html
    status, _html, _ = await console.post("/accounts/hc-1/reenable", {"csrf_token": "0" * 64})
    assert status == 403
    assert fake.calls == []
    assert len(console.config_records()) == before
    status, _html = await console.get("/accounts/hc-1/reenable")
    assert status == 404  # nothing was started
    # The same session with its token is accepted: the 403s were about the token.
    token = await console.csrf("/accounts/hc-1")
    status, _html, resp = await console.post("/accounts/hc-1/reenable", {"csrf_token": token})
    assert status == 303
    assert resp.headers["Location"] == "/accounts/hc-1/reenable"
    assert fake.calls == ["hc-1"]


async def test_re_enable_runs_once_in_the_background_and_shows_progress_then_the_result(
    health_console: Factory,
) -> None:
    fake = BlockingReenable()
    runner: ReenableFn = fake
    console: Console = await health_console(reenable=runner)
    put_config(console.settings, disabled_config("hr-1"))
    await console.loaded("hr-1")
    await console.sign_in()
    token = await console.csrf("/accounts/hr-1")
    try:
        for _ in range(2):  # a double click
            status, _html, resp = await console.post(
                "/accounts/hr-1/reenable", {"csrf_token": token}
            )
            assert status == 303
            assert resp.headers["Location"] == "/accounts/hr-1/reenable"
        await wait_until(fake.reported.is_set, 10, "progress reported")
        status, html = await console.get("/accounts/hr-1/reenable")
        assert status == 200
        assert "Redriving 3 of 10 dead letters" in html
        assert '<meta http-equiv="refresh" content="2">' in html
        _status, page = await console.get("/accounts/hr-1")
        assert "Re-enable running: see its progress" in page
        assert ">Re-enable</button>" not in page
        # Another click while it runs: still one run.
        status, _html, _ = await console.post("/accounts/hr-1/reenable", {"csrf_token": token})
        assert status == 303
    finally:
        fake.release.set()
    job = state_of(console).jobs.get("hr-1")
    assert job is not None
    await wait_until(lambda: not job.running, 10, "re-enable finished")
    assert fake.calls == ["hr-1"]
    status, html = await console.get("/accounts/hr-1/reenable")
    assert status == 200
    assert "Re-enabled" in html
    assert "9 dead letters of the failure period" in html
    assert "1 skipped" in html
    assert "http-equiv" not in html


async def test_re_enable_of_an_integration_the_service_did_not_disable_is_refused(
    health_console: Factory,
) -> None:
    fake = BlockingReenable()
    fake.release.set()
    runner: ReenableFn = fake
    console: Console = await health_console(reenable=runner)
    put_config(console.settings, {"account_id": "hn-1", "enabled": False})
    await console.loaded("hn-1")
    await console.sign_in()
    token = await console.csrf("/accounts/hn-1")
    status, html, _ = await console.post("/accounts/hn-1/reenable", {"csrf_token": token})
    assert status == 409
    assert "was not disabled by the service" in html
    assert fake.calls == []


def _dead_letter(account_id: str, event_id: str) -> bytes:
    event = {"account_id": account_id, "agent_id": "7", "event_type": "LOGIN", "event_id": event_id}
    now = int(time.time() * 1000)
    return encode_dlq_record(
        DlqRecord(
            source=SourceRecord("agent-x", 0, 5, b"k", orjson.dumps(event), now - 5000),
            account_id=account_id,
            event_id=event_id,
            kind=EventKind.AGENT,
            attempts=1,
            reason="endpoint_disabled",
            detail=None,
            last_error=None,
            last_status=None,
            first_attempt_at_ms=now,
            dead_lettered_at_ms=now,
        )
    )


async def test_re_enable_enables_and_redrives_the_failure_periods_dead_letters(
    health_console: Factory,
) -> None:
    console: Console = await health_console()  # the real reenable
    settings = console.settings
    put_config(settings, disabled_config("hx-1", disabled_at=iso_utc(time.time() - 60)))
    produce(
        settings,
        settings.dlq_topic,
        [(b"hx-1", _dead_letter("hx-1", "ev-x1")), (b"hx-2", _dead_letter("hx-2", "ev-x2"))],
    )
    await console.loaded("hx-1")
    await console.sign_in()
    token = await console.csrf("/accounts/hx-1")
    status, _html, resp = await console.post("/accounts/hx-1/reenable", {"csrf_token": token})
    assert status == 303
    job = state_of(console).jobs.get("hx-1")
    assert job is not None
    await wait_until(lambda: not job.running, 60, "re-enable finished")
    status, html = await console.get(resp.headers["Location"])
    assert status == 200
    assert "Re-enabled" in html, html
    assert "1 dead letter of the failure period" in html
    last = orjson.loads(read_topic(settings, settings.config_topic)[-1].value())
    assert (last["account_id"], last["enabled"], last["disabled_reason"]) == ("hx-1", True, None)
    retries = [
        decode_retry_record(m.value()) for m in read_topic(settings, settings.retry_topics()[0])
    ]
    assert [r.event_id for r in retries] == ["ev-x1"]
    await console.loaded("hx-1")
    await wait_until(
        lambda: (e := console.store.get("hx-1")) is not None and e.enabled, 10, "read back"
    )
    _status, page = await console.get("/accounts/hx-1")
    assert "Disabled by the service" not in page
    assert SECRET not in page
