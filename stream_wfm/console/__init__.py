"""The admin console (docs/contract.md §9): the "Generic HTTP" WFM integration pages.

Server-rendered HTML on aiohttp, reading integrations through the same
:class:`~stream_wfm.integrations.store.ConfigStore` as the service and writing
them with the same validator and :class:`~stream_wfm.integrations.writer.ConfigWriter`
as ``stream-wfm config put``. Endpoint health (docs/contract.md §10) comes from the
health topic (:mod:`~stream_wfm.console.healthfeed`, merged by
:mod:`~stream_wfm.console.health`); ``Re-enable`` runs in the background
(:mod:`~stream_wfm.console.jobs`). The signing buttons are in
:mod:`~stream_wfm.console.signing`, a new secret waits for its one showing in
:mod:`~stream_wfm.console.reveal`. ``create_app`` in :mod:`stream_wfm.console.app`
builds the application; ``stream-wfm console`` serves it.
"""
