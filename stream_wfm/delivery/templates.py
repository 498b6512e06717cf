"""Each integration's compiled request templates, kept with its config store entry.

The service's :class:`~stream_wfm.integrations.store.ConfigStore` is built with
``entry_type=TemplatedEntry``: an entry compiles the template of an event kind
(:func:`~stream_wfm.delivery.request.compile_template`) the first time an event of
that kind is sent, and keeps it. The config never changes within an entry (an
update is a new entry), so a template never goes stale.
"""

from __future__ import annotations

from typing import Any, Final

from stream_wfm.delivery.request import RequestTemplate, compile_template
from stream_wfm.events import EventKind
from stream_wfm.integrations.model import IntegrationConfig
from stream_wfm.integrations.store import Entry

__all__ = ["TemplatedEntry"]

_UNCOMPILED: Any = object()
# A module constant: ``EventKind.AGENT`` runs a descriptor in Python 3.11 (once per event).
_AGENT: Final = EventKind.AGENT


class TemplatedEntry(Entry):
    """A config store :class:`~stream_wfm.integrations.store.Entry` that compiles its
    request templates on first use and keeps them."""

    __slots__ = ("_agent", "_call")

    def __init__(self, config: IntegrationConfig, raw: bytes | None = None) -> None:
        super().__init__(config, raw)
        self._agent: RequestTemplate | None = _UNCOMPILED
        self._call: RequestTemplate | None = _UNCOMPILED

    def template(self, kind: EventKind) -> RequestTemplate | None:
        if kind is _AGENT:
            template = self._agent
            if template is _UNCOMPILED:
                template = self._agent = compile_template(self.config, kind)
            return template
        template = self._call
        if template is _UNCOMPILED:
            template = self._call = compile_template(self.config, kind)
        return template
