"""The console's aiohttp application (docs/contract.md §9; endpoint health, §10)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from stream_wfm import __version__
from stream_wfm.console import actions, auth, deadletters, reenabling, signing, urls, views
from stream_wfm.console.changes import ConfigChanges
from stream_wfm.console.healthfeed import HealthFeed
from stream_wfm.console.jobs import ReenableFn, ReenableJobs
from stream_wfm.console.pages import see_other
from stream_wfm.console.ratelimit import SignInLimiter
from stream_wfm.console.security import add_security_headers
from stream_wfm.console.sessions import SessionCodec
from stream_wfm.console.state import CONSOLE, Console
from stream_wfm.delivery.transport import Transport
from stream_wfm.integrations.store import ConfigStore, Entry
from stream_wfm.integrations.writer import ConfigWriter
from stream_wfm.kafka.config import reader_config
from stream_wfm.settings import Settings

_HERE = Path(__file__).parent
_ACCOUNT = "/accounts/{account_id}"
#: The health feed the application started (and stops); None when the caller passed one.
_OWN_HEALTH = web.AppKey("own_health", HealthFeed)


def create_app(
    settings: Settings,
    store: ConfigStore[Entry],
    writer: ConfigWriter,
    transport: Transport,
    *,
    changes: ConfigChanges | None = None,
    limiter: SignInLimiter | None = None,
    sessions: SessionCodec | None = None,
    health: HealthFeed | None = None,
    reenable: ReenableFn | None = None,
) -> web.Application:
    """The console. Pass ``changes`` when it is the store's ``on_change`` listener, so
    saves are read back as soon as the store applies them; ``limiter`` and ``sessions``
    replace the defaults (tests give them a fake clock). Without ``health`` the
    application follows ``settings.health_topic`` itself while it runs; ``reenable``
    replaces what ``Re-enable`` runs (tests)."""
    key = settings.console_secret_key
    if sessions is None:
        secret = key.get_secret_value().encode() if key is not None else secrets.token_bytes(32)
        sessions = SessionCodec(secret)
    own_health = health is None
    if health is None:
        health = HealthFeed(
            settings.health_topic, reader_config(settings, "stream-wfm-console-health")
        )
    jobs = ReenableJobs(settings) if reenable is None else ReenableJobs(settings, reenable)
    console = Console(
        settings=settings,
        store=store,
        writer=writer,
        transport=transport,
        changes=changes or ConfigChanges(),
        sessions=sessions,
        limiter=limiter or SignInLimiter(),
        health=health,
        jobs=jobs,
        trusted_proxies=settings.console_trusted_networks,
    )
    app = web.Application(middlewares=[auth.session_middleware])
    app[CONSOLE] = console
    if own_health:
        app[_OWN_HEALTH] = health
        app.on_startup.append(_start_health)
        app.on_cleanup.append(_stop_health)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    env.globals.update(urls=urls, account_url=urls.account_url, version=__version__)
    app.on_response_prepare.append(add_security_headers)
    app.on_startup.append(_bind_changes)
    app.on_cleanup.append(_unbind_changes)
    _routes(app)
    return app


async def _home(_request: web.Request) -> web.StreamResponse:
    return see_other(urls.ACCOUNTS)


async def _readyz(request: web.Request) -> web.StreamResponse:
    """For probes: 200 once the config topic has been read, else 503 (no sign-in needed)."""
    store = request.app[CONSOLE].store
    if store.ready:
        return web.Response(text="ready\n")
    return web.Response(status=503, text=f"not ready: {store.status}\n")


def _routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", _home)
    r.add_get(urls.READYZ, _readyz)
    r.add_get(urls.SIGN_IN, auth.sign_in_page)
    r.add_post(urls.SIGN_IN, auth.sign_in)
    r.add_post(urls.SIGN_OUT, auth.sign_out)
    r.add_get(urls.ACCOUNTS, views.accounts_list)
    r.add_get(urls.NEW_INTEGRATION, views.new_integration)
    r.add_post(urls.NEW_INTEGRATION, views.create_integration)
    r.add_post(urls.signing_url(None), signing.new_integration_signing)
    r.add_get(_ACCOUNT, views.show_integration)
    r.add_post(_ACCOUNT, views.save_integration)
    r.add_post(_ACCOUNT + "/test", actions.test_event)
    r.add_post(_ACCOUNT + "/signing", signing.account_signing)
    r.add_get(_ACCOUNT + "/reenable", reenabling.reenable_status)
    r.add_post(_ACCOUNT + "/reenable", reenabling.reenable_integration)
    r.add_get(_ACCOUNT + "/delete", actions.confirm_delete)
    r.add_post(_ACCOUNT + "/delete", actions.delete)
    r.add_get(_ACCOUNT + "/dead-letters", deadletters.dead_letters)
    r.add_post(_ACCOUNT + "/dead-letters/redrive", deadletters.redrive_dead_letters)
    r.add_static("/static/", _HERE / "static", append_version=False)


async def _bind_changes(app: web.Application) -> None:
    app[CONSOLE].changes.bind(asyncio.get_running_loop())


async def _unbind_changes(app: web.Application) -> None:
    app[CONSOLE].changes.bind(None)


async def _start_health(app: web.Application) -> None:
    app[_OWN_HEALTH].start()


async def _stop_health(app: web.Application) -> None:
    await asyncio.to_thread(app[_OWN_HEALTH].stop)
