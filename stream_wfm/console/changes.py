"""Waking the console's handlers when the config store applies a record.

The store calls :meth:`ConfigChanges.notify` from its own thread (pass it as
the store's ``on_change``); handlers on the event loop ``await
wait_until(predicate, timeout)``. The predicate is also re-checked every
``recheck`` seconds, so waiting stays bounded and correct even for a store
that was built without this listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from stream_wfm.integrations.store import Entry


class ConfigChanges:
    def __init__(self, recheck: float = 0.25) -> None:
        self._recheck = recheck
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Deliver notifications to ``loop`` (None: stop delivering them)."""
        self._loop = loop

    def notify(self, _account_id: str, _entry: Entry | None) -> None:
        """The store's ``on_change`` listener; called from the store's thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_until(self, predicate: Callable[[], bool], within: float) -> bool:
        """Wait until ``predicate()`` holds; False when ``within`` seconds passed first."""
        try:
            async with asyncio.timeout(within):
                while True:
                    event = self._event  # taken before the check: no change slips between
                    if predicate():
                        return True
                    await self._changed(event)
        except TimeoutError:
            return predicate()

    async def _changed(self, event: asyncio.Event) -> bool:
        """True when ``event`` fired, False after ``recheck`` seconds without a change."""
        try:
            async with asyncio.timeout(self._recheck):
                await event.wait()
        except TimeoutError:
            return False
        return True
