"""The admin console in a real headless Chromium, against the real broker, a
running ``stream-wfm run`` and a receiver on 127.0.0.1 (see conftest.py); endpoint
health and ``Re-enable`` (docs/contract.md §10) at the end."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
from playwright.async_api import BrowserContext, Locator, Page, expect
from standardwebhooks import Webhook, WebhookVerificationError

from stream_wfm.events import EventKind
from stream_wfm.health.records import (
    BreakerState,
    EndpointReport,
    HealthRecord,
    encode_health_record,
    iso_utc,
)
from stream_wfm.integrations.signing import fingerprint
from stream_wfm.retry.records import DlqRecord, SourceRecord, encode_dlq_record
from tests.browser.conftest import (
    PASSWORD,
    SECRETS,
    USERNAME,
    Stack,
    Visits,
    save_screenshot,
)
from tests.helpers.config import put_config
from tests.helpers.receiver import Received
from tests.helpers.topics import produce, produce_json, read_topic

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.asyncio(loop_scope="module"),
]


# --- helpers ---------------------------------------------------------------------------


async def sign_in(page: Page, visits: Visits) -> None:
    await page.goto("/sign-in")
    await page.get_by_label("Username").fill(USERNAME)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/accounts$"))
    await visits.snap(page)


def login_event(account_id: str, event_id: str, agent_id: str = "1204571") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "external_agent_id": "EXT-20417",
        "duration": "0",
        "agent_login_id": "88201345",
        "account_id": account_id,
        "event_type": "LOGIN",
        "agent_id": agent_id,
        "date_time": "2026-11-25 09:00:00",
        "agent_phone": "5551230100",
        "username": "jane.doe@example.com",
        "source_ip": "203.0.113.24",
    }


def logout_event(account_id: str, event_id: str, agent_id: str = "1204571") -> dict[str, Any]:
    return {
        **login_event(account_id, event_id, agent_id),
        "event_type": "LOGOUT",
        "duration": "28800",
        "date_time": "2026-11-25 17:00:00",
    }


def config_count(stack: Stack) -> int:
    return len(read_topic(stack.settings, stack.settings.config_topic))


async def produce_until_delivered(
    stack: Stack,
    make_event: Callable[[str], dict[str, Any]],
    path: str,
    timeout: float = 30.0,
) -> Received:
    """Produce events (a new ``event_id`` each round) until one reaches ``path``.

    The service reads the config topic on its own; an event produced before it
    has read a just-saved integration is filtered, so this is how a test knows
    the service uses the saved integration."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = make_event(f"probe-{uuid.uuid4().hex[:12]}")
        produce_json(stack.settings, stack.settings.agent_events_topic, [event])
        round_end = min(deadline, time.monotonic() + 1.0)
        while time.monotonic() < round_end:
            for req in stack.receiver.requests:
                if req.path == path and req.headers.get("X-WFM-Event-Id") == event["event_id"]:
                    return req
            await asyncio.sleep(0.02)
        # not delivered within the round: the service may not have the config yet
    raise AssertionError(f"no event reached {path} within {timeout}s")


async def wait_for_event(stack: Stack, event_id: str, timeout: float = 20.0) -> Received:
    reqs = await stack.receiver.wait_for(
        lambda rs: any(r.headers.get("X-WFM-Event-Id") == event_id for r in rs), timeout
    )
    return next(r for r in reqs if r.headers.get("X-WFM-Event-Id") == event_id)


def filtered_no_integration(stack: Stack) -> float:
    return stack.service.metric("stream_wfm_events_filtered_total", reason="no_integration")


