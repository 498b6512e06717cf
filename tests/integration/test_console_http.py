"""The admin console over HTTP (aiohttp's test client) against the real broker:
access, CSRF, rate limiting, security headers, masked secrets, saving, test
events, dead letters, and ``stream-wfm console`` refusing to start without a password."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream_wfm.cli.main import main
from stream_wfm.console.app import create_app
from stream_wfm.console.changes import ConfigChanges
from stream_wfm.console.ratelimit import SignInLimiter
from stream_wfm.console.security import CONTENT_SECURITY_POLICY
from stream_wfm.console.sessions import SessionCodec
from stream_wfm.delivery.aiohttp_transport import AiohttpTransport
from stream_wfm.events import EventKind
from stream_wfm.integrations.store import ConfigStore, Entry
from stream_wfm.integrations.writer import ConfigWriter
from stream_wfm.kafka.config import producer_config, reader_config
from stream_wfm.retry.records import DlqRecord, SourceRecord, decode_retry_record, encode_dlq_record
from stream_wfm.settings import Settings
from tests.helpers.config import put_config
from tests.helpers.receiver import Receiver
from tests.helpers.topics import produce, read_topic
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
SECRET = "Basic c2VjcmV0LXZhbHVlLTQy"  # the saved header value that must never be shown
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Console:
    client: TestClient[web.Request, web.Application]
    settings: Settings
    store: ConfigStore[Entry]
    clock: FakeClock
    pages: list[str]
    wall: FakeClock

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        resp = await self.client.get(path, **kwargs)
        text = await resp.text()
        self.pages.append(text)
        return resp.status, text

    async def csrf(self, path: str = "/accounts") -> str:
        _status, text = await self.get(path)
        match = CSRF.search(text)
        assert match is not None, f"no CSRF token on {path}"
        return match.group(1)

    async def post(self, path: str, data: dict[str, str], **kwargs: Any) -> tuple[int, str, Any]:
        resp = await self.client.post(path, data=data, allow_redirects=False, **kwargs)
        text = await resp.text()
        self.pages.append(text)
        return resp.status, text, resp

    async def sign_in(
        self, password: str = PASSWORD, username: str = "admin", **kwargs: Any
    ) -> tuple[int, str, Any]:
        token = await self.csrf("/sign-in")
        return await self.post(
            "/sign-in", {"csrf_token": token, "username": username, "password": password}, **kwargs
        )

    async def loaded(self, account_id: str) -> None:
        """Wait until the console's store has read ``account_id``'s integration."""
        await wait_until(lambda: self.store.get(account_id) is not None, 10, account_id)

    async def signed_in_with(self, config: dict[str, Any]) -> None:
        """Write ``config``, wait until the console has read it, and sign in."""
        put_config(self.settings, config)
        await self.loaded(config["account_id"])
        await self.sign_in()

    def config_records(self) -> list[Any]:
        return read_topic(self.settings, self.settings.config_topic)

    def last_saved_headers(self) -> Any:
        """The headers of the last config record written."""
        return orjson.loads(self.config_records()[-1].value())["headers"]


ConsoleFactory = Callable[..., Any]
Stop = Callable[[], Awaitable[None]]


async def start_console(settings: Settings, **app_options: Any) -> tuple[Console, Stop]:
    """A console on ``settings`` (``app_options``: more arguments of ``create_app``), and
    what stops it."""
    changes = ConfigChanges()
    store = ConfigStore(
        settings.config_topic,
        reader_config(settings, "console-test"),
        entry_type=Entry,
        on_change=changes.notify,
    )
    writer = ConfigWriter(settings.config_topic, producer_config(settings, "console-test"))
    transport = AiohttpTransport(
        max_in_flight=8, max_in_flight_per_host=4, allow_private_destinations=True
    )
    clock = FakeClock()
    wall = FakeClock()
    wall.now = 1_800_000_000.0
    app = create_app(
        settings,
        store,
        writer,
        transport,
        changes=changes,
        limiter=SignInLimiter(clock=clock),
        sessions=SessionCodec(b"k" * 32, clock=wall),
        **app_options,
    )
    store.start()
    assert store.wait_ready(20), store.status
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()

    async def stop() -> None:
        await client.close()
        await transport.close()
        writer.close()
        store.stop()

    return Console(client, settings, store, clock, [], wall), stop


@pytest.fixture
async def console_factory(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[ConsoleFactory]:
    """Builds consoles (keyword arguments: settings); each is stopped after the test."""
    stops: list[Stop] = []

    async def make(**overrides: Any) -> Console:
        console, stop = await start_console(
            settings_factory(console_password=PASSWORD, **overrides)
        )
        stops.append(stop)
        return console

    yield make
    for stop in reversed(stops):
        await stop()


@pytest.fixture
async def console(console_factory: ConsoleFactory) -> Console:
    made: Console = await console_factory()
    return made


async def test_sign_in_page_has_the_form_and_security_headers(console: Console) -> None:
    resp = await console.client.get("/sign-in")
    html = await resp.text()
    assert resp.status == 200
    assert '<label for="username">Username</label>' in html
    assert '<label for="password">Password</label>' in html
    assert ">Sign in</button>" in html
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert resp.headers["Cache-Control"] == "no-store"
    assert "<script>" not in html
    assert "style=" not in html


async def test_pages_need_a_signed_in_session(console: Console) -> None:
    resp = await console.client.get("/accounts?q=1", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/sign-in?next=%2Faccounts%3Fq%3D1"
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_wrong_password_is_refused_and_the_right_one_signs_in(console: Console) -> None:
    status, html, _resp = await console.sign_in("not the password")
    assert status == 401
    assert "Wrong username or password." in html
    status, _html, resp = await console.sign_in()
    assert status == 303
    assert resp.headers["Location"] == "/accounts"
    cookie = resp.cookies["stream_wfm_console"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert not cookie["secure"]  # plain http in this test
    status, html = await console.get("/accounts")
    assert status == 200
    assert "Signed in as <strong>admin</strong>" in html


async def test_a_forged_or_foreign_session_cookie_is_not_signed_in(console: Console) -> None:
    await console.sign_in()
    good = console.client.session.cookie_jar.filter_cookies(console.client.make_url("/"))
    value = good["stream_wfm_console"].value
    payload, _sig = value.split(".")
    console.client.session.cookie_jar.clear()
    for forged in (f"{payload}.AAAA", f"{payload}x.{_sig}", "garbage"):
        resp = await console.client.get(
            "/accounts", cookies={"stream_wfm_console": forged}, allow_redirects=False
        )
        assert resp.status == 303, forged
        assert resp.headers["Location"].startswith("/sign-in")


async def test_posts_without_or_with_a_wrong_csrf_token_are_refused(console: Console) -> None:
    await console.sign_in()
    before = len(console.config_records())
    form = {"account_id": "csrf-1", "agent_event_url": "https://example.com/a", "action": "save"}
    status, html, _ = await console.post("/integrations/new", form)
    assert status == 403
    assert "Form refused" in html
    status, _html, _ = await console.post("/integrations/new", {**form, "csrf_token": "0" * 64})
    assert status == 403
    status, _html, _ = await console.post("/sign-out", {})
    assert status == 403
    assert len(console.config_records()) == before
    # The sign-in form is protected too.
    console.client.session.cookie_jar.clear()
    status, _html, _ = await console.post("/sign-in", {"username": "admin", "password": PASSWORD})
    assert status == 403


async def test_wrong_passwords_are_delayed_more_and_more(console: Console) -> None:
    for _ in range(5):
        status, _html, _ = await console.sign_in("wrong")
        assert status == 401
    status, html, resp = await console.sign_in()  # even the right password, for a while
    assert status == 429
    assert "Too many failed sign-in attempts" in html
    assert resp.headers["Retry-After"] == "1"
    console.clock.now += 1
    status, _html, _ = await console.sign_in("wrong again")
    assert status == 401
    status, _html, resp = await console.sign_in()
    assert status == 429
    assert resp.headers["Retry-After"] == "2"  # the delay doubles with each failure
    console.clock.now += 2
    status, _html, _ = await console.sign_in()
    assert status == 303


async def test_the_right_password_signs_in_after_other_clients_failures_once_the_delay_has_passed(
    console_factory: ConsoleFactory,
) -> None:
    console = await console_factory(console_trusted_proxies="127.0.0.1")
    # Another client, rotating its address, fails for the admin's user name.
    for i in range(5):
        status, _html, _ = await console.sign_in(
            "guess", headers={"X-Forwarded-For": f"2001:db8:{i}::1"}
        )
        assert status == 401
    status, _html, _ = await console.sign_in("guess", headers={"X-Forwarded-For": "2001:db8:9::1"})
    assert status == 429  # a new address does not escape the per-user delay
    status, _html, resp = await console.sign_in(headers={"X-Forwarded-For": "203.0.113.7"})
    assert status == 429
    assert resp.headers["Retry-After"] == "1"  # a short delay, not a lock-out
    console.clock.now += 1
    status, _html, resp = await console.sign_in(headers={"X-Forwarded-For": "203.0.113.7"})
    assert status == 303
    assert resp.headers["Location"] == "/accounts"


async def test_a_browser_that_signed_in_before_is_not_delayed_by_other_clients(
    console: Console,
) -> None:
    jar = console.client.session.cookie_jar
    status, _html, resp = await console.sign_in()
    assert status == 303
    device = resp.cookies["stream_wfm_console_device"]
    assert device["httponly"]
    assert device["path"] == "/sign-in"
    assert device["samesite"] == "Strict"
    jar.clear()
    for _ in range(8):
        await console.sign_in("guess")  # another client: its failures delay the user name
    status, _html, _ = await console.sign_in()
    assert status == 429
    jar.clear()
    jar.update_cookies({"stream_wfm_console_device": device.value}, console.client.make_url("/"))
    status, _html, resp = await console.sign_in()
    assert status == 303, _html
    assert resp.headers["Location"] == "/accounts"


async def test_forwarded_headers_count_only_from_a_trusted_proxy(
    console_factory: ConsoleFactory,
) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    direct = await console_factory()
    status, _html, resp = await direct.sign_in(headers=forwarded)
    assert status == 303
    assert not resp.cookies["stream_wfm_console"]["secure"]
    assert "Strict-Transport-Security" not in resp.headers

    proxied = await console_factory(console_trusted_proxies="10.0.0.0/8, 127.0.0.1")
    status, _html, resp = await proxied.sign_in(headers=forwarded)
    assert status == 303
    assert resp.cookies["stream_wfm_console"]["secure"]
    assert resp.cookies["stream_wfm_console"]["samesite"] == "Strict"
    assert resp.cookies["stream_wfm_console_device"]["secure"]
    assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
    page = await proxied.client.get("/sign-in", headers={"X-Forwarded-Proto": "http"})
    assert "Strict-Transport-Security" not in page.headers
    page = await proxied.client.get("/static/console.css", headers=forwarded)
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"


async def test_a_session_ends_when_idle_and_at_its_absolute_expiry(console: Console) -> None:
    status, _html, _ = await console.sign_in()
    assert status == 303
    signed_in_at = console.wall.now
    # Active every 20 minutes: the session lives on, but never past 12 hours.
    while console.wall.now + 20 * 60 < signed_in_at + 12 * 3600:
        console.wall.now += 20 * 60
        resp = await console.client.get("/accounts", allow_redirects=False)
        assert resp.status == 200, console.wall.now - signed_in_at
    console.wall.now = signed_in_at + 12 * 3600
    resp = await console.client.get("/accounts", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/sign-in")
    # Idle for more than 30 minutes: signed out.
    await console.sign_in()
    console.wall.now += 30 * 60 + 1
    resp = await console.client.get("/accounts", allow_redirects=False)
    assert resp.status == 303


async def test_sign_out_ends_the_session(console: Console) -> None:
    await console.sign_in()
    old = console.client.session.cookie_jar.filter_cookies(console.client.make_url("/"))
    value = old["stream_wfm_console"].value
    token = await console.csrf()
    status, _html, resp = await console.post("/sign-out", {"csrf_token": token})
    assert status == 303
    assert resp.headers["Location"] == "/sign-in"
    replay = await console.client.get(
        "/accounts", cookies={"stream_wfm_console": value}, allow_redirects=False
    )
    assert replay.status == 303  # the old cookie no longer works


async def test_static_files_carry_the_security_headers(console: Console) -> None:
    resp = await console.client.get("/static/console.css")
    assert resp.status == 200
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in resp.headers.get("Cache-Control", "")


def _form(account_id: str = "", **overrides: str) -> dict[str, str]:
    data = {
        "agent_event_url": "https://wfm.example.com/agent",
        "call_event_url": "",
        "agent_login_events": "on",
        "enabled": "on",
        "max_retries": "3",
        "timeout_seconds": "10",
        "action": "save",
    }
    if account_id:
        data["account_id"] = account_id
    data.update(overrides)
    return {k: v for k, v in data.items() if v != "<absent>"}


async def _save(console: Console, path: str, form: dict[str, str]) -> tuple[int, str, Any]:
    token = await console.csrf(path if path != "/integrations/new" else "/integrations/new")
    return await console.post(path, {**form, "csrf_token": token})


async def test_new_integration_is_written_and_read_back(console: Console) -> None:
    await console.sign_in()
    form = _form("acc-new", header_name_0="Authorization", header_value_0=SECRET)
    status, _html, resp = await _save(console, "/integrations/new", form)
    assert status == 303, _html
    assert resp.headers["Location"] == "/accounts/acc-new?saved=1"
    status, html = await console.get("/accounts/acc-new?saved=1")
    assert status == 200
    assert "Saved." in html
    assert 'value="https://wfm.example.com/agent"' in html
    assert (
        'id="agent_login_events" name="agent_login_events" type="checkbox" value="on" checked'
        in html
    )
    assert 'value="Authorization"' in html
    assert SECRET not in html
    record = console.config_records()[-1]
    assert record.key() == b"acc-new"
    value = orjson.loads(record.value())
    assert value["headers"] == {"Authorization": SECRET}
    assert value["agent_login_events"] is True
    assert value["agent_logout_events"] is False


async def test_saved_header_values_are_masked_kept_replaced_and_removed(console: Console) -> None:
    await console.signed_in_with(
        {
            "account_id": "acc-sec",
            "agent_event_url": "https://wfm.example.com/a",
            "headers": {"Authorization": SECRET, "X-Tenant": "tenant-secret-7"},
        }
    )
    status, html = await console.get("/accounts/acc-sec")
    assert status == 200
    assert "•••••• (saved; leave empty to keep)" in html
    assert 'value="Authorization"' in html
    assert 'value="X-Tenant"' in html
    # Keep Authorization (empty value), replace X-Tenant, add X-New.
    form = _form(
        header_name_0="Authorization",
        header_value_0="",
        header_saved_0="Authorization",
        header_name_1="X-Tenant",
        header_value_1="tenant-new",
        header_saved_1="X-Tenant",
        header_name_2="X-New",
        header_value_2="new-value",
    )
    status, _html, _ = await _save(console, "/accounts/acc-sec", form)
    assert status == 303
    assert console.last_saved_headers() == {
        "Authorization": SECRET,
        "X-Tenant": "tenant-new",
        "X-New": "new-value",
    }
    # Remove Authorization.
    form = _form(
        header_name_0="Authorization",
        header_saved_0="Authorization",
        header_remove_0="on",
        header_name_1="X-Tenant",
        header_saved_1="X-Tenant",
    )
    status, _html, _ = await _save(console, "/accounts/acc-sec", form)
    assert status == 303
    assert console.last_saved_headers() == {"X-Tenant": "tenant-new"}
    for page in console.pages:
        for secret in (SECRET, "tenant-secret-7", "tenant-new", "new-value"):
            assert secret not in page


_MOVED = "Type this value again: a URL now goes to another site"


async def test_a_url_moved_to_another_origin_needs_the_saved_header_values_again(
    console: Console,
) -> None:
    await console.signed_in_with(
        {
            "account_id": "acc-move",
            "agent_event_url": "https://wfm.example.com/a",
            "call_event_url": "https://calls.example.com/c",
            "headers": {"Authorization": SECRET},
        }
    )
    before = len(console.config_records())
    kept = {"header_name_0": "Authorization", "header_saved_0": "Authorization"}
    moves = [
        {"agent_event_url": "https://evil.example/a"},  # host
        {"agent_event_url": "http://wfm.example.com/a"},  # scheme
        {"agent_event_url": "https://wfm.example.com:8443/a"},  # port
        {"call_event_url": "https://calls.example.com.evil.example/c"},
    ]
    for move in moves:
        form = _form(**{"call_event_url": "https://calls.example.com/c", **kept, **move})
        status, html, _ = await _save(console, "/accounts/acc-move", form)
        assert status == 400, move
        assert '<p class="field-error row-error" id="header_row_0-error">' + _MOVED in html
        assert "Nothing was saved" in html
    assert len(console.config_records()) == before
    # The same origin (another path, the default port written out, another case) keeps it.
    form = _form(
        agent_event_url="https://WFM.example.com:443/b",
        call_event_url="https://wfm.example.com/c",
        **kept,
    )
    status, _html, _ = await _save(console, "/accounts/acc-move", form)
    assert status == 303, _html
    assert console.last_saved_headers() == {"Authorization": SECRET}
    # A value typed again may go anywhere.
    form = _form(agent_event_url="https://other.example/a", **kept, header_value_0="Bearer new")
    status, _html, _ = await _save(console, "/accounts/acc-move", form)
    assert status == 303
    assert console.last_saved_headers() == {"Authorization": "Bearer new"}


async def test_a_saved_value_is_kept_only_under_the_name_it_was_saved_under(
    console: Console,
) -> None:
    await console.signed_in_with(
        {
            "account_id": "acc-name",
            "agent_event_url": "https://wfm.example.com/a",
            "headers": {"Authorization": SECRET, "X-Tenant": "t-7"},
        }
    )
    before = len(console.config_records())
    # A posted header_saved_<i> cannot carry Authorization's value to another name.
    form = _form(header_name_0="X-Leak", header_saved_0="Authorization")
    status, html, _ = await _save(console, "/accounts/acc-name", form)
    assert status == 400
    assert "Type a value for this header" in html
    assert len(console.config_records()) == before
    # Nor to another saved header: each keeps its own value, whatever the hidden field says.
    form = _form(
        header_name_0="X-Tenant",
        header_saved_0="Authorization",
        header_name_1="Authorization",
        header_saved_1="X-Tenant",
    )
    status, _html, _ = await _save(console, "/accounts/acc-name", form)
    assert status == 303
    assert console.last_saved_headers() == {"X-Tenant": "t-7", "Authorization": SECRET}


async def _test_form(console: Console, account_id: str, **fields: str) -> tuple[int, str, Any]:
    token = await console.csrf(f"/accounts/{account_id}")
    form = _form(**fields)
    form.pop("action")
    return await console.post(f"/accounts/{account_id}/test", {**form, "csrf_token": token})


async def test_send_test_event_sends_the_form_and_never_carries_saved_values_elsewhere(
    console: Console, receiver_factory: Callable[..., Any]
) -> None:
    saved_at: Receiver = await receiver_factory()
    elsewhere: Receiver = await receiver_factory()  # another port: another origin
    await console.signed_in_with(
        {
            "account_id": "acc-tform",
            "agent_event_url": saved_at.url("/agent"),
            "agent_login_events": True,
            "headers": {"Authorization": SECRET},
        }
    )
    row = {"header_name_0": "Authorization", "header_saved_0": "Authorization"}
    status, html, _ = await _test_form(
        console, "acc-tform", agent_event_url=elsewhere.url("/agent"), sample="login", **row
    )
    assert status == 400
    assert _MOVED in html
    assert "Nothing was sent" in html
    assert elsewhere.requests == []  # answered after the send would have finished
    assert saved_at.requests == []
    # The form's unsaved URL on the saved origin: the saved value goes there.
    status, html, _ = await _test_form(
        console, "acc-tform", agent_event_url=saved_at.url("/other"), sample="login", **row
    )
    assert status == 200, html
    [req] = saved_at.requests
    assert req.path == "/other"
    assert req.headers["Authorization"] == SECRET
    assert "not saved" in html
    # A value typed into the form goes wherever the form says.
    status, html, _ = await _test_form(
        console,
        "acc-tform",
        agent_event_url=elsewhere.url("/agent"),
        sample="login",
        **row,
        header_value_0="Bearer typed",
    )
    assert status == 200
    [req] = elsewhere.requests
    assert req.headers["Authorization"] == "Bearer typed"
    entry = console.store.get("acc-tform")
    assert entry is not None
    assert entry.config.agent_event_url == saved_at.url("/agent")  # nothing was saved


async def test_send_test_event_shows_a_status_summary_not_the_response_body(
    console: Console,
) -> None:
    async def reflect(request: web.Request) -> web.Response:
        echo = f"<b>you sent</b> {request.headers.get('Authorization')}"
        return web.Response(status=202, text=echo, content_type="text/html")

    app = web.Application()
    app.router.add_post("/hook", reflect)
    server = TestServer(app)
    await server.start_server()
    try:
        await console.signed_in_with(
            {
                "account_id": "acc-reflect",
                "agent_event_url": str(server.make_url("/hook")),
                "agent_login_events": True,
                "headers": {"Authorization": SECRET},
            }
        )
        token = await console.csrf("/accounts/acc-reflect")
        status, html, _ = await console.post(
            "/accounts/acc-reflect/test", {"csrf_token": token, "sample": "login"}
        )
    finally:
        await server.close()
    assert status == 200
    assert "HTTP 202 Accepted" in html
    assert re.search(r"Time taken</dt><dd>\d+(\.\d)? ms", html)
    assert "not shown" in html
    assert SECRET not in html
    assert "you sent" not in html


async def test_invalid_fields_are_shown_next_to_them_and_nothing_is_written(
    console: Console,
) -> None:
    await console.sign_in()
    before = len(console.config_records())
    form = _form(
        "acc-bad",
        agent_event_url="ftp://nope",
        max_retries="eleven",
        header_name_0="Bad Name",
        header_value_0="x",
    )
    status, html, _ = await _save(console, "/integrations/new", form)
    assert status == 400
    assert "Nothing was saved" in html
    assert '<p class="field-error" id="agent_event_url-error">' in html
    assert 'aria-describedby="agent_event_url-hint agent_event_url-error"' in html
    assert "Agent Event URL must be an absolute http or https URL." in html
    assert "Max Retries must be an integer from 0 to 10." in html
    assert "&#39;Bad Name&#39; is not a valid header name." in html
    assert 'value="ftp://nope"' in html  # what was typed comes back
    assert len(console.config_records()) == before


async def test_add_header_without_javascript_keeps_what_was_typed(console: Console) -> None:
    await console.sign_in()
    form = _form("acc-add", header_name_0="X-One", header_value_0="typed", action="add_header")
    status, html, _ = await _save(console, "/integrations/new", form)
    assert status == 200
    assert 'id="header_name_0" name="header_name_0" type="text" value="X-One"' in html
    assert 'id="header_name_1" name="header_name_1" type="text" value=""' in html
    assert 'value="acc-add"' in html
    assert console.store.get("acc-add") is None


async def test_an_existing_account_cannot_be_created_again(console: Console) -> None:
    await console.signed_in_with({"account_id": "acc-dup"})
    status, html, _ = await _save(console, "/integrations/new", _form("acc-dup"))
    assert status == 400
    assert "Account ID already has an integration" in html


async def test_accounts_list_filters(console: Console) -> None:
    for account_id, url in (
        ("flt-1", "https://alpha.example.com/x"),
        ("flt-2", "https://beta.example.com/y"),
    ):
        put_config(
            console.settings,
            {"account_id": account_id, "agent_event_url": url, "agent_logout_events": True},
        )
    await console.loaded("flt-2")
    await console.sign_in()
    _status, html = await console.get("/accounts")
    assert 'href="/accounts/flt-1"' in html
    assert 'href="/accounts/flt-2"' in html
    assert "New integration" in html
    _status, html = await console.get("/accounts?q=BETA")
    assert 'href="/accounts/flt-2"' in html
    assert 'href="/accounts/flt-1"' not in html
    assert "1 of 2 integrations" in html


async def test_send_test_event_reaches_the_receiver(
    console: Console, receiver_factory: Callable[..., Any]
) -> None:
    rec: Receiver = await receiver_factory()
    await console.signed_in_with(
        {
            "account_id": "acc-test",
            "agent_event_url": rec.url("/agent"),
            "send_body_as_json": True,
            "agent_login_events": True,
            "headers": {"Authorization": SECRET},
        }
    )
    token = await console.csrf("/accounts/acc-test")
    status, html, _ = await console.post(
        "/accounts/acc-test/test", {"csrf_token": token, "sample": "login"}
    )
    assert status == 200
    [req] = await rec.wait_count(1)
    assert req.headers["X-WFM-Event-Id"].startswith("test-")
    assert req.headers["Authorization"] == SECRET
    assert req.json()["event_type"] == "LOGIN"
    assert req.json()["account_id"] == "acc-test"
    assert "HTTP 200" in html
    assert "Delivered" in html
    assert req.headers["X-WFM-Event-Id"] in html
    assert SECRET not in html


async def test_delete_asks_first_then_writes_a_tombstone(console: Console) -> None:
    await console.signed_in_with({"account_id": "acc-del"})
    status, html = await console.get("/accounts/acc-del/delete")
    assert status == 200
    assert "Delete the integration of account acc-del?" in html
    assert console.store.get("acc-del") is not None
    token = await console.csrf("/accounts/acc-del/delete")
    status, _html, resp = await console.post("/accounts/acc-del/delete", {"csrf_token": token})
    assert status == 303
    assert resp.headers["Location"] == "/accounts?deleted=acc-del"
    last = console.config_records()[-1]
    assert last.key() == b"acc-del"
    assert last.value() is None
    assert console.store.get("acc-del") is None


def _dlq_record(account_id: str, event_id: str) -> bytes:
    event = {"account_id": account_id, "agent_id": "7", "event_type": "LOGIN", "event_id": event_id}
    now = int(time.time() * 1000)
    return encode_dlq_record(
        DlqRecord(
            source=SourceRecord("agent-x", 0, 5, b"k", orjson.dumps(event), now),
            account_id=account_id,
            event_id=event_id,
            kind=EventKind.AGENT,
            attempts=4,
            reason="retries_exhausted",
            detail=None,
            last_error="HTTP 503",
            last_status=503,
            first_attempt_at_ms=now - 1000,
            dead_lettered_at_ms=now,
        )
    )


async def test_dead_letters_are_listed_and_redriven(console: Console) -> None:
    settings = console.settings
    produce(
        settings,
        settings.dlq_topic,
        [
            (b"acc-dlq", _dlq_record("acc-dlq", "ev-dead-1")),
            (b"other", _dlq_record("other", "ev-other")),
        ],
    )
    await console.sign_in()
    status, html = await console.get("/accounts/acc-dlq/dead-letters")
    assert status == 200
    assert "ev-dead-1" in html
    assert "ev-other" not in html
    assert "retries_exhausted" in html
    assert "HTTP 503" in html
    token = CSRF.search(html)
    assert token is not None
    status, html, _ = await console.post(
        "/accounts/acc-dlq/dead-letters/redrive", {"csrf_token": token.group(1)}
    )
    assert status == 200
    assert "1 of 1 dead letter sent back" in html
    retries = [
        decode_retry_record(m.value()) for m in read_topic(settings, settings.retry_topics()[0])
    ]
    assert [r.event_id for r in retries] == ["ev-dead-1"]


@pytest.mark.parametrize("number", ["9" * 5000, "\u0663", "1" * 40])
async def test_huge_or_non_ascii_numbers_give_a_field_error_not_a_500(
    console: Console, number: str
) -> None:
    await console.sign_in()
    before = len(console.config_records())
    status, html, _ = await _save(
        console, "/integrations/new", _form("acc-num", max_retries=number)
    )
    assert status == 400
    assert "Max Retries must be an integer from 0 to 10." in html
    status, html, _ = await _save(
        console, "/integrations/new", _form("acc-num", timeout_seconds=number)
    )
    assert status == 400
    assert "Timeout (seconds) must be a number from 1 to 30." in html
    assert len(console.config_records()) == before


@pytest.mark.parametrize("until", ["\u00b2", "9" * 5000, "\u0661\u0662"])
async def test_a_bad_redrive_bound_is_a_400_not_a_500(console: Console, until: str) -> None:
    await console.sign_in()
    token = await console.csrf("/accounts/acc-bound")
    status, html, _ = await console.post(
        "/accounts/acc-bound/dead-letters/redrive", {"csrf_token": token, "until_ms": until}
    )
    assert status == 400
    assert "Bad request" in html
    assert until not in html


def test_console_refuses_to_start_without_a_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STREAM_WFM_CONSOLE_PASSWORD", raising=False)
    monkeypatch.setenv("STREAM_WFM_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.chdir("/")  # no .env file
    with pytest.raises(SystemExit) as exited:
        main(["console"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: STREAM_WFM_CONSOLE_PASSWORD is not set")
    assert err.count("\n") == 1
