"""What every console handler needs, stored once on the application."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from stream_wfm.console.changes import ConfigChanges
from stream_wfm.console.clients import Client, request_client
from stream_wfm.console.healthfeed import HealthFeed
from stream_wfm.console.jobs import ReenableJobs
from stream_wfm.console.ratelimit import SignInLimiter
from stream_wfm.console.reveal import Reveals
from stream_wfm.console.sessions import Session, SessionCodec
from stream_wfm.delivery.transport import Transport
from stream_wfm.integrations.store import ConfigStore, Entry
from stream_wfm.integrations.writer import ConfigWriter
from stream_wfm.settings import IPNetwork, Settings

#: How long a handler waits for the config store to read back what it wrote.
READ_BACK_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Console:
    settings: Settings
    store: ConfigStore[Entry]
    writer: ConfigWriter
    transport: Transport
    changes: ConfigChanges
    sessions: SessionCodec
    limiter: SignInLimiter
    health: HealthFeed
    jobs: ReenableJobs
    trusted_proxies: tuple[IPNetwork, ...] = ()
    reveals: Reveals = field(default_factory=Reveals)  # new signing secrets, shown once


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("session", Session)


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def session_of(request: web.Request) -> Session:
    return request[SESSION]


def client_of(request: web.Request) -> Client:
    """The client's address and scheme, ``X-Forwarded-*`` from trusted proxies believed."""
    return request_client(request, console_of(request).trusted_proxies)