async def wait_metric_above(stack: Stack, value: float, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if filtered_no_integration(stack) > value:
            return True
        await asyncio.sleep(0.05)
    return False


def realistic_config(account_id: str, base: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "account_id": account_id,
        "agent_event_url": f"{base}/agent",
        "call_event_url": f"{base}/call",
        "send_body_as_json": True,
        "agent_states": True,
        "agent_login_events": True,
        "agent_logout_events": True,
        "end_call_events": True,
        "headers": {"Authorization": SECRETS[1]},
    }
    config.update(overrides)
    return config


# --- tests -----------------------------------------------------------------------------


async def test_sign_in_refuses_a_wrong_password_and_lands_on_the_accounts_list(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    page = await context.new_page()
    await page.goto("/accounts")
    await expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    await page.get_by_label("Username").fill(USERNAME)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    await visits.snap(page)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/accounts$"))
    await expect(page.get_by_role("heading", name="Accounts", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="New integration").first).to_be_visible()
    await visits.snap(page)


async def test_accounts_list_shows_each_integration_and_filters(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    put_config(stack.settings, realistic_config("15300002", "https://wfm.example.com/ringcx"))
    put_config(
        stack.settings,
        realistic_config(
            "15300017",
            "https://wfm.northwind-support.example/ringcx",
            send_body_as_json=False,
            agent_states=False,
            agent_logout_events=False,
            end_call_events=False,
        ),
    )
    put_config(
        stack.settings,
        realistic_config(
            "15300044",
            "https://hooks.contoso-care.example/wfm",
            enabled=False,
            call_event_url=None,
            end_call_events=False,
            send_all_agent_states=True,
        ),
    )
    put_config(
        stack.settings,
        realistic_config(
            "15300081",
            "https://api.fabrikam-cc.example/events",
            agent_event_url=None,
            agent_states=False,
            agent_login_events=False,
            agent_logout_events=False,
            headers={},
        ),
    )
    put_config(
        stack.settings,
        realistic_config(
            "15300093",
            "https://wfm.tailspin-travel.example/hooks",
            send_body_as_json=False,
            agent_states=False,
            end_call_events=False,
        ),
    )
    page = await context.new_page()
    await sign_in(page, visits)
    table = page.get_by_role("table")
    for account_id in ("15300002", "15300017", "15300044", "15300081", "15300093"):
        await expect(table.get_by_role("link", name=account_id, exact=True)).to_be_visible()
    row = table.get_by_role("row").filter(has=page.get_by_role("link", name="15300044"))
    await expect(row).to_contain_text("No")
    await expect(row).to_contain_text("All states")
    await visits.snap(page)
    await save_screenshot(page, "console-accounts")
    await page.get_by_label("Filter").fill("northwind")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"\?q=northwind"))
    await expect(table.get_by_role("link", name="15300017")).to_be_visible()
    await expect(table.get_by_role("link", name="15300002")).to_have_count(0)
    await visits.snap(page)


async def test_an_integration_created_in_the_form_is_delivered_by_the_service(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    path = "/create/agent"
    page = await context.new_page()
    await sign_in(page, visits)
    await page.get_by_role("link", name="New integration").first.click()
    await expect(
        page.get_by_role("heading", name="Workforce Management Integration")
    ).to_be_visible()
    await visits.snap(page)
    await page.get_by_label("Account ID", exact=True).fill("15300101")
    await page.get_by_label("Agent Event URL", exact=True).fill(stack.receiver.url(path))
    await page.get_by_label("Send body as JSON", exact=True).check()
    await page.get_by_label("Agent Login Events", exact=True).check()
    await page.get_by_role("button", name="Add header").click()  # JavaScript: a row in place
    await expect(page.get_by_label("Header name (row 2)")).to_be_visible()
    await page.get_by_label("Header name (row 1)").fill("Authorization")
    await page.get_by_label("Header value (row 1)").fill(SECRETS[0])
    await page.get_by_role("button", name="Save", exact=True).click()

    # Post/redirect/get: the page shows what the console read back from the config topic.
    await expect(page).to_have_url(re.compile(r"/accounts/15300101\?saved=1$"))
    await expect(page.get_by_role("status").first).to_contain_text("Saved.")
    await expect(page.get_by_label("Agent Event URL", exact=True)).to_have_value(
        stack.receiver.url(path)
    )
    await expect(page.get_by_label("Send body as JSON", exact=True)).to_be_checked()
    await expect(page.get_by_label("Agent Login Events", exact=True)).to_be_checked()
    await expect(page.get_by_label("Agent Logout Events", exact=True)).not_to_be_checked()
    await expect(page.get_by_label("Header name (row 1)")).to_have_value("Authorization")
    value_box = page.get_by_label("Header value (row 1)")
    await expect(value_box).to_have_value("")
    await expect(value_box).to_have_attribute("placeholder", "•••••• (saved; leave empty to keep)")
    await visits.snap(page)

    req = await produce_until_delivered(stack, lambda eid: login_event("15300101", eid), path)
    assert req.method == "POST"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Authorization"] == SECRETS[0]
    assert req.json()["event_type"] == "LOGIN"
    assert req.json()["account_id"] == "15300101"
    assert req.query == ""


async def test_a_type_unticked_in_the_form_is_no_longer_sent(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    path = "/select/agent"
    put_config(
        stack.settings,
        {
            "account_id": "15300202",
            "agent_event_url": stack.receiver.url(path),
            "agent_login_events": True,
            "headers": {"X-Api-Key": SECRETS[2]},
        },
    )
    first = await produce_until_delivered(stack, lambda eid: login_event("15300202", eid), path)
    assert "event_type=LOGIN" in first.query
    assert first.body == b""

    page = await context.new_page()
    await sign_in(page, visits)
    await page.get_by_role("link", name="15300202", exact=True).click()
    await page.get_by_label("Agent Login Events", exact=True).uncheck()
    await page.get_by_label("Agent Logout Events", exact=True).check()
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("status").first).to_contain_text("Saved.")
    await expect(page.get_by_label("Agent Login Events", exact=True)).not_to_be_checked()
    await expect(page.get_by_label("Agent Logout Events", exact=True)).to_be_checked()
    await visits.snap(page)

    # Once a LOGOUT gets through, the service uses the new selection.
    await produce_until_delivered(stack, lambda eid: logout_event("15300202", eid, "9"), path)
    produce_json(
        stack.settings,
        stack.settings.agent_events_topic,
        [
            login_event("15300202", "sel-login", "7"),
            logout_event("15300202", "sel-logout", "7"),
        ],
    )
    logout = await wait_for_event(stack, "sel-logout")
    # Same agent, same partition, in order: the LOGIN was decided before the LOGOUT was sent.
    assert not [
        r for r in stack.receiver.requests if r.headers.get("X-WFM-Event-Id") == "sel-login"
    ]
    assert "event_type=LOGOUT" in logout.query
    assert logout.headers["X-Api-Key"] == SECRETS[2]  # the saved value was kept


async def test_an_invalid_url_and_header_name_show_field_errors_and_write_nothing(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    page = await context.new_page()
    await sign_in(page, visits)
    await page.goto("/integrations/new")
    before = config_count(stack)
    await page.get_by_label("Account ID", exact=True).fill("15300404")
    await page.get_by_label("Agent Event URL", exact=True).fill("wfm.example.com/agent")
    await page.get_by_label("Agent Login Events", exact=True).check()
    await page.get_by_label("Header name (row 1)").fill("Bad Name")
    await page.get_by_label("Header value (row 1)").fill("some-value")
    await page.get_by_role("button", name="Save", exact=True).click()

    await expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
    url_box = page.get_by_label("Agent Event URL", exact=True)
    await expect(url_box).to_have_attribute("aria-invalid", "true")
    await expect(url_box).to_have_accessible_description(
        re.compile("Agent Event URL must be an absolute http or https URL")
    )
    await expect(url_box).to_have_value("wfm.example.com/agent")
    await expect(page.locator("#headers-error")).to_contain_text(
        "'Bad Name' is not a valid header name"
    )
    await expect(page.get_by_role("group", name="Custom Headers")).to_have_accessible_description(
        re.compile("is not a valid header name")
    )
    await visits.snap(page)
    assert config_count(stack) == before
    await page.goto("/accounts")
    await expect(page.get_by_role("link", name="15300404")).to_have_count(0)
    await visits.snap(page)


async def test_send_test_event_reaches_the_receiver_and_shows_the_result(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    base = stack.receiver.url("/test-event")
    put_config(stack.settings, realistic_config("15300303", base, agent_login_events=False))
    page = await context.new_page()
    await sign_in(page, visits)
    await page.get_by_role("link", name="15300303", exact=True).click()
    sample = page.get_by_label("Sample event")
    await expect(sample).to_have_value("state")  # matches what the integration sends
    await sample.select_option(label="End call (ACD-CALL)")
    await page.get_by_role("button", name="Send test event").click()

    result = page.locator(".test-result")
    await expect(result).to_contain_text("HTTP 200 OK")
    await expect(result).to_contain_text("Delivered")
    await expect(result).to_contain_text(re.compile(r"Time taken\s*\d+(\.\d)? ms"))
    await expect(result).to_contain_text(re.compile(r"Response body\s*not shown \(2 bytes\)"))
    await expect(result).not_to_contain_text("not saved")
    html = await visits.snap(page)
    [req] = [r for r in stack.receiver.requests if r.path == "/test-event/call"]
    event_id = req.headers["X-WFM-Event-Id"]
    assert event_id.startswith("test-")
    assert event_id in html
    assert req.headers["Authorization"] == SECRETS[1]
    assert req.json()["event_type"] == "ACD-CALL"
    assert req.json()["account_id"] == "15300303"
    await save_screenshot(page, "console-integration", full_page=True)


async def test_a_saved_header_value_never_follows_the_url_to_another_site(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    saved_url = stack.receiver.url("/origin/agent")
    elsewhere = saved_url.replace("127.0.0.1", "localhost")  # the same server, another origin
    put_config(
        stack.settings,
        {
            "account_id": "15300707",
            "agent_event_url": saved_url,
            "agent_login_events": True,
            "headers": {"Authorization": SECRETS[0]},
        },
    )
    page = await context.new_page()
    await sign_in(page, visits)
    await page.get_by_role("link", name="15300707", exact=True).click()
    before = config_count(stack)

    # Send test event sends the form as it is, unsaved: the new URL is another site.
    await page.get_by_label("Agent Event URL", exact=True).fill(elsewhere)
    await page.get_by_role("button", name="Send test event").click()
    await expect(page.get_by_role("alert")).to_contain_text("Nothing was sent")
    row_error = page.locator("#header_row_0-error")
    await expect(row_error).to_contain_text("Type this value again")
    await expect(page.get_by_label("Header name (row 1)")).to_have_accessible_description(
        re.compile("a URL now goes to another site")
    )
    await expect(page.get_by_label("Agent Event URL", exact=True)).to_have_value(elsewhere)
    await visits.snap(page)
    assert not [r for r in stack.receiver.requests if r.path == "/origin/agent"]

    # Save refuses it the same way.
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
    await expect(row_error).to_contain_text("Type this value again")
    await visits.snap(page)
    assert config_count(stack) == before

    # Typed again, the value goes to the new site, in a test and on save.
    await page.get_by_label("Header value (row 1)").fill("Bearer typed-again")
    await page.get_by_role("button", name="Send test event").click()
    result = page.locator(".test-result")
    await expect(result).to_contain_text("HTTP 200 OK")
    await expect(result).to_contain_text("Sent with the settings in the form, which are not saved")
    await visits.snap(page)
    [req] = [r for r in stack.receiver.requests if r.path == "/origin/agent"]
    assert req.headers["Host"].startswith("localhost:")
    assert req.headers["Authorization"] == "Bearer typed-again"
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/accounts/15300707\?saved=1$"))
    await visits.snap(page)


async def test_delete_writes_a_tombstone_and_deliveries_stop(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    path = "/delete/agent"
    put_config(
        stack.settings,
        {
            "account_id": "15300505",
            "agent_event_url": stack.receiver.url(path),
            "agent_login_events": True,
        },
    )
    await produce_until_delivered(stack, lambda eid: login_event("15300505", eid), path)
    page = await context.new_page()
    await sign_in(page, visits)
    await page.get_by_role("link", name="15300505", exact=True).click()
    await page.get_by_role("button", name="Delete integration").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Delete the integration of account 15300505?"
    )
    await visits.snap(page)
    await page.get_by_role("button", name="Delete integration").click()
    await expect(page.get_by_role("status")).to_contain_text("15300505 was deleted")
    await expect(page.get_by_role("link", name="15300505", exact=True)).to_have_count(0)
    await visits.snap(page)
    tombstones = [
        m
        for m in read_topic(stack.settings, stack.settings.config_topic)
        if m.key() == b"15300505" and m.value() is None
    ]
    assert len(tombstones) == 1

    # Wait until the service has read the tombstone: an event of the account is
    # filtered as no_integration (one produced before it may still be delivered).
    barrier_passed = False
    for _ in range(30):
        seen = filtered_no_integration(stack)
        produce_json(
            stack.settings,
            stack.settings.agent_events_topic,
            [login_event("15300505", f"barrier-{uuid.uuid4().hex[:8]}")],
        )
        if await wait_metric_above(stack, seen, timeout=1.0):
            barrier_passed = True
            break
    assert barrier_passed, "the service never filtered an event of the deleted account"
    delivered = len([r for r in stack.receiver.requests if r.path == path])
    seen = filtered_no_integration(stack)
    produce_json(
        stack.settings, stack.settings.agent_events_topic, [login_event("15300505", "after-delete")]
    )
    assert await wait_metric_above(stack, seen, timeout=10.0), "the event was not consumed"
    assert len([r for r in stack.receiver.requests if r.path == path]) == delivered


def verifies(secret: str, request: Received) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


async def delivered_until(
    stack: Stack, account_id: str, path: str, done: Callable[[Received], bool]
) -> Received:
    """Produce events of ``account_id`` until one delivered to ``path`` is ``done``: the
    service reads a config change on its own, so earlier events may go out without it."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        req = await produce_until_delivered(stack, lambda eid: login_event(account_id, eid), path)
        if done(req):
            return req
    raise AssertionError(f"no request to {path} as expected within 30s")


async def test_signing_secrets_are_generated_rotated_and_removed_each_shown_once(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    path = "/signed/agent"
    put_config(
        stack.settings,
        {
            "account_id": "15300808",
            "agent_event_url": stack.receiver.url(path),
            "send_body_as_json": True,
            "agent_login_events": True,
        },
    )
    page = await context.new_page()
    await sign_in(page, visits)
    await page.get_by_role("link", name="15300808", exact=True).click()
    section = page.get_by_role("group", name="Signing secrets")
    await expect(section).to_contain_text("Requests are not signed.")
    new_secret = page.locator("#new-signing-secret")
    saved = section.get_by_role("list", name="Saved signing secrets").get_by_role("listitem")

    # Generate: saved, shown once; reloaded, only its fingerprint.
    await section.get_by_role("button", name="Generate secret").click()
    await expect(page).to_have_url(re.compile(r"/accounts/15300808\?saved=1&reveal="))
    await expect(page.get_by_role("status").filter(has=new_secret)).to_contain_text(
        "Copy it now: it will not be shown again."
    )
    first = await new_secret.inner_text()
    assert first.startswith("whsec_")
    reveal_pages = [await visits.snap(page)]
    await page.reload()
    await expect(new_secret).to_have_count(0)
    await expect(saved).to_have_count(1)
    await expect(saved.first).to_contain_text(f"Secret 1 · fingerprint {fingerprint(first)}")
    await expect(section.get_by_role("button", name="Generate secret")).to_have_count(0)
    await visits.snap(page)
    # The service signs with it.
    await delivered_until(stack, "15300808", path, lambda req: verifies(first, req))

    # Rotate: a new secret first, the old one kept; the new one shown once.
    await section.get_by_role("button", name="Rotate secret").click()
    await expect(new_secret).to_have_count(1)
    second = await new_secret.inner_text()
    assert second not in (first, "")
    reveal_pages.append(await visits.snap(page))
    await expect(saved).to_have_count(2)
    await expect(saved.nth(0)).to_contain_text(
        f"Secret 1 (newest) · fingerprint {fingerprint(second)}"
    )
    await expect(saved.nth(1)).to_contain_text(f"Secret 2 · fingerprint {fingerprint(first)}")
    await page.reload()
    await expect(new_secret).to_have_count(0)
    await visits.snap(page)

    # Remove the old one (the one chosen by default).
    await expect(page.get_by_label("Secret to remove")).to_have_value(fingerprint(first))
    await section.get_by_role("button", name="Remove secret").click()
    await expect(page).to_have_url(re.compile(r"/accounts/15300808\?saved=1$"))
    await expect(saved).to_have_count(1)
    await expect(saved.first).to_contain_text(fingerprint(second))
    await expect(new_secret).to_have_count(0)
    await visits.snap(page)

    configs = [m for m in read_topic(stack.settings, stack.settings.config_topic)]
    values = [orjson.loads(m.value()) for m in configs if m.key() == b"15300808"]
    assert [v["signing_secrets"] for v in values] == [[], [first], [second, first], [second]]
    # No page but the one that revealed it ever showed a secret.
    for secret, shown_on in ((first, reveal_pages[0]), (second, reveal_pages[1])):
        showing = [html for _url, html in visits.pages if secret.removeprefix("whsec_") in html]
        assert showing == [shown_on]
    # The service follows: requests verify with the new secret alone.
    req = await delivered_until(stack, "15300808", path, lambda req: not verifies(first, req))
    assert verifies(second, req)


async def test_a_post_without_a_csrf_token_is_refused(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    page = await context.new_page()
    await sign_in(page, visits)
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    form = {
        "account_id": "15300606",
        "agent_event_url": "https://wfm.example.com/a",
        "enabled": "on",
        "max_retries": "3",
        "timeout_seconds": "10",
    }
    before = config_count(stack)
    async with aiohttp.ClientSession(
        cookies=cookies, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        url = f"{stack.console.url}/integrations/new"
        async with http.post(url, data=form, allow_redirects=False) as resp:
            assert resp.status == 403
            assert "Form refused" in await resp.text()
        async with http.post(
            url, data={**form, "csrf_token": "f" * 64}, allow_redirects=False
        ) as resp:
            assert resp.status == 403
        assert config_count(stack) == before
        # The same session with its token is accepted: the 403s were about the token.
        async with http.get(url) as resp:
            match = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        assert match is not None
        async with http.post(
            url, data={**form, "csrf_token": match.group(1)}, allow_redirects=False
        ) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/accounts/15300606?saved=1"


# --- endpoint health (docs/contract.md §10) ------------------------------------------------------


def publish_health(
    stack: Stack, account_id: str, instance: str, **endpoints: EndpointReport
) -> None:
    """One instance's fresh health record for ``account_id`` on the health topic."""
    record = HealthRecord(account_id, instance, iso_utc(time.time()), dict(endpoints))
    produce(
        stack.settings,
        stack.settings.health_topic,
        [(record.key.encode(), encode_health_record(record))],
    )


def endpoint(
    state: BreakerState = "closed",
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
        state=state,
        attempts_5m=attempts,
        failures_5m=failures,
        deferred_5m=deferred,
        last_success_at=None if success_ago is None else iso_utc(now - success_ago),
        last_failure_at=None if failure_ago is None else iso_utc(now - failure_ago),
        last_error=error,
        failing_since=None if failing_for is None else iso_utc(now - failing_for),
    )


def dead_letter(stack: Stack, event: dict[str, Any]) -> bytes:
    """The dead letter of an agent event the service refused while the integration was
    disabled for a failing endpoint."""
    now = int(time.time() * 1000)
    return encode_dlq_record(
        DlqRecord(
            source=SourceRecord(
                stack.settings.agent_events_topic, 0, 0, b"k", orjson.dumps(event), now - 60_000
            ),
            account_id=event["account_id"],
            event_id=event["event_id"],
            kind=EventKind.AGENT,
            attempts=0,
            reason="endpoint_disabled",
            detail=None,
            last_error=None,
            last_status=None,
            first_attempt_at_ms=now,
            dead_lettered_at_ms=now,
        )
    )


async def reload_until(page: Page, locator: Locator, text: str, timeout: float = 20.0) -> None:
    """Reload ``page`` until ``locator`` contains ``text`` (the console reads the health
    topic on its own; a page shows what it had read when it was rendered)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await expect(locator).to_contain_text(text, timeout=1000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await page.reload()


async def test_accounts_show_their_health_and_re_enable_redrives_a_disabled_one(
    stack: Stack, context: BrowserContext, visits: Visits
) -> None:
    settings = stack.settings
    put_config(settings, realistic_config("15301001", "https://wfm.example.com/ringcx"))
    put_config(settings, realistic_config("15301002", "https://wfm.northwind-support.example/wfm"))
    put_config(settings, realistic_config("15301003", "https://hooks.contoso-care.example/wfm"))
    path = "/reenable/agent"
    put_config(
        settings,
        realistic_config(
            "15301004",
            stack.receiver.url("/reenable"),
            enabled=False,
            disabled_reason="endpoint_failing",
            disabled_at=iso_utc(time.time() - 3600),
        ),
    )
    put_config(settings, realistic_config("15301005", "https://api.fabrikam-cc.example/events"))
    publish_health(
        stack,
        "15301001",
        "stream-wfm-0",
        agent=endpoint(attempts=412, success_ago=1),
        call=endpoint(attempts=37, success_ago=4),
    )
    publish_health(
        stack,
        "15301002",
        "stream-wfm-0",
        agent=endpoint(attempts=60, failures=14, success_ago=45, failure_ago=2, error="HTTP 502"),
    )
    publish_health(
        stack,
        "15301003",
        "stream-wfm-1",
        agent=endpoint(
            "open",
            attempts=12,
            failures=12,
            deferred=230,
            failure_ago=6,
            error="timeout after 10s",
            failing_for=1500,
        ),
    )
    publish_health(
        stack,
        "15301004",
        "stream-wfm-1",
        agent=endpoint(
            "open",
            attempts=3,
            failures=3,
            deferred=40,
            failure_ago=20,
            error="HTTP 503",
            failing_for=4000,
        ),
    )
    event = login_event("15301004", f"disabled-{uuid.uuid4().hex[:8]}")
    produce(settings, settings.dlq_topic, [(b"15301004", dead_letter(stack, event))])

    page = await context.new_page()
    await sign_in(page, visits)
    await page.goto("/accounts?q=153010")
    table = page.get_by_role("table")

    def row(account_id: str) -> Locator:
        return table.get_by_role("row").filter(
            has=page.get_by_role("link", name=account_id, exact=True)
        )

    await reload_until(page, row("15301003"), "Circuit open")
    await reload_until(page, row("15301002"), "Failing")
    await reload_until(page, row("15301001"), "Healthy")
    await expect(row("15301004")).to_contain_text("Disabled: endpoint failing")
    quiet = row("15301005").locator(".health")
    await expect(quiet).to_have_attribute("title", "no deliveries reported in the last 2 minutes")
    await expect(quiet).to_contain_text("No data")  # for screen readers; an em dash on screen
    await expect(row("15301002").locator(".health")).to_have_class(re.compile("health-failing"))
    await expect(row("15301004").locator(".health")).to_have_class(re.compile("health-disabled"))
    await expect(page.get_by_role("columnheader", name="Health")).to_be_visible()
    await visits.snap(page)
    await save_screenshot(page, "console-health")

    await page.get_by_role("link", name="15301004", exact=True).click()
    notice = page.get_by_role("region", name="Disabled by the service: endpoint failing")
    await expect(notice).to_contain_text("because its endpoint kept failing")
    health = page.get_by_role("region", name="Endpoint health")
    await expect(health).to_contain_text("HTTP 503")
    await expect(health.get_by_role("row", name=re.compile("Agent events"))).to_contain_text("Open")
    await expect(page.get_by_label("Enabled", exact=True)).not_to_be_checked()
    await visits.snap(page)
    await page.get_by_role("button", name="Re-enable", exact=True).click()

    await expect(page).to_have_url(re.compile(r"/accounts/15301004/reenable$"))
    result = page.get_by_role("status")
    await expect(result).to_contain_text("Re-enabled", timeout=30_000)  # reloads until done
    await expect(result).to_contain_text("1 dead letter of the failure period")
    await visits.snap(page)
    configs = [m for m in read_topic(settings, settings.config_topic) if m.key() == b"15301004"]
    last = orjson.loads(configs[-1].value())
    assert last["enabled"] is True
    assert last["disabled_reason"] is None
    assert last["disabled_at"] is None
    # The service delivers the redriven event with the integration enabled again.
    req = await wait_for_event(stack, event["event_id"], timeout=30)
    assert req.path == path
    assert req.headers["Authorization"] == SECRETS[1]

    await page.get_by_role("link", name="Back to the integration").click()
    await expect(page.get_by_role("button", name="Re-enable")).to_have_count(0)
    await expect(page.get_by_label("Enabled", exact=True)).to_be_checked()
    await visits.snap(page)
